#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <stdexcept>

#include "hw/backend.hpp"

namespace lina::hw {

void RecordingBackend::setup(const Plan& plan, const LoweredPlan& lowered) {
  if (plan.ranks > devices_) {
    throw std::invalid_argument(fmt::format("plan has {} ranks for {} devices", plan.ranks, devices_));
  }
  plan_ = &plan;
  lowered_ = &lowered;
  calls_.assign(static_cast<size_t>(plan.ranks), {});
  start_.assign(plan.tasks.size(), Time::zero());
  end_.assign(plan.tasks.size(), Time::zero());
  stream_end_.assign(static_cast<size_t>(plan.ranks) * kStreamCount, Time::zero());
}

void RecordingBackend::enqueue(int task, const std::vector<int>& waits) {
  const Task& t = plan_->tasks[static_cast<size_t>(task)];
  const auto rank = static_cast<size_t>(t.rank);
  Call c;
  c.task = task;
  c.rank = t.rank;
  c.stream = t.stream;
  c.priority = lowered_->stream_priority[static_cast<size_t>(t.stream)];
  c.waits = waits;
  c.work = lowered_->work[static_cast<size_t>(task)];
  c.text = fmt::format("task {} {} prio {} waits [{}]: {}", task, stream_name(t.stream), c.priority,
                       fmt::join(waits, ","), describe(c.work));
  // The fake clock: after the stream's previous task, the waits and (communication) the dependencies.
  Time start = stream_end_[rank * kStreamCount + static_cast<size_t>(t.stream)];
  for (int w : waits) start = std::max(start, end_[static_cast<size_t>(w)]);
  for (int d : t.deps) start = std::max(start, end_[static_cast<size_t>(d)]);  // done ones: the device is past them
  {
    std::lock_guard<std::mutex> lock(mutex_);
    calls_[rank].push_back(std::move(c));
  }
  start_[static_cast<size_t>(task)] = start;
  end_[static_cast<size_t>(task)] = start + Time::from_seconds(task_s_);
  stream_end_[rank * kStreamCount + static_cast<size_t>(t.stream)] = end_[static_cast<size_t>(task)];
}

std::optional<Time> RecordingBackend::poll_start(int task) { return start_[static_cast<size_t>(task)]; }
std::optional<Time> RecordingBackend::poll_end(int task) { return end_[static_cast<size_t>(task)]; }

}  // namespace lina::hw

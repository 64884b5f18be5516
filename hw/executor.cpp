#include "hw/executor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace lina::hw {
namespace {

using Clock = std::chrono::steady_clock;

struct State : Launcher {
  const Plan& plan;
  Backend& backend;
  RuntimeScheduler& scheduler;
  const HwExecutorOptions& opt;

  struct Rank {
    std::array<std::deque<int>, kStreamCount> queue;     // not yet enqueued, issue order
    std::array<std::deque<int>, kStreamCount> inflight;  // enqueued, not finished
    std::vector<int> to_launch;                          // launched by the scheduler, guarded by State::mutex
    size_t left = 0;
    Time now;  // latest event time observed on this rank
  };
  std::vector<Rank> ranks;
  // Per task; each is touched only by its rank's thread.
  std::vector<uint8_t> enqueued, done, reported, started;
  Timeline tl;

  std::mutex mutex;  // the scheduler and every Rank::to_launch
  std::atomic<int64_t> last_progress_ns{0};
  std::atomic<bool> abort{false};

  State(const Plan& p, Backend& b, RuntimeScheduler& s, const HwExecutorOptions& o)
      : plan(p), backend(b), scheduler(s), opt(o) {
    const size_t n = plan.tasks.size();
    enqueued.assign(n, 0);
    done.assign(n, 0);
    reported.assign(n, 0);
    started.assign(n, 0);
    tl.records.resize(n);
    ranks.resize(static_cast<size_t>(plan.ranks));
    for (size_t i = 0; i < n; ++i) {
      const Task& t = plan.tasks[i];
      Rank& r = ranks[static_cast<size_t>(t.rank)];
      r.queue[static_cast<size_t>(t.stream)].push_back(static_cast<int>(i));
      ++r.left;
    }
    touch();
  }

  void touch() {
    last_progress_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
  }

  // Called by the scheduler with `mutex` held (from inside on_comm_ready / on_task_*).
  void launch(int id) override {
    const Task& t = plan.tasks.at(static_cast<size_t>(id));
    if (t.kind != TaskKind::kComm) throw std::logic_error("launch of a non-communication task");
    ranks[static_cast<size_t>(t.rank)].to_launch.push_back(id);
  }

  // One pass over a rank: launches, heads of streams, events. Returns whether anything happened.
  bool step(int rank_id) {
    Rank& r = ranks[static_cast<size_t>(rank_id)];
    bool progress = false;
    std::vector<int> launches;
    {
      std::lock_guard<std::mutex> lock(mutex);
      launches.swap(r.to_launch);
    }
    for (int id : launches) {
      const Task& t = plan.tasks[static_cast<size_t>(id)];
      auto& q = r.queue[static_cast<size_t>(t.stream)];
      if (q.empty() || q.front() != id) {
        throw std::logic_error(fmt::format("scheduler launched '{}' which is not ready", plan.task_name(id)));
      }
      backend.enqueue(id, {});
      enqueued[static_cast<size_t>(id)] = 1;
      q.pop_front();
      r.inflight[static_cast<size_t>(t.stream)].push_back(id);
      progress = true;
    }
    for (int s = 0; s < kStreamCount; ++s) {
      auto& q = r.queue[static_cast<size_t>(s)];
      auto& fl = r.inflight[static_cast<size_t>(s)];
      while (!q.empty() && static_cast<int>(fl.size()) < opt.max_in_flight) {
        const int id = q.front();
        const Task& t = plan.tasks[static_cast<size_t>(id)];
        if (t.kind == TaskKind::kComm) {
          if (reported[static_cast<size_t>(id)] || !fl.empty()) break;
          bool ready = std::all_of(t.deps.begin(), t.deps.end(), [&](int d) { return done[static_cast<size_t>(d)]; });
          if (!ready) break;
          reported[static_cast<size_t>(id)] = 1;
          std::lock_guard<std::mutex> lock(mutex);
          scheduler.on_comm_ready(id, r.now);
          progress = true;
          break;
        }
        bool ready = std::all_of(t.deps.begin(), t.deps.end(), [&](int d) { return enqueued[static_cast<size_t>(d)]; });
        if (!ready) break;
        std::vector<int> waits;
        for (int d : t.deps) {
          const Task& dt = plan.tasks[static_cast<size_t>(d)];
          if (dt.stream != t.stream && !done[static_cast<size_t>(d)] &&
              std::find(waits.begin(), waits.end(), d) == waits.end()) {
            waits.push_back(d);
          }
        }
        backend.enqueue(id, waits);
        enqueued[static_cast<size_t>(id)] = 1;
        q.pop_front();
        fl.push_back(id);
        progress = true;
      }
    }
    for (int s = 0; s < kStreamCount; ++s) {
      auto& fl = r.inflight[static_cast<size_t>(s)];
      while (!fl.empty()) {
        const int id = fl.front();
        const auto i = static_cast<size_t>(id);
        if (!started[i]) {
          auto st = backend.poll_start(id);
          if (!st) break;
          started[i] = 1;
          tl.records[i].task = id;
          tl.records[i].launch = tl.records[i].start = *st;
          r.now = std::max(r.now, *st);
          std::lock_guard<std::mutex> lock(mutex);
          scheduler.on_task_start(id, *st);
          progress = true;
        }
        auto en = backend.poll_end(id);
        if (!en) break;
        tl.records[i].end = *en;
        r.now = std::max(r.now, *en);
        done[i] = 1;
        fl.pop_front();
        --r.left;
        std::lock_guard<std::mutex> lock(mutex);
        scheduler.on_task_finish(id, *en);
        progress = true;
      }
    }
    if (progress) touch();
    return progress;
  }

  std::string stuck() const {
    for (size_t rk = 0; rk < ranks.size(); ++rk) {
      for (int s = 0; s < kStreamCount; ++s) {
        const auto& fl = ranks[rk].inflight[static_cast<size_t>(s)];
        const auto& q = ranks[rk].queue[static_cast<size_t>(s)];
        if (!fl.empty()) {
          return fmt::format("rank {} {} stream runs '{}'", rk, stream_name(static_cast<Stream>(s)),
                             plan.task_name(fl.front()));
        }
        if (!q.empty()) {
          return fmt::format("rank {} {} stream waits on '{}'", rk, stream_name(static_cast<Stream>(s)),
                             plan.task_name(q.front()));
        }
      }
    }
    return "nothing";
  }

  void check_stall() {
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
    if (static_cast<double>(now - last_progress_ns.load()) * 1e-9 > opt.stall_timeout_s) {
      throw std::runtime_error(
          fmt::format("hardware executor stalled for {:g} s (no task progressed): {}", opt.stall_timeout_s, stuck()));
    }
  }
};

}  // namespace

Timeline HwExecutor::run(const Plan& plan, const LoweredPlan& lowered, RuntimeScheduler& scheduler) {
  validate_plan(plan);
  if (lowered.work.size() != plan.tasks.size()) throw std::logic_error("lowered plan does not match the plan");
  if (plan.ranks > backend_.device_count()) {
    throw std::runtime_error(fmt::format("the plan needs {} GPUs, {} visible", plan.ranks, backend_.device_count()));
  }
  State s(plan, backend_, scheduler, options_);
  try {
    backend_.setup(plan, lowered);
    scheduler.attach(plan, s);
    s.touch();
    if (!options_.thread_per_device) {
      for (int r = 0; r < plan.ranks; ++r) backend_.bind(r);
      for (int r = 0; r < plan.ranks; ++r) backend_.start_clock(r);
      while (true) {
        bool left = false, progress = false;
        for (int r = 0; r < plan.ranks; ++r) {
          if (s.ranks[static_cast<size_t>(r)].left == 0) continue;
          left = true;
          progress |= s.step(r);
        }
        if (!left) break;
        if (!progress) {
          s.check_stall();
          std::this_thread::yield();
        }
      }
    } else {
      std::barrier sync(plan.ranks);
      std::mutex error_mutex;
      std::exception_ptr error;
      auto body = [&](int r) {
        try {
          backend_.bind(r);
          sync.arrive_and_wait();
          backend_.start_clock(r);
          sync.arrive_and_wait();
          while (s.ranks[static_cast<size_t>(r)].left > 0 && !s.abort) {
            if (!s.step(r)) {
              s.check_stall();
              std::this_thread::yield();
            }
          }
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          s.abort = true;
        }
      };
      std::vector<std::thread> threads;
      for (int r = 0; r < plan.ranks; ++r) threads.emplace_back(body, r);
      for (auto& t : threads) t.join();
      if (error) std::rethrow_exception(error);
    }
  } catch (...) {
    backend_.finish(false);
    throw;
  }
  backend_.finish(true);

  // Communication: the collective starts when its last participant has started (rendezvous).
  std::vector<Time> rendezvous(plan.collectives.size(), Time::zero());
  for (size_t i = 0; i < plan.tasks.size(); ++i) {
    const Task& t = plan.tasks[i];
    if (t.kind == TaskKind::kComm) {
      auto& rv = rendezvous[static_cast<size_t>(t.collective)];
      rv = std::max(rv, s.tl.records[i].launch);
    }
  }
  Time makespan = Time::zero();
  for (size_t i = 0; i < plan.tasks.size(); ++i) {
    auto& rec = s.tl.records[i];
    const Task& t = plan.tasks[i];
    if (t.kind == TaskKind::kComm) rec.start = std::min(rendezvous[static_cast<size_t>(t.collective)], rec.end);
    makespan = std::max(makespan, rec.end);
  }
  s.tl.makespan = makespan;
  return std::move(s.tl);
}

}  // namespace lina::hw

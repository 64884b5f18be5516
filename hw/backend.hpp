// The device side of the hardware executor (DESIGN.md 7): what the executor asks of a GPU backend. The CUDA
// implementation (cuda_backend.hpp) runs cuBLAS, kernels and NCCL; the RecordingBackend records the calls so that
// the lowering and the executor's protocol are tested on a machine without a GPU.
//
// Threading: setup() and finish() run on the caller's thread; every other call about rank r runs on rank r's host
// thread (one per GPU), after bind(r).
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "hw/lowering.hpp"
#include "sched/plan.hpp"
#include "sched/time.hpp"

namespace lina::hw {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual int device_count() const = 0;
  // Streams (with the lowered priorities), communicators, buffers, timing events: everything allocated once.
  virtual void setup(const Plan& plan, const LoweredPlan& lowered) = 0;
  virtual void bind(int rank) = 0;         // make rank's device current on this thread
  virtual void start_clock(int rank) = 0;  // the rank's time origin (all ranks call it right after a barrier)
  // Enqueues a task on its rank's stream: wait for the end of `waits` (tasks of the same rank on other streams,
  // already enqueued), mark the start, run its work, mark the end. Returns without waiting for the device.
  virtual void enqueue(int task, const std::vector<int>& waits) = 0;
  // When the task's start (end) mark has been reached on the device: its time since the rank's origin.
  virtual std::optional<Time> poll_start(int task) = 0;
  virtual std::optional<Time> poll_end(int task) = 0;
  // Releases everything; `ok` false after an error (communicators are aborted rather than finalized).
  virtual void finish(bool ok) = 0;
};

// Records every enqueue per rank and completes work on a fake clock: each task lasts `task_seconds`, starts when its
// stream's previous task, its waits and its dependencies have ended, so the executor's timeline obeys the same rules
// as on a GPU (where a dependency the executor saw finish is already in the device's past).
class RecordingBackend : public Backend {
 public:
  struct Call {
    int task = -1;
    int rank = 0;
    Stream stream = Stream::kCompute;
    int priority = 0;
    std::vector<int> waits;
    DeviceWork work;
    std::string text;  // "task 12 compute prio 0 waits [3]: gemm 4096x16x1024 (+0 B)"
  };
  explicit RecordingBackend(int devices, double task_seconds = 1e-6) : devices_(devices), task_s_(task_seconds) {}

  int device_count() const override { return devices_; }
  void setup(const Plan& plan, const LoweredPlan& lowered) override;
  void bind(int) override {}
  void start_clock(int) override {}
  void enqueue(int task, const std::vector<int>& waits) override;
  std::optional<Time> poll_start(int task) override;
  std::optional<Time> poll_end(int task) override;
  void finish(bool ok) override { finished_ok_ = ok; }

  // Per rank, the calls in enqueue order.
  const std::vector<std::vector<Call>>& calls() const { return calls_; }
  const std::vector<std::vector<int>>& groups() const { return lowered_->groups; }
  bool finished_ok() const { return finished_ok_; }

 private:
  int devices_;
  double task_s_;
  const Plan* plan_ = nullptr;
  const LoweredPlan* lowered_ = nullptr;
  std::mutex mutex_;
  std::vector<std::vector<Call>> calls_;
  std::vector<Time> start_, end_;
  std::vector<Time> stream_end_;  // per rank * kStreamCount
  bool finished_ok_ = false;
};

}  // namespace lina::hw

// The hardware executor (DESIGN.md 1, 7): runs a Plan on a Backend with one host thread per GPU and drives the same
// RuntimeScheduler as the simulator, filling the same Timeline.
//
// Semantics, as sim/executor.hpp, with what a GPU adds:
// - Compute and host tasks are enqueued ahead on their CUDA stream as soon as every dependency has been enqueued
//   (a dependency on another stream becomes a stream wait on its end event), at most `max_in_flight` per stream, so
//   the GPU starts them the moment their inputs are done, with no host round trip.
// - A communication task is reported ready to the runtime scheduler once it is the head of its stream (everything
//   before it on the stream has finished) and its dependencies have finished, as observed through CUDA events:
//   the scheduler decides from what the devices have done, as in the simulator. When the scheduler launches it (from
//   any thread), the owning rank's thread enqueues its NCCL calls.
// - Start and finish of every task are reported to the scheduler when the rank's thread observes the task's CUDA
//   events, with the event times. Scheduler calls are serialised by one mutex.
// - Timeline: each task's start and end from its events, relative to the rank's origin (recorded right after a
//   barrier of all rank threads, so clocks of different GPUs agree to within a few microseconds). For a
//   communication task, `launch` is when its own rank's part started and `start` the latest start among the
//   participants (the rendezvous), as in the simulator.
#pragma once

#include "hw/backend.hpp"
#include "hw/lowering.hpp"
#include "sched/runtime_scheduler.hpp"
#include "sched/timeline.hpp"

namespace lina::hw {

struct HwExecutorOptions {
  bool thread_per_device = true;  // false: all ranks driven round-robin by the calling thread (deterministic tests)
  int max_in_flight = 64;         // tasks enqueued ahead per stream
  double stall_timeout_s = 120;   // no task of any rank progressed for this long: a deadlock (error)
};

class HwExecutor {
 public:
  HwExecutor(Backend& backend, HwExecutorOptions options = {}) : backend_(backend), options_(options) {}
  // Runs the plan to completion; throws std::runtime_error (with the task and device) on a backend error or a
  // stall. The backend's finish() has been called when it returns or throws.
  Timeline run(const Plan& plan, const LoweredPlan& lowered, RuntimeScheduler& scheduler);

 private:
  Backend& backend_;
  HwExecutorOptions options_;
};

}  // namespace lina::hw

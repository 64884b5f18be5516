// The simulator's executor: runs a Plan on the event engine with streams, the compute model and the network
// model, and calls the runtime scheduler online (DESIGN.md 1, 3). It fills the same Timeline as the hardware
// executor.
//
// Semantics: each rank has kStreamCount streams; a stream runs its tasks in issue order (Plan order), one at a time;
// the head of a stream starts once its dependencies are done. A communication task at the head is reported to the
// runtime scheduler as ready; once the scheduler launches it, the rank has joined the collective, which starts
// moving data when every participant has launched (NCCL rendezvous). The task ends when its rank's part is done.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "sched/plan.hpp"
#include "sched/runtime_scheduler.hpp"
#include "sched/timeline.hpp"
#include "sim/engine.hpp"

namespace lina::sim {

// Runs collectives on the network. start() is called once all participants launched; on_rank_done(i) must be
// called once for each participant position i when its part is complete.
class CollectiveBackend {
 public:
  virtual ~CollectiveBackend() = default;
  virtual void start(const Collective& c, std::function<void(int position)> on_rank_done) = 0;
};

// What the executor derives from a plan before running it, in flat rows: each task's dependents (the dependents of
// task i are dependents[dependents_at[i] .. dependents_at[i + 1])), each stream's tasks in issue order
// (queue_tasks[queue_at[q] ..], q = rank * kStreamCount + stream) and one slot per collective participant
// (part_at[c] ..). It depends on the plan alone, so the inference simulator builds it ahead, with the durations.
struct PlanIndex {
  std::vector<int> dependents_at, dependents;
  std::vector<int> queue_at, queue_tasks;
  std::vector<int> part_at;
};
void index_plan(const Plan& plan, PlanIndex& out);

struct ExecutorOptions {
  std::function<Time(const Task&)> compute_duration;  // compute and host tasks
  // Optional: the duration of every compute and host task by task id, computed ahead (compute_duration is then not
  // called), and whether the caller already ran validate_plan. The inference simulator does both on the thread that
  // prepares the next batch.
  const std::vector<Time>* durations = nullptr;
  const PlanIndex* index = nullptr;  // optional: index_plan(plan), built ahead
  bool plan_validated = false;
  bool record_link_samples = false;
};

class Executor {
 public:
  Executor(Engine& engine, CollectiveBackend& collectives, ExecutorOptions options);
  // Runs the plan to completion. Throws std::logic_error on a deadlock (tasks left that can never run), which is a
  // policy bug (e.g. ranks issuing collectives in different orders on one stream).
  Timeline run(const Plan& plan, RuntimeScheduler& scheduler);

 private:
  struct State;
  Engine& engine_;
  CollectiveBackend& collectives_;
  ExecutorOptions options_;
};

}  // namespace lina::sim

// Lina's training-time runtime scheduler (paper section 4.1, DESIGN.md 3.1): one priority queue per device in which
// all-to-all outranks allreduce. An allreduce micro-op is launched only when no all-to-all is waiting or running on
// that device, and none from the start of a MoE layer's backward combine computation until that layer's all-to-alls
// are done (the all-to-all is imminent). A launched micro-op is never preempted: the all-to-all that arrives during
// it shares the link until it ends, which is why the micro-ops must be small.
//
// The `fixed` variant (lina-fixed, the ablation) launches allreduce only in the window between the two backward
// all-to-alls of a MoE layer (while the expert computation runs), with DDP bucket fusion.
#pragma once

#include <deque>
#include <map>
#include <tuple>
#include <vector>

#include "sched/runtime_scheduler.hpp"

namespace lina {

class LinaTrainingScheduler : public RuntimeScheduler {
 public:
  explicit LinaTrainingScheduler(bool fixed_windows = false) : fixed_(fixed_windows) {}
  void attach(const Plan& plan, Launcher& launcher) override;
  void on_comm_ready(int task, Time now) override;
  void on_task_start(int task, Time now) override;
  void on_task_finish(int task, Time now) override;

 private:
  struct Device {
    int a2a_active = 0;             // all-to-all tasks ready (waiting) or running
    int moe_bwd_left = 0;           // backward all-to-alls of the current MoE layer not finished (hold while > 0)
    bool in_expert_window = false;  // lina-fixed: between the two backward all-to-alls
    std::deque<int> held;           // allreduce tasks ready but not launched (FIFO: gradient order)
    std::vector<int> a2a_left;      // per step: all-to-all tasks not finished yet (0: nothing left to protect)
  };
  void release(int rank);
  bool is_a2a(int task) const;
  bool is_allreduce(int task) const;

  const Plan* plan_ = nullptr;
  Launcher* launcher_ = nullptr;
  std::vector<Device> devices_;
  // Backward all-to-all tasks per (rank, step, layer), counted once from the plan.
  std::map<std::tuple<int, int, int>, int> bwd_a2a_count_;
  bool fixed_;
};

}  // namespace lina

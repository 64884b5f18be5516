// Lina's training-time runtime scheduler (paper section 4.1, DESIGN.md 3.1): one priority queue per device in which
// all-to-all outranks allreduce. An allreduce micro-op is launched only when no all-to-all is waiting or running on
// that device, and none from the start of a MoE layer's backward combine computation until that layer's all-to-alls
// are done (the all-to-all is imminent). A launched micro-op is never preempted: the all-to-all that arrives during
// it shares the link until it ends, which is why the micro-ops must be small.
//
// The `fixed` variant (lina-fixed, the ablation) launches allreduce only in the window between the two backward
// all-to-alls of a MoE layer (while the expert computation runs), with DDP bucket fusion.
//
// `hold_links` (policy.hold = links, beyond the paper) narrows "on that device" to "on the links it crosses": a
// micro-op waits only for all-to-alls whose traffic crosses a class of links its own crosses (Collective::links: the
// GPU's port into its node, the NIC). The paper's testbed has one NIC per node, where every inter-node transfer also
// crosses the GPU's port, so there the two rules agree; on a node with NVLink and a NIC per GPU an all-to-all inside
// the node no longer holds back an expert-gradient allreduce between nodes. policy.hold = none holds nothing (an
// ablation: Lina's other mechanisms without the prioritisation).
#pragma once

#include <deque>
#include <map>
#include <tuple>
#include <vector>

#include "sched/policy_spec.hpp"
#include "sched/runtime_scheduler.hpp"

namespace lina {

class LinaTrainingScheduler : public RuntimeScheduler {
 public:
  struct Options {
    bool fixed_windows = false;                         // lina-fixed
    PolicySpec::Hold hold = PolicySpec::Hold::kDevice;  // policy.hold
  };
  LinaTrainingScheduler() = default;
  explicit LinaTrainingScheduler(Options o) : fixed_(o.fixed_windows), hold_(o.hold) {}
  void attach(const Plan& plan, Launcher& launcher) override;
  void on_comm_ready(int task, Time now) override;
  void on_task_start(int task, Time now) override;
  void on_task_finish(int task, Time now) override;

 private:
  struct Device {
    int a2a_active_on[2] = {0, 0};  // all-to-all tasks ready (waiting) or running that cross node links, NIC links
    int moe_bwd_left = 0;           // backward all-to-alls of the current MoE layer not finished (hold while > 0)
    uint8_t moe_bwd_links = 0;      // the LinkClass bits they cross
    bool in_expert_window = false;  // lina-fixed: between the two backward all-to-alls
    std::deque<int> held;           // allreduce tasks ready but not launched (FIFO: gradient order)
    std::vector<int> a2a_left;      // per step: all-to-all tasks not finished yet (0: nothing left to protect)
  };
  void release(int rank);
  // The LinkClass bits an allreduce must not share with the device's all-to-alls now, and those of a task.
  uint8_t busy_links(const Device& d) const;
  uint8_t links_of(int task) const;
  void count_a2a(Device& d, int task, int delta);
  bool is_a2a(int task) const;
  bool is_allreduce(int task) const;

  const Plan* plan_ = nullptr;
  Launcher* launcher_ = nullptr;
  std::vector<Device> devices_;
  // Backward all-to-all tasks per (rank, step, layer), counted once from the plan, and the links they cross.
  struct BackwardA2A {
    int count = 0;
    uint8_t links = 0;
  };
  std::map<std::tuple<int, int, int>, BackwardA2A> bwd_a2a_;
  bool fixed_ = false;
  PolicySpec::Hold hold_ = PolicySpec::Hold::kDevice;
};

}  // namespace lina

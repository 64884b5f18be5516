// The naive priority baseline (DESIGN.md 3.1; Lina paper section 2.3): all-to-all goes first in launch order, but
// nothing is partitioned and a running allreduce is never preempted. An allreduce that becomes ready while an
// all-to-all on the same device is ready but not yet started (waiting for its rendezvous) is held until that
// all-to-all starts; otherwise it launches at once and then shares the links fairly with whatever all-to-all comes
// next. The paper measures it slightly worse than the baseline (30.9 ms vs 29.0 ms per layer).
#pragma once

#include <deque>
#include <vector>

#include "sched/runtime_scheduler.hpp"

namespace lina {

class NaivePriorityScheduler : public RuntimeScheduler {
 public:
  void attach(const Plan& plan, Launcher& launcher) override;
  void on_comm_ready(int task, Time now) override;
  void on_task_start(int task, Time now) override;
  void on_task_finish(int, Time) override {}

 private:
  struct Device {
    int a2a_waiting = 0;   // all-to-all tasks launched but not started (rendezvous pending)
    std::deque<int> held;  // allreduce tasks held behind them
  };
  bool is_a2a(int task) const;
  const Plan* plan_ = nullptr;
  Launcher* launcher_ = nullptr;
  std::vector<Device> devices_;
};

}  // namespace lina

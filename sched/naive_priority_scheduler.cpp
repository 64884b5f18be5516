#include "sched/naive_priority_scheduler.hpp"

namespace lina {

void NaivePriorityScheduler::attach(const Plan& plan, Launcher& launcher) {
  plan_ = &plan;
  launcher_ = &launcher;
  devices_.assign(static_cast<size_t>(plan.ranks), Device{});
}

bool NaivePriorityScheduler::is_a2a(int task) const {
  const Task& t = plan_->tasks[static_cast<size_t>(task)];
  return t.kind == TaskKind::kComm && plan_->collectives[static_cast<size_t>(t.collective)].kind == CommKind::kAllToAll;
}

void NaivePriorityScheduler::on_comm_ready(int task, Time) {
  const Task& t = plan_->tasks[static_cast<size_t>(task)];
  Device& d = devices_[static_cast<size_t>(t.rank)];
  if (is_a2a(task)) {
    ++d.a2a_waiting;
    launcher_->launch(task);
    return;
  }
  if (d.a2a_waiting > 0) {
    d.held.push_back(task);
    return;
  }
  launcher_->launch(task);
}

void NaivePriorityScheduler::on_task_start(int task, Time) {
  if (!is_a2a(task)) return;
  Device& d = devices_[static_cast<size_t>(plan_->tasks[static_cast<size_t>(task)].rank)];
  if (--d.a2a_waiting > 0) return;
  while (!d.held.empty()) {
    int held = d.held.front();
    d.held.pop_front();
    launcher_->launch(held);
  }
}

}  // namespace lina

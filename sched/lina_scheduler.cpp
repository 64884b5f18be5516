#include "sched/lina_scheduler.hpp"

namespace lina {

void LinaTrainingScheduler::attach(const Plan& plan, Launcher& launcher) {
  plan_ = &plan;
  launcher_ = &launcher;
  devices_.assign(static_cast<size_t>(plan.ranks), Device{});
  for (size_t i = 0; i < plan.tasks.size(); ++i) {
    const Task& t = plan.tasks[i];
    if (!is_a2a(static_cast<int>(i))) continue;
    auto& left = devices_[static_cast<size_t>(t.rank)].a2a_left;
    if (left.size() <= static_cast<size_t>(t.step)) left.resize(static_cast<size_t>(t.step) + 1, 0);
    ++left[static_cast<size_t>(t.step)];
    if (t.phase == Phase::kBackward) {
      BackwardA2A& b = bwd_a2a_[{t.rank, t.step, t.layer}];
      ++b.count;
      b.links |= links_of(static_cast<int>(i));
    }
  }
}

uint8_t LinaTrainingScheduler::links_of(int task) const {
  // The paper's rule is per device: every task counts as crossing every link.
  if (hold_ != PolicySpec::Hold::kLinks) return kAllLinks;
  return plan_->collectives[static_cast<size_t>(plan_->tasks[static_cast<size_t>(task)].collective)].links;
}

uint8_t LinaTrainingScheduler::busy_links(const Device& d) const {
  uint8_t busy = d.moe_bwd_left > 0 ? d.moe_bwd_links : 0;
  if (d.a2a_active_on[0] > 0) busy |= kNodeLinks;
  if (d.a2a_active_on[1] > 0) busy |= kNicLinks;
  return busy;
}

void LinaTrainingScheduler::count_a2a(Device& d, int task, int delta) {
  const uint8_t links = links_of(task);
  if (links & kNodeLinks) d.a2a_active_on[0] += delta;
  if (links & kNicLinks) d.a2a_active_on[1] += delta;
}

bool LinaTrainingScheduler::is_a2a(int task) const {
  const Task& t = plan_->tasks[static_cast<size_t>(task)];
  return t.kind == TaskKind::kComm && plan_->collectives[static_cast<size_t>(t.collective)].kind == CommKind::kAllToAll;
}

bool LinaTrainingScheduler::is_allreduce(int task) const {
  const Task& t = plan_->tasks[static_cast<size_t>(task)];
  return t.kind == TaskKind::kComm && t.role == Role::kGradSync;
}

void LinaTrainingScheduler::on_comm_ready(int task, Time) {
  const Task& t = plan_->tasks[static_cast<size_t>(task)];
  Device& d = devices_[static_cast<size_t>(t.rank)];
  if (is_allreduce(task)) {
    d.held.push_back(task);
    release(t.rank);
    return;
  }
  if (is_a2a(task)) count_a2a(d, task, +1);
  launcher_->launch(task);
}

void LinaTrainingScheduler::on_task_start(int task, Time) {
  const Task& t = plan_->tasks[static_cast<size_t>(task)];
  Device& d = devices_[static_cast<size_t>(t.rank)];
  // The hold lasts until every backward all-to-all of this layer (all pipelined chunks) is done: counting them
  // avoids releasing in the instant between one chunk's end and the next chunk's launch.
  if (t.role == Role::kPreAllToAll) {
    auto it = bwd_a2a_.find({t.rank, t.step, t.layer});
    d.moe_bwd_left = it == bwd_a2a_.end() ? 0 : it->second.count;
    d.moe_bwd_links = it == bwd_a2a_.end() ? 0 : it->second.links;
  }
}

void LinaTrainingScheduler::on_task_finish(int task, Time) {
  const Task& t = plan_->tasks[static_cast<size_t>(task)];
  Device& d = devices_[static_cast<size_t>(t.rank)];
  if (is_a2a(task)) {
    count_a2a(d, task, -1);
    --d.a2a_left[static_cast<size_t>(t.step)];
    if (t.phase == Phase::kBackward) {
      // The backward pair is combine (first) then dispatch (second); the window between them is the expert compute.
      if (t.role == Role::kCombine) d.in_expert_window = true;
      if (t.role == Role::kDispatch) d.in_expert_window = false;
      if (d.moe_bwd_left > 0) --d.moe_bwd_left;
    }
  }
  release(t.rank);
}

void LinaTrainingScheduler::release(int rank) {
  Device& d = devices_[static_cast<size_t>(rank)];
  while (!d.held.empty()) {
    int task = d.held.front();
    int step = plan_->tasks[static_cast<size_t>(task)].step;
    // Once the step's last all-to-all on this device is done there is nothing left to protect.
    bool done = static_cast<size_t>(step) >= d.a2a_left.size() || d.a2a_left[static_cast<size_t>(step)] == 0;
    bool allowed = done || (fixed_ ? d.in_expert_window
                                   : hold_ == PolicySpec::Hold::kNone || (busy_links(d) & links_of(task)) == 0);
    if (!allowed) return;
    d.held.pop_front();
    launcher_->launch(task);
    if (fixed_ && !done) return;  // one bucket per window
  }
}

}  // namespace lina

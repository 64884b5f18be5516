// The naive priority baseline orders launches only: an allreduce waits while an all-to-all of its device is
// launched but not started, and is never held otherwise (DESIGN.md 3.1).
#include <gtest/gtest.h>

#include "sched/naive_priority_scheduler.hpp"

namespace lina {
namespace {

struct RecordingLauncher : Launcher {
  std::vector<int> launched;
  void launch(int task) override { launched.push_back(task); }
};

// Rank 0 and 1: task 0/1 an all-to-all (collective 0), task 2/3 an allreduce (collective 1).
Plan two_rank_plan() {
  Plan p;
  p.ranks = 2;
  Collective a2a;
  a2a.kind = CommKind::kAllToAll;
  a2a.ranks = {0, 1};
  a2a.bytes = {0, 1, 1, 0};
  p.add_collective(a2a);
  Collective ar;
  ar.kind = CommKind::kAllReduce;
  ar.ranks = {0, 1};
  ar.bytes = {8};
  ar.role = Role::kGradSync;
  p.add_collective(ar);
  for (int c = 0; c < 2; ++c) {
    for (int r = 0; r < 2; ++r) {
      Task t;
      t.rank = r;
      t.kind = TaskKind::kComm;
      t.stream = c == 0 ? Stream::kAllToAll : Stream::kAllReduce;
      t.collective = c;
      p.add_task(t);
    }
  }
  return p;
}

TEST(NaivePriority, AllreduceWaitsBehindAWaitingAllToAllOnly) {
  Plan p = two_rank_plan();
  NaivePriorityScheduler s;
  RecordingLauncher l;
  s.attach(p, l);
  s.on_comm_ready(0, Time::zero());  // rank 0's all-to-all: launched, waiting for rank 1
  s.on_comm_ready(2, Time::zero());  // rank 0's allreduce: held behind it
  EXPECT_EQ(l.launched, (std::vector<int>{0}));
  s.on_comm_ready(3, Time::zero());  // rank 1 has no all-to-all waiting: its allreduce goes at once
  EXPECT_EQ(l.launched, (std::vector<int>{0, 3}));
  s.on_comm_ready(1, Time::us(1));  // rank 1 joins; the all-to-all starts on both ranks
  s.on_task_start(0, Time::us(1));
  s.on_task_start(1, Time::us(1));
  EXPECT_EQ(l.launched, (std::vector<int>{0, 3, 1, 2}));  // rank 0's allreduce released when its all-to-all started
}

}  // namespace
}  // namespace lina

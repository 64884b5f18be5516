// Lina's training scheduler (sched/lina_scheduler.hpp) on hand-made plans: which allreduce micro-ops it holds behind
// an all-to-all, under the paper's per-device rule and under policy.hold = links.
#include <gtest/gtest.h>

#include <vector>

#include "sched/lina_scheduler.hpp"
#include "sched/naive_priority_scheduler.hpp"
#include "sched/training_scheduler.hpp"

namespace lina {
namespace {

struct RecordingLauncher : Launcher {
  std::vector<int> launched;
  void launch(int task) override { launched.push_back(task); }
};

// One rank. Task 0: an all-to-all crossing `a2a_links`; tasks 1 and 2: allreduce micro-ops crossing `ar_links`.
Plan one_rank_plan(uint8_t a2a_links, uint8_t ar_links) {
  Plan p;
  p.ranks = 1;
  Collective a2a;
  a2a.kind = CommKind::kAllToAll;
  a2a.ranks = {0};
  a2a.bytes = {0};
  a2a.links = a2a_links;
  a2a.phase = Phase::kForward;
  a2a.role = Role::kDispatch;
  p.add_collective(a2a);
  for (int i = 0; i < 2; ++i) {
    Collective ar;
    ar.kind = CommKind::kAllReduce;
    ar.ranks = {0};
    ar.bytes = {8};
    ar.role = Role::kGradSync;
    ar.links = ar_links;
    p.add_collective(ar);
  }
  for (int c = 0; c < 3; ++c) p.add_comm_task(0, c, c == 0 ? Stream::kAllToAll : Stream::kAllReduce, {});
  return p;
}

// The all-to-all starts, then the first micro-op becomes ready; returns what was launched before the all-to-all
// ends, and after.
std::pair<std::vector<int>, std::vector<int>> run(RuntimeScheduler& s, const Plan& p) {
  RecordingLauncher l;
  s.attach(p, l);
  s.on_comm_ready(0, Time::zero());
  s.on_task_start(0, Time::zero());
  s.on_comm_ready(1, Time::us(1));
  std::vector<int> during = l.launched;
  s.on_task_finish(0, Time::us(5));
  return {during, l.launched};
}

TEST(LinaScheduler, DeviceRuleHoldsBehindAnyAllToAll) {
  PolicySpec pol;
  pol.name = "lina";
  auto s = make_training_scheduler(pol);
  auto [during, after] = run(*s, one_rank_plan(kNodeLinks, kNicLinks));
  EXPECT_EQ(during, (std::vector<int>{0}));
  EXPECT_EQ(after, (std::vector<int>{0, 1}));
}

TEST(LinaScheduler, LinkRuleHoldsOnlyBehindAnAllToAllOnSharedLinks) {
  PolicySpec pol;
  pol.name = "lina-partition";
  pol.hold = PolicySpec::Hold::kLinks;
  {
    auto s = make_training_scheduler(pol);
    auto [during, after] = run(*s, one_rank_plan(kNodeLinks, kNicLinks));  // disjoint: goes at once
    EXPECT_EQ(during, (std::vector<int>{0, 1}));
  }
  for (uint8_t ar : {kNodeLinks, kAllLinks}) {  // shared: held until the all-to-all ends
    auto s = make_training_scheduler(pol);
    auto [during, after] = run(*s, one_rank_plan(kNodeLinks, ar));
    EXPECT_EQ(during, (std::vector<int>{0})) << int(ar);
    EXPECT_EQ(after, (std::vector<int>{0, 1})) << int(ar);
  }
}

TEST(LinaScheduler, NoHoldLaunchesAtOnce) {
  PolicySpec pol;
  pol.name = "lina";
  pol.hold = PolicySpec::Hold::kNone;
  auto s = make_training_scheduler(pol);
  auto [during, after] = run(*s, one_rank_plan(kAllLinks, kAllLinks));
  EXPECT_EQ(during, (std::vector<int>{0, 1}));
}

TEST(LinaScheduler, EachTrainingPolicyGetsItsScheduler) {
  PolicySpec pol;
  for (const char* name : {"lina", "lina-priority", "lina-partition", "lina-fixed"}) {
    pol.name = name;
    EXPECT_NE(dynamic_cast<LinaTrainingScheduler*>(make_training_scheduler(pol).get()), nullptr) << name;
  }
  pol.name = "naive-priority";
  EXPECT_NE(dynamic_cast<NaivePriorityScheduler*>(make_training_scheduler(pol).get()), nullptr);
  for (const char* name : {"deepspeed", "tutel", "ideal"}) {
    pol.name = name;
    EXPECT_NE(dynamic_cast<ImmediateScheduler*>(make_training_scheduler(pol).get()), nullptr) << name;
  }
}

}  // namespace
}  // namespace lina

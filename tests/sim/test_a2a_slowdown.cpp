// a2a_bwd_slowdowns: the per-task ratio of backward all-to-all durations between two runs of the same plan
// structure (the paper's Figure 3 against the ideal bound).
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "sched/cluster_spec.hpp"
#include "sched/model_spec.hpp"
#include "sim/training_sim.hpp"

namespace lina::sim {
namespace {

TrainingInput input(const std::string& policy) {
  TrainingInput in;
  in.cluster = load_cluster_preset_or_file("lina-testbed");
  in.cluster.nodes = 2;  // 8 GPUs
  in.model = load_model(nlohmann::json{{"base", "transformer-xl"}, {"layers", 3}, {"experts", 8}}, "", "/model");
  in.workload.batch_size = 2;
  in.workload.seq_len = 128;
  in.workload.steps = 1;
  in.policy.name = policy;
  in.policy.label = policy;
  in.policy.bucket_bytes = 1e5;  // many small buckets: allreduces run during the backward pass
  return in;
}

TEST(A2aSlowdown, SameRunIsOneForEveryBackwardAllToAll) {
  RunResult r = run_training(input("deepspeed"));
  std::vector<double> s = a2a_bwd_slowdowns(r, r).all;
  // 3 MoE layers x 2 backward all-to-alls x 8 ranks (one chunk each).
  ASSERT_EQ(s.size(), 48u);
  for (double x : s) EXPECT_DOUBLE_EQ(x, 1.0);
}

TEST(A2aSlowdown, DeepspeedAgainstIdealIsNeverFasterAndDifferentPlansGiveNothing) {
  RunResult ds = run_training(input("deepspeed")), ideal = run_training(input("ideal"));
  const auto [s, c] = a2a_bwd_slowdowns(ds, ideal);
  ASSERT_EQ(s.size(), 48u);
  // Under the ideal bound an all-to-all is never slowed by an allreduce, so sharing links can only lengthen it
  // (up to rounding of the picosecond clock).
  EXPECT_GE(s.front(), 1.0 - 1e-9);
  EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
  // The ones that met a concurrent allreduce on their rank are a part of them (with these small buckets, some but
  // not all), and they are the slowed ones: their median is above the median of all.
  ASSERT_FALSE(c.empty());
  EXPECT_LT(c.size(), s.size());
  EXPECT_TRUE(std::includes(s.begin(), s.end(), c.begin(), c.end()));
  EXPECT_GT(c[(c.size() - 1) / 2], s[(s.size() - 1) / 2]);
  // lina packs experts: another plan structure, no per-task comparison.
  TrainingInput l = input("lina");
  l.policy.packing = "2";
  EXPECT_TRUE(a2a_bwd_slowdowns(run_training(l), ideal).all.empty());
}

}  // namespace
}  // namespace lina::sim

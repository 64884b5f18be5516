// What one inference MoE layer moves and computes (sched/inference_plan.hpp, layer_traffic): sparse all-to-all-v
// against DeepSpeed-MoE's padded dense dispatch, closed forms on a 4-device, 4-expert layer.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "sched/inference_placement.hpp"
#include "sched/inference_plan.hpp"
#include "sched/inference_scheduler.hpp"
#include "sched/model_spec.hpp"
#include "sched/training_plan.hpp"

namespace lina {
namespace {

constexpr int N = 4, E = 4;

// counts[r * E + e]: every rank routes 10 tokens to expert 0 and 2 to each other expert, rank 3 sends 12 to expert 0.
std::vector<double> skewed_counts() {
  std::vector<double> c(static_cast<size_t>(N) * E, 2.0);
  for (int r = 0; r < N; ++r) c[static_cast<size_t>(r) * E] = 10;
  c[3 * E] = 12;
  return c;
}

double at(const std::vector<double>& m, int i, int j, int cols) { return m[static_cast<size_t>(i) * cols + j]; }

TEST(InferencePlan, SparseDispatchMovesTheRoutedTokens) {
  LayerDecision d;
  d.placement = static_placement(E, N);
  const LayerTraffic t = layer_traffic(skewed_counts(), d, N, E, false);
  EXPECT_EQ(t.capacity, 0);
  EXPECT_DOUBLE_EQ(at(t.tokens, 1, 0, N), 10);
  EXPECT_DOUBLE_EQ(at(t.tokens, 3, 0, N), 12);
  EXPECT_DOUBLE_EQ(at(t.tokens, 0, 2, N), 2);
  EXPECT_DOUBLE_EQ(at(t.work, 0, 0, E), 42);  // 10 + 10 + 10 + 12
  EXPECT_DOUBLE_EQ(at(t.work, 1, 1, E), 8);
}

TEST(InferencePlan, DenseDispatchPadsEveryBufferToTheHottest) {
  // DeepSpeed, dropless: C = 12 (rank 3 -> expert 0); every rank sends 12 tokens to every device, and every device
  // computes 4 * 12 = 48 rows, expert 1's device as well as the hot expert's.
  LayerDecision d;
  d.placement = static_placement(E, N);
  const LayerTraffic t = layer_traffic(skewed_counts(), d, N, E, true);
  EXPECT_EQ(t.capacity, 12);
  EXPECT_EQ(t.slots, 4);
  for (double x : t.tokens) EXPECT_DOUBLE_EQ(x, 12);
  for (int j = 0; j < N; ++j) EXPECT_DOUBLE_EQ(at(t.work, j, j, E), 48) << j;
}

TEST(InferencePlan, ACapacityFactorDropsWhatExceedsTheCapacityAndPadsToIt) {
  // Each rank's capacity comes from its own S (DeepSpeed computes it locally): ranks 0-2 route 16 tokens (top-1),
  // C = ceil(1.0 * 16 / 4) = 4, and drop 10 - 4 = 6 tokens of expert 0; rank 3 routes 18, C = ceil(4.5) = 5, and
  // drops 12 - 5 = 7.
  ModelSpec m;
  m.experts = E;
  m.top_k = 1;
  m.capacity_factor = 1.0;
  std::vector<double> c = skewed_counts();
  const std::vector<double> dropped = drop_over_capacity(c, m, N);
  EXPECT_EQ(dropped, (std::vector<double>{6, 6, 6, 7}));
  for (int r = 0; r < N; ++r) {
    EXPECT_DOUBLE_EQ(at(c, r, 0, E), r == 3 ? 5 : 4);
    EXPECT_DOUBLE_EQ(at(c, r, 1, E), 2);
  }
  LayerDecision d;
  d.placement = static_placement(E, N);
  const LayerTraffic t = layer_traffic(c, d, N, E, true, 4);
  EXPECT_EQ(t.capacity, 5);  // rank 3's 5 tokens for expert 0 set it above the floor
  for (double x : t.tokens) EXPECT_DOUBLE_EQ(x, 5);
  // Padded to the capacity even where fewer tokens are routed.
  const LayerTraffic light = layer_traffic(std::vector<double>(N * E, 1.0), d, N, E, true, 4);
  EXPECT_EQ(light.capacity, 4);
  // Dropless (capacity factor 0): nothing dropped, nothing changed.
  m.capacity_factor = 0;
  std::vector<double> same = skewed_counts();
  EXPECT_TRUE(drop_over_capacity(same, m, N).empty());
  EXPECT_EQ(same, skewed_counts());
}

TEST(InferencePlan, DenseDispatchPadsPerDeviceUnderAReplicatedPlacement) {
  // Expert 0 on devices 0 and 1 (each gets half: 5 or 6 tokens per source), experts 1-3 packed on devices 2 and 3:
  // device 2 holds experts 1 and 2 (2 + 2 tokens per source), device 3 expert 3 (2). The largest buffer is rank 3's
  // 6 tokens to each copy of expert 0, so C = 6 and each device computes 24 rows, split as its experts' tokens are.
  LayerDecision d;
  d.placement.experts = E;
  d.placement.devices = N;
  d.placement.replicas = {{0, 1}, {2}, {2}, {3}};
  const LayerTraffic t = layer_traffic(skewed_counts(), d, N, E, true);
  EXPECT_EQ(t.capacity, 6);
  EXPECT_EQ(t.slots, 4);
  for (double x : t.tokens) EXPECT_DOUBLE_EQ(x, 6);
  EXPECT_DOUBLE_EQ(at(t.work, 0, 0, E), 24);
  EXPECT_DOUBLE_EQ(at(t.work, 2, 1, E), 12);
  EXPECT_DOUBLE_EQ(at(t.work, 2, 2, E), 12);
  EXPECT_DOUBLE_EQ(at(t.work, 3, 3, E), 24);
}

TEST(InferencePlan, DenseDispatchSkipsDevicesWithoutExperts) {
  // Two experts on four devices, expert e on device e only: devices 2 and 3 get no buffer and compute nothing.
  std::vector<double> c = {3, 1, 1, 1, 1, 1, 1, 1};  // [rank * 2 + expert]
  LayerDecision d;
  d.placement.experts = 2;
  d.placement.devices = N;
  d.placement.replicas = {{0}, {1}};
  const LayerTraffic t = layer_traffic(c, d, N, 2, true);
  EXPECT_EQ(t.capacity, 3);
  EXPECT_EQ(t.slots, 2);
  for (int i = 0; i < N; ++i) {
    EXPECT_DOUBLE_EQ(at(t.tokens, i, 0, N), 3);
    EXPECT_DOUBLE_EQ(at(t.tokens, i, 1, N), 3);
    EXPECT_DOUBLE_EQ(at(t.tokens, i, 2, N), 0);
    EXPECT_DOUBLE_EQ(at(t.tokens, i, 3, N), 0);
  }
  EXPECT_DOUBLE_EQ(at(t.work, 1, 1, 2), 12);
  EXPECT_DOUBLE_EQ(at(t.work, 2, 0, 2) + at(t.work, 2, 1, 2), 0);
}

TEST(InferencePlan, FewerExpertsThanDevicesUseDeepSpeedGroups) {
  // DeepSpeed with 2 experts on 4 devices: expert-parallel groups {0, 1} and {2, 3}, each holding both experts;
  // a rank's tokens stay in its group: rank 3 sends expert 0's tokens to device 2, not to device 0.
  const Placement p = static_placement(2, N);
  EXPECT_EQ(p.group_size, 2);
  EXPECT_EQ(p.replicas[0], (std::vector<int>{0, 2}));
  EXPECT_EQ(p.replicas[1], (std::vector<int>{1, 3}));
  std::vector<double> c = {3, 1, 1, 1, 1, 1, 4, 2};  // [rank * 2 + expert]
  LayerDecision d;
  d.placement = p;
  const LayerTraffic t = layer_traffic(c, d, N, 2, false);
  EXPECT_DOUBLE_EQ(at(t.tokens, 0, 0, N), 3);
  EXPECT_DOUBLE_EQ(at(t.tokens, 0, 2, N), 0);
  EXPECT_DOUBLE_EQ(at(t.tokens, 3, 2, N), 4);
  EXPECT_DOUBLE_EQ(at(t.tokens, 3, 0, N), 0);
  EXPECT_DOUBLE_EQ(at(t.tokens, 3, 3, N), 2);
  EXPECT_DOUBLE_EQ(at(t.work, 0, 0, 2), 4);  // ranks 0 and 1: 3 + 1
  EXPECT_DOUBLE_EQ(at(t.work, 2, 0, 2), 5);  // ranks 2 and 3: 1 + 4
  EXPECT_DOUBLE_EQ(at(t.work, 3, 1, 2), 3);
  // Every device holds its group's copy from the start: nothing to load.
  EXPECT_TRUE(missing_weights(p, home_residency(2, N)).empty());
  // Dense dispatch pads inside the groups only: C = 4 (rank 3 -> expert 0), each rank sends C to its group's 2
  // devices and nothing to the other group, and each device computes 2 * C rows.
  const LayerTraffic dt = layer_traffic(c, d, N, 2, true);
  EXPECT_EQ(dt.capacity, 4);
  EXPECT_EQ(dt.slots, 2);
  for (int i = 0; i < N; ++i) {
    for (int j = 0; j < N; ++j) EXPECT_DOUBLE_EQ(at(dt.tokens, i, j, N), i / 2 == j / 2 ? 4 : 0) << i << "->" << j;
  }
  for (int j = 0; j < N; ++j) EXPECT_DOUBLE_EQ(at(dt.work, j, j % 2, 2), 8) << j;
  // The ideal gate on this layout splits each rank's tokens evenly over its own group: rank 3's 6 tokens go 3 and 3
  // to devices 2 and 3, nothing leaves the group, and every device computes its group's tokens / 2.
  d.even_split = true;
  const LayerTraffic it = layer_traffic(c, d, N, 2, false);
  EXPECT_DOUBLE_EQ(at(it.tokens, 3, 2, N), 3);
  EXPECT_DOUBLE_EQ(at(it.tokens, 3, 3, N), 3);
  EXPECT_DOUBLE_EQ(at(it.tokens, 3, 0, N), 0);
  EXPECT_DOUBLE_EQ(at(it.work, 0, 0, 2), 3);  // ranks 0 and 1 route 4 + 2 tokens
  EXPECT_DOUBLE_EQ(at(it.work, 2, 0, 2), 4);  // ranks 2 and 3: 2 + 6
  EXPECT_DOUBLE_EQ(at(it.work, 3, 1, 2), 4);
}

TEST(InferencePlan, EvenSplitNeedsNoPadding) {
  // The ideal gate: every rank's 16 tokens go 4 to each device; padding adds nothing.
  LayerDecision d;
  d.placement = static_placement(E, N);
  d.even_split = true;
  const LayerTraffic t = layer_traffic(skewed_counts(), d, N, E, true);
  // Rank 3 routes 18 tokens, the others 16: the largest buffer is 18 / 4 = 4.5, rounded up to 5.
  EXPECT_EQ(t.capacity, 5);
  for (double x : t.tokens) EXPECT_DOUBLE_EQ(x, 5);
  for (int j = 0; j < N; ++j) EXPECT_DOUBLE_EQ(at(t.work, j, j, E), 20);
}

// Scheduling after the gate (a Phase 2 check or reschedule) decides which device gets which tokens, so the dense
// dispatch's masks and einsum, which lay the buffers out by destination device, start after it; without it they
// follow the gate directly.
TEST(InferencePlan, DenseDispatchWaitsForSchedulingAfterTheGate) {
  const ModelSpec m = load_model(
      nlohmann::json{{"base", "transformer-xl"}, {"layers", 1}, {"experts", E}, {"top_k", 1}, {"capacity_factor", 0}},
      "", "/model");
  ASSERT_TRUE(m.dense_dispatch);
  const ModelCost cost = model_cost(m, 24, 512);
  for (const double blocking : {0.0, 1.45e-3}) {
    InferenceBatchInput in;
    in.model = &m;
    in.cost = &cost;
    in.ranks = N;
    in.counts = {skewed_counts()};
    LayerDecision d;
    d.placement = static_placement(E, N);
    d.blocking_seconds = blocking;
    in.decisions = {d};
    const Plan plan = build_inference_plan(in);
    for (int r = 0; r < N; ++r) {
      // The rank's tasks of the MoE layer in order: the gate, then (with blocking) the host task, then the masks.
      int gate = -1, host = -1, masks = -1;
      for (size_t i = 0; i < plan.tasks.size(); ++i) {
        const Task& t = plan.tasks[i];
        if (t.rank != r) continue;
        if (t.kind == TaskKind::kCompute && t.op == OpKind::kGate) gate = static_cast<int>(i);
        if (t.kind == TaskKind::kHost && host < 0) host = static_cast<int>(i);
        if (gate >= 0 && masks < 0 && t.kind == TaskKind::kCompute && t.op != OpKind::kGate &&
            static_cast<int>(i) > gate)
          masks = static_cast<int>(i);
      }
      ASSERT_GE(gate, 0);
      ASSERT_GE(masks, 0);
      const TaskDeps& deps = plan.tasks[static_cast<size_t>(masks)].deps;
      if (blocking > 0) {
        ASSERT_GE(host, 0) << r;
        EXPECT_EQ(plan.tasks[static_cast<size_t>(host)].host_seconds, blocking);
        EXPECT_NE(std::find(deps.begin(), deps.end(), host), deps.end()) << "rank " << r;
      } else {
        EXPECT_EQ(host, -1) << r;
        EXPECT_EQ(std::vector<int>(deps.begin(), deps.end()), std::vector<int>{gate}) << "rank " << r;
      }
    }
  }
}

}  // namespace
}  // namespace lina

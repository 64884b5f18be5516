// `lina trace stats` on tiny hand-made traces; every expected value is worked out in the comments.
#include <gtest/gtest.h>

#include <cmath>

#include "sched/error.hpp"
#include "tests/traces/helpers.hpp"
#include "traces/stats.hpp"
#include "traces/writer.hpp"

namespace lina::traces {
namespace {

using namespace lina::traces::testing;

// Top-1, 4 experts, layers {0, 1}.
//   batch A (4 tokens): layer 0 -> [0, 0, 0, 1], layer 1 -> [2, 2, 3, 2]
//   batch B (2 tokens): layer 0 -> [1, 1],       layer 1 -> [3, 3]
std::string top1_trace() {
  const std::string path = temp_path("top1.jsonl");
  TraceHeader h = make_header({0, 1}, 4, 1);
  auto a = batch_of({{{0}, {0}, {0}, {1}}, {{2}, {2}, {3}, {2}}}, 1);
  a.flags = kBatchPrefill;
  auto b = batch_of({{{1}, {1}}, {{3}, {3}}}, 1);
  write_trace(path, h, {a, b});
  return path;
}

TEST(TraceStats, SkewTop1) {
  StatsOptions o;
  o.min_group = 1;
  const TraceStats s = compute_stats(top1_trace(), o);
  EXPECT_EQ(s.batches, 2u);
  EXPECT_EQ(s.tokens, 6u);
  EXPECT_DOUBLE_EQ(s.batch_tokens_median, 3.0);  // (2 + 4) / 2
  ASSERT_EQ(s.layers.size(), 2u);
  // Layer 0 over the trace: counts [3, 3, 0, 0], mean 6/4 = 1.5 -> max/mean 3/1.5 = 2; min 0 -> max/min infinite.
  EXPECT_DOUBLE_EQ(s.layers[0].skew_max_over_mean, 2.0);
  EXPECT_TRUE(std::isinf(s.layers[0].skew_max_over_min));
  // Per batch: A [3, 1, 0, 0] -> 3 / (4/4) = 3; B [2, 0, 0, 0] -> 2 / (2/4) = 4; mean 3.5. Every batch has an
  // expert without tokens, so no batch max/min.
  EXPECT_DOUBLE_EQ(s.layers[0].batch_skew_max_over_mean, 3.5);
  EXPECT_TRUE(std::isnan(s.layers[0].batch_skew_max_over_min));
  // Layer 1: [0, 0, 3, 3] -> 2; batches A [0, 0, 3, 1] -> 3, B [0, 0, 0, 2] -> 4.
  EXPECT_DOUBLE_EQ(s.layers[1].skew_max_over_mean, 2.0);
  EXPECT_DOUBLE_EQ(s.overall.skew_max_over_mean, 2.0);
  EXPECT_DOUBLE_EQ(s.overall.batch_skew_max_over_mean, 3.5);
  EXPECT_TRUE(std::isnan(s.overall.skew_max_over_min));  // no layer has a finite max/min
}

TEST(TraceStats, SamePathTop1) {
  StatsOptions o;
  o.min_group = 1;
  const TraceStats s = compute_stats(top1_trace(), o);
  ASSERT_TRUE(s.layers[0].top1.has_value());
  EXPECT_FALSE(s.layers[0].set.has_value());   // top-1 trace: no set mode
  EXPECT_FALSE(s.layers[1].top1.has_value());  // the last layer starts no pair
  const SamePath& p = *s.overall.top1;
  // Group e0 = A0, A1, A2 with next [2, 2, 3]: most common 2, share 2/3.
  // Group e1 = A3, B0, B1 with next [2, 3, 3]: most common 3, share 2/3.
  EXPECT_EQ(p.groups, 2u);
  EXPECT_EQ(p.members, 6u);
  EXPECT_DOUBLE_EQ(p.mean, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(p.weighted, 4.0 / 6.0);
  // k = 2: each group's two most common next experts are {2, 3}: every token hits.
  EXPECT_DOUBLE_EQ(p.k2_mean, 1.0);
  EXPECT_DOUBLE_EQ(p.k2_weighted, 1.0);
  // Shuffled: the six next choices {2,2,2,3,3,3} are dealt to two groups of three; a group's share is 1 (3 equal)
  // or 2/3 (2 + 1), and both groups have the same share, so the mean is exactly 2/3 or 1. k2 stays 1.
  EXPECT_TRUE(p.shuffled_mean == 2.0 / 3.0 || p.shuffled_mean == 1.0) << p.shuffled_mean;
  EXPECT_DOUBLE_EQ(p.shuffled_k2_mean, 1.0);
  // min_group 4: no group is large enough.
  o.min_group = 4;
  const TraceStats s4 = compute_stats(top1_trace(), o);
  EXPECT_EQ(s4.overall.top1->groups, 0u);
  EXPECT_TRUE(std::isnan(s4.overall.top1->mean));
}

// Top-2 as a set (ordered = false: like DeepSeek's unordered top-6), 4 experts, one batch of 4 tokens:
//   t0: layer 0 {0, 1} -> layer 1 {2, 3}
//   t1: layer 0 {0, 2} -> layer 1 {1, 0}
//   t2: layer 0 {0, 3} -> layer 1 {2, 1}
//   t3: layer 0 {1, 2} -> layer 1 {3, 0}
std::string set_trace() {
  const std::string path = temp_path("set.ltr");
  TraceHeader h = make_header({0, 1}, 4, 2);
  h.ordered = false;
  write_trace(path, h, {batch_of({{{0, 1}, {0, 2}, {0, 3}, {1, 2}}, {{2, 3}, {1, 0}, {2, 1}, {3, 0}}}, 2)});
  return path;
}

TEST(TraceStats, SamePathSetMode) {
  StatsOptions o;
  o.min_group = 1;
  const TraceStats s = compute_stats(set_trace(), o);
  EXPECT_FALSE(s.overall.top1.has_value());  // unordered sets without weights have no top-1 choice
  ASSERT_TRUE(s.overall.set.has_value());
  const SamePath& p = *s.overall.set;
  // g0 = {t0, t1, t2}: next sets {2,3} {1,0} {2,1}: counts 0:1 1:2 2:2 3:1, most common 1 (tie with 2: lower id),
  //      hits t1, t2 -> 2/3; second most common 2 -> k2 hits all three.
  // g1 = {t0, t3}: {2,3} {3,0}: most common 3 -> 2/2.     g2 = {t1, t3}: {1,0} {3,0}: most common 0 -> 2/2.
  // g3 = {t2}: {2,1}: most common 1 -> 1/1.
  EXPECT_EQ(p.groups, 4u);
  EXPECT_EQ(p.members, 8u);
  EXPECT_DOUBLE_EQ(p.mean, (2.0 / 3.0 + 1 + 1 + 1) / 4);  // 11/12
  EXPECT_DOUBLE_EQ(p.weighted, 7.0 / 8.0);
  EXPECT_DOUBLE_EQ(p.k2_mean, 1.0);
  // Skew, layer 0: choices 0:3 1:2 2:2 3:1, mean 8/4 = 2 -> max/mean 1.5, max/min 3. Layer 1: 2 each -> 1, 1.
  EXPECT_DOUBLE_EQ(s.layers[0].skew_max_over_mean, 1.5);
  EXPECT_DOUBLE_EQ(s.layers[0].skew_max_over_min, 3.0);
  EXPECT_DOUBLE_EQ(s.layers[1].skew_max_over_mean, 1.0);
  EXPECT_DOUBLE_EQ(s.layers[1].skew_max_over_min, 1.0);
  EXPECT_DOUBLE_EQ(s.overall.skew_max_over_mean, 1.25);
  EXPECT_DOUBLE_EQ(s.overall.skew_max_over_min, 2.0);
  EXPECT_DOUBLE_EQ(s.layers[0].batch_skew_max_over_min, 3.0);  // one batch: the same as the whole trace
  // min_group 3 keeps g0 only.
  o.min_group = 3;
  const SamePath p3 = *compute_stats(set_trace(), o).overall.set;
  EXPECT_EQ(p3.groups, 1u);
  EXPECT_DOUBLE_EQ(p3.mean, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(p3.weighted, 2.0 / 3.0);
}

// With gate weights the top-1 choice is the highest-weight slot, whatever its position.
TEST(TraceStats, Top1UsesTheHighestWeight) {
  const std::string path = temp_path("w.ltr");
  TraceHeader h = make_header({0, 1}, 4, 2, true);
  h.ordered = false;
  auto b = batch_of({{{0, 1}, {1, 0}}, {{2, 3}, {3, 2}}}, 2);
  b.weights = {0.9f, 0.1f, 0.2f, 0.8f,   // layer 0: t0 -> 0, t1 -> 0 (slot 1 has the higher weight)
               0.4f, 0.6f, 0.6f, 0.4f};  // layer 1: t0 -> 3, t1 -> 3
  write_trace(path, h, {b});
  StatsOptions o;
  o.min_group = 2;
  const SamePath p = *compute_stats(path, o).overall.top1;
  EXPECT_EQ(p.groups, 1u);  // both tokens in group 0 (slot 0 alone would give two groups of one)
  EXPECT_DOUBLE_EQ(p.mean, 1.0);
}

TEST(TraceStats, ExcludedLayersAndBatchFilter) {
  const std::string path = temp_path("x.jsonl");
  TraceHeader h = make_header({1, 3, 5}, 4, 1);
  auto a = batch_of({{{0}, {0}}, {{1}, {1}}, {{2}, {3}}}, 1);
  a.flags = kBatchPrefill;
  auto b = batch_of({{{0}}, {{1}}, {{2}}}, 1);
  write_trace(path, h, {a, b});
  StatsOptions o;
  o.min_group = 1;
  o.exclude_layers = {3};
  TraceStats s = compute_stats(path, o);
  ASSERT_EQ(s.layers.size(), 2u);
  EXPECT_EQ(s.layers[0].layer, 1);
  EXPECT_EQ(s.layers[0].next_layer, -1);  // 1 -> 3 dropped, 3 -> 5 dropped: no pair left
  EXPECT_EQ(s.overall.top1->groups, 0u);
  o.exclude_layers = {};
  o.batches = BatchFilter::kPrefill;
  s = compute_stats(path, o);
  EXPECT_EQ(s.batches, 1u);
  EXPECT_EQ(s.tokens, 2u);
  // Prefill only, layer 5: [2, 3] -> counts [0, 0, 1, 1], max/mean 1 / (2/4) = 2.
  EXPECT_DOUBLE_EQ(s.layers[2].skew_max_over_mean, 2.0);
  o.exclude_layers = {4};
  EXPECT_THROW(compute_stats(path, o), InputError);
}

TEST(TraceStats, UnrecordedChoicesAreSkipped) {
  const std::string path = temp_path("u.ltr");
  TraceHeader h = make_header({0, 1}, 2, 1);
  // Token 1's layer-1 choice was not recorded: it leaves the pair and the layer-1 counts.
  write_trace(path, h, {batch_of({{{0}, {0}, {1}}, {{1}, {}, {1}}}, 1)});
  StatsOptions o;
  o.min_group = 1;
  const TraceStats s = compute_stats(path, o);
  EXPECT_EQ(s.overall.top1->members, 2u);
  EXPECT_DOUBLE_EQ(s.layers[1].skew_max_over_mean, 2.0);  // [0, 2]: 2 / (2/2)
}

TEST(TraceStats, JsonKeys) {
  StatsOptions o;
  const auto j = stats_to_json(compute_stats(set_trace(), o));
  for (const char* k : {"skew_max_over_mean", "skew_max_over_min", "batch_skew_max_over_mean"}) {
    EXPECT_TRUE(j["overall"].contains(k)) << k;
    EXPECT_TRUE(j["per_layer"][0].contains(k)) << k;
  }
  for (const char* k : {"same_path_mean", "same_path_weighted", "same_path_shuffled_mean",
                        "same_path_shuffled_weighted", "same_path_k2_mean", "same_path_k2_weighted"}) {
    EXPECT_TRUE(j["overall"]["set"].contains(k)) << k;
  }
  EXPECT_FALSE(j["overall"].contains("top1"));
  EXPECT_EQ(j["per_layer"][1]["next_layer"], nullptr);
}

}  // namespace
}  // namespace lina::traces

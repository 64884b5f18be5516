// Lina's estimator on traces and the profiling / evaluation split (traces/estimate.hpp).
#include <gtest/gtest.h>

#include "sched/error.hpp"
#include "tests/traces/helpers.hpp"
#include "traces/estimate.hpp"
#include "traces/reader.hpp"
#include "traces/writer.hpp"

namespace lina::traces {
namespace {

using namespace lina::traces::testing;

// Profile (4 experts, top-1, layers {0, 1}): layer-0 expert 0 always goes to 2, expert 1 always to 3.
// Eval batch 1: layer 0 [0, 0, 0, 1, 1], layer 1 [2, 2, 2, 3, 3]: estimate {2: 3, 3: 2} = actual top-2 -> hit.
// Eval batch 2: layer 0 [0, 0, 1],       layer 1 [1, 1, 3]:       estimate {2: 2, 3: 1}, actual {1: 2, 3: 1}
//               -> miss.
// Eval batch 3: layer 0 [2, 2],          layer 1 [0, 1]: path "2" is unknown, back off to the layer's overall
//               popularity (2 and 3 equally) -> estimate {2, 3}, actual {0, 1} -> miss; the full path was found
//               for 8 of the 10 tokens.
struct Files {
  std::string profile, eval;
};
Files files() {
  Files f{temp_path("p.jsonl"), temp_path("e.jsonl")};
  const TraceHeader h = make_header({0, 1}, 4, 1);
  write_trace(f.profile, h, {batch_of({{{0}, {1}, {0}, {1}}, {{2}, {3}, {2}, {3}}}, 1)});
  write_trace(f.eval, h,
              {batch_of({{{0}, {0}, {0}, {1}, {1}}, {{2}, {2}, {2}, {3}, {3}}}, 1),
               batch_of({{{0}, {0}, {1}}, {{1}, {1}, {3}}}, 1), batch_of({{{2}, {2}}, {{0}, {1}}}, 1)});
  return f;
}

TEST(Estimate, HandMadeTables) {
  const Files f = files();
  const auto r = evaluate_estimator(f.profile, f.eval, {1});
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].cases, 3u);
  EXPECT_EQ(r[0].hits, 1u);
  EXPECT_DOUBLE_EQ(r[0].accuracy(), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(r[0].coverage(), 8.0 / 10.0);
  ASSERT_EQ(r[0].layers.size(), 1u);
  EXPECT_EQ(r[0].layers[0].layer, 1);
}

TEST(Estimate, TiesInTheActualCountsAreAccepted) {
  // Actual layer-1 counts {2: 1, 3: 1, 0: 1}: any two of them are a correct top-2; the estimate {2, 3} is one.
  const std::string p = temp_path("p.jsonl"), e = temp_path("e.jsonl");
  const TraceHeader h = make_header({0, 1}, 4, 1);
  write_trace(p, h, {batch_of({{{0}, {1}}, {{2}, {3}}}, 1)});
  write_trace(e, h, {batch_of({{{0}, {1}, {3}}, {{2}, {3}, {0}}}, 1)});
  EXPECT_EQ(evaluate_estimator(p, e, {1})[0].hits, 1u);
}

// With 64 experts a row holds up to 8 (expert, count) pairs, then turns dense. Profile: path 0 is followed by 12
// experts at layer 1 (10 five times, 11 three times, 20..29 once: dense), path 1 by 4 (30 four times, 31 twice, 32,
// 33: pairs). Eval batch 1: paths 0, 0, 1, 1 -> estimate 10: 10/18, 11: 6/18, 30: 1, 31: 1/2 -> top-2 {30, 10};
// actual 30, 30, 10, 11 -> hit. Batch 2: paths 0, 0, 0, 1 -> 10: 15/18, 11: 9/18, 30: 1/2 (tie with 11: the lower
// id) -> {10, 11}; actual 10, 10, 11, 31 -> hit. Batch 3: paths 0, 0, 1 -> {10, 30}; actual 20, 21, 32 -> miss.
TEST(Estimate, DenseAndPairRowsEstimateAlike) {
  const std::string p = temp_path("p64.jsonl"), e = temp_path("e64.jsonl");
  const TraceHeader h = make_header({0, 1}, 64, 1);
  std::vector<std::vector<int>> l0, l1;
  auto token = [&](int path, int next) {
    l0.push_back({path});
    l1.push_back({next});
  };
  for (int i = 0; i < 5; ++i) token(0, 10);
  for (int i = 0; i < 3; ++i) token(0, 11);
  for (int x = 20; x < 30; ++x) token(0, x);
  for (int i = 0; i < 4; ++i) token(1, 30);
  for (int i = 0; i < 2; ++i) token(1, 31);
  token(1, 32);
  token(1, 33);
  write_trace(p, h, {batch_of({l0, l1}, 1)});
  write_trace(e, h,
              {batch_of({{{0}, {0}, {1}, {1}}, {{30}, {30}, {10}, {11}}}, 1),
               batch_of({{{0}, {0}, {0}, {1}}, {{10}, {10}, {11}, {31}}}, 1),
               batch_of({{{0}, {0}, {1}}, {{20}, {21}, {32}}}, 1)});
  const auto r = evaluate_estimator(p, e, {1});
  EXPECT_EQ(r[0].cases, 3u);
  EXPECT_EQ(r[0].hits, 2u);
}

TEST(Estimate, RefusesTheSameFile) {
  const Files f = files();
  EXPECT_THROW(evaluate_estimator(f.eval, f.eval, {1}), InputError);
  EXPECT_THROW(evaluate_estimator(f.profile, f.eval, {0}), InputError);
}

TEST(Split, ByBatchesWithoutSharing) {
  const std::string in = temp_path("in.ltr"), a = temp_path("a.ltr"), b = temp_path("b.ltr");
  const TraceHeader h = make_header({0, 1}, 8, 2);
  std::vector<BatchRouting> bs;
  for (int i = 0; i < 10; ++i) bs.push_back(random_batch(h, 1 + i, uint64_t(i)));
  write_trace(in, h, bs);
  auto [np, ne] = split_trace(in, a, b, 0.3, false, 1);
  EXPECT_EQ(np, 3u);
  EXPECT_EQ(ne, 7u);
  auto pa = read_all(a), pb = read_all(b);
  EXPECT_EQ(pa[0].experts, bs[0].experts);
  EXPECT_EQ(pb[0].experts, bs[3].experts);
  // Shuffled: the same sizes, disjoint, deterministic for a seed; batch sizes identify the batches here.
  std::tie(np, ne) = split_trace(in, a, b, 0.5, true, 9);
  EXPECT_EQ(np, 5u);
  std::set<int> seen;
  for (const auto& x : read_all(a)) EXPECT_TRUE(seen.insert(x.tokens).second);
  for (const auto& x : read_all(b)) EXPECT_TRUE(seen.insert(x.tokens).second);
  EXPECT_EQ(seen.size(), 10u);
  const std::string first = read_bytes(a);
  split_trace(in, a, b, 0.5, true, 9);
  EXPECT_EQ(read_bytes(a), first);
  EXPECT_THROW(split_trace(in, a, b, 1.0, false, 1), InputError);
}

}  // namespace
}  // namespace lina::traces

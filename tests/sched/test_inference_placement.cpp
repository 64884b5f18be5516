// Expert placement, Lina's estimator and the inference scheduler's decisions (DESIGN.md 3.2).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "sched/error.hpp"
#include "sched/inference_estimator.hpp"
#include "sched/inference_placement.hpp"
#include "sched/inference_plan.hpp"
#include "sched/inference_scheduler.hpp"

namespace lina {
namespace {

// Expected tokens each device computes when replicas split their expert's load evenly.
std::vector<double> device_load(const Placement& p, const std::vector<double>& load) {
  std::vector<double> d(static_cast<size_t>(p.devices), 0.0);
  for (int e = 0; e < p.experts; ++e) {
    const auto& r = p.replicas[static_cast<size_t>(e)];
    for (int dev : r) d[static_cast<size_t>(dev)] += load[static_cast<size_t>(e)] / static_cast<double>(r.size());
  }
  return d;
}

TEST(InferencePlacement, StaticIsExpertModDevices) {
  Placement p = static_placement(8, 4);
  for (int e = 0; e < 8; ++e) EXPECT_EQ(p.replicas[static_cast<size_t>(e)], std::vector<int>{e % 4});
  EXPECT_EQ(p.hosted()[1], (std::vector<int>{1, 5}));
}

TEST(InferencePlacement, PopularExpertGetsDevicesInProportion) {
  // s = N * load / sum = {2, 1, 1, 0}: expert 0 on two devices, experts 1 and 2 on one each, and the expert nobody
  // picks on a device with a free slot. Every device then expects exactly the mean load (1 device's worth).
  std::vector<double> load = {2, 1, 1, 0};
  Placement p = popularity_placement(load, 4, 4, 1);
  EXPECT_EQ(p.replicas[0].size(), 2u);
  EXPECT_EQ(p.replicas[1].size(), 1u);
  EXPECT_EQ(p.replicas[2].size(), 1u);
  EXPECT_EQ(p.replicas[3].size(), 1u);
  for (double x : device_load(p, load)) EXPECT_DOUBLE_EQ(x, 1.0);
}

TEST(InferencePlacement, FirstFitDecreasingPacksUnpopularExperts) {
  // N = 4, s = {2, .5, .5, .5, .5, 0, 0, 0}: expert 0 takes two devices, the four half-device experts pack two per
  // device, the three unpicked experts go to devices with a free slot. At most 4 experts per device.
  std::vector<double> load = {4, 1, 1, 1, 1, 0, 0, 0};
  Placement p = popularity_placement(load, 4, 4, 7);
  EXPECT_EQ(p.replicas[0].size(), 2u);
  for (int e = 1; e < 8; ++e) EXPECT_EQ(p.replicas[static_cast<size_t>(e)].size(), 1u) << e;
  for (const auto& h : p.hosted()) EXPECT_LE(h.size(), 4u);
  for (double x : device_load(p, load)) EXPECT_NEAR(x, 2.0, 1e-12);  // sum 8 over 4 devices
}

TEST(InferencePlacement, RebalancingMergesLightExpertsToReplicateTheHotOne) {
  // s = {1.9, .7, .7, .7}: no two light experts fit in one device of capacity 1, but merging two (1.4) frees a device
  // that halves the hot expert's load (0.95): the busiest device drops from 1.9 to 1.4.
  std::vector<double> load = {1.9, 0.7, 0.7, 0.7};
  Placement p = popularity_placement(load, 4, 4, 1);
  EXPECT_EQ(p.replicas[0].size(), 2u);
  auto d = device_load(p, load);
  EXPECT_NEAR(*std::max_element(d.begin(), d.end()), 1.4, 1e-12);
}

TEST(InferencePlacement, PrefersDevicesHoldingTheWeights) {
  // Balanced loads: every expert is its own unit; with the home residency each lands on its home device and nothing
  // is loaded.
  std::vector<double> load = {1, 1, 1, 1};
  Residency home = home_residency(4, 4);
  Placement p = popularity_placement(load, 4, 4, 1, &home);
  EXPECT_EQ(p, static_placement(4, 4));
  EXPECT_TRUE(missing_weights(p, home).empty());
  // All load on expert 3: it takes every device, three of which must load it.
  Placement q = popularity_placement(std::vector<double>{0, 0, 0, 4}, 4, 4, 1, &home);
  EXPECT_EQ(q.replicas[3].size(), 4u);
  EXPECT_EQ(missing_weights(q, home).size(), 3u);
}

// Experts nobody is expected to pick, with no device slot left (2 devices of at most 2 experts, 6 experts): each goes
// to a device drawn from the seed. The draw is lina's portable one, so a seed gives the same placement everywhere;
// here: every expert placed once on a valid device, the same seed gives the same placement, and seeds differ.
TEST(InferencePlacement, UnpickedExpertsWithoutAFreeSlotGoToASeededDevice) {
  const std::vector<double> load = {5, 5, 0, 0, 0, 0};
  std::vector<int> first_device_of_last;
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    const Placement p = popularity_placement(load, 2, 2, seed);
    ASSERT_EQ(p.replicas.size(), load.size());
    for (const auto& r : p.replicas) {
      ASSERT_FALSE(r.empty());
      for (int d : r) ASSERT_TRUE(d == 0 || d == 1);
    }
    const Placement again = popularity_placement(load, 2, 2, seed);
    EXPECT_EQ(again.replicas, p.replicas) << seed;
    first_device_of_last.push_back(p.replicas.back().front());
  }
  EXPECT_NE(std::count(first_device_of_last.begin(), first_device_of_last.end(), 0), 0);
  EXPECT_NE(std::count(first_device_of_last.begin(), first_device_of_last.end(), 1), 0);
}

TEST(InferencePlacement, ZeroLoadIsStatic) {
  EXPECT_EQ(popularity_placement(std::vector<double>(6, 0.0), 3, 4, 1), static_placement(6, 3));
}

TEST(InferencePlacement, Top2Hit) {
  std::vector<double> est = {3, 2, 1};
  EXPECT_TRUE(top2_hit(est, std::vector<double>{5, 4, 0}));
  EXPECT_FALSE(top2_hit(est, std::vector<double>{5, 0, 4}));
  // Ties in the actual counts are accepted: {0, 1} are among the two largest of {5, 4, 4}.
  EXPECT_TRUE(top2_hit(est, std::vector<double>{5, 4, 4}));
  // Same set, other order: a hit as a set, a miss as an ordered list.
  std::vector<double> swapped = {2, 3, 1};
  EXPECT_TRUE(top2_hit(swapped, std::vector<double>{5, 4, 0}));
  EXPECT_FALSE(top2_hit(swapped, std::vector<double>{5, 4, 0}, true));
}

// Two MoE layers, 4 experts, top-1: layer 1 = layer 0 + 1 (mod 4), layer 0 choices given.
BatchRouting chain_batch(const std::vector<uint16_t>& first) {
  BatchRouting b;
  b.resize(static_cast<int>(first.size()), 2, 1, false);
  for (size_t t = 0; t < first.size(); ++t) {
    b.experts[b.index(0, static_cast<int>(t))] = first[t];
    b.experts[b.index(1, static_cast<int>(t))] = static_cast<uint16_t>((first[t] + 1) % 4);
  }
  return b;
}

// A brute-force form of Lina's tables for the last layer `last`: path (the top-1 choices, slot 0, at layers last-m ..
// last-1) -> expert chosen at `last` (every slot) -> count, for m = 0..l.
using RefTables = std::map<std::vector<uint16_t>, std::map<int, double>>;
std::vector<uint16_t> ref_path(const BatchRouting& b, int t, int last, int m) {
  std::vector<uint16_t> path;
  for (int j = last - m; j < last; ++j) path.push_back(b.experts[b.index(j, t, 0)]);
  return path;
}
void ref_add(RefTables& ref, const BatchRouting& p, int last, int l) {
  for (int t = 0; t < p.tokens; ++t) {
    for (int m = 0; m <= l; ++m) {
      auto& row = ref[ref_path(p, t, last, m)];
      for (int s = 0; s < p.top_k; ++s) row[p.experts[p.index(last, t, s)]] += 1;
    }
  }
}
// The estimate at `last`: for each token, the next-expert frequencies of the longest known path (<= l), scaled to
// top_k choices per token.
std::vector<double> ref_estimate(const RefTables& ref, const BatchRouting& b, int last, int l, int experts) {
  std::vector<double> want(static_cast<size_t>(experts), 0.0);
  for (int t = 0; t < b.tokens; ++t) {
    for (int m = l; m >= 0; --m) {
      auto it = ref.find(ref_path(b, t, last, m));
      if (it == ref.end()) continue;
      double total = 0;
      for (const auto& [e, c] : it->second) total += c;
      for (const auto& [e, c] : it->second) want[static_cast<size_t>(e)] += b.top_k * c / total;
      break;
    }
  }
  return want;
}

TEST(InferenceEstimator, MatchesABruteForceReferenceOnLongPaths) {
  // 16 experts, paths of up to 5 choices: 20-bit keys, past the flat index, so the open-addressing index grows
  // several times; layer 5's choice depends weakly on the path, so most rows stay sparse and the popular ones turn
  // dense. The estimate must equal a direct count: for each token, the next-expert frequencies of the longest path
  // (<= l) seen in profiling, scaled to one choice per token.
  constexpr int L = 6, E = 16, l = 5;
  std::mt19937_64 rng(7);
  auto batch = [&](int tokens) {
    BatchRouting b;
    b.resize(tokens, L, 1, false);
    for (int t = 0; t < tokens; ++t) {
      for (int j = 0; j < L; ++j) {
        const uint16_t prev = j ? b.experts[b.index(j - 1, t)] : 0;
        b.experts[b.index(j, t)] = static_cast<uint16_t>(rng() % 3 == 0 ? (prev + 1) % E : rng() % E);
      }
    }
    return b;
  };
  PathEstimator est(L, E, 1, l);
  RefTables ref;
  for (int i = 0; i < 3; ++i) {
    BatchRouting p = batch(4000);
    est.add(p);
    ref_add(ref, p, L - 1, l);
  }
  BatchRouting b = batch(3000);
  std::vector<uint16_t> top1;
  PathEstimator::top1_choices(b, top1);
  std::vector<double> out(E);
  est.estimate(b, top1, L - 1, l, out);
  const std::vector<double> want = ref_estimate(ref, b, L - 1, l, E);
  double sum = 0;
  for (int e = 0; e < E; ++e) {
    EXPECT_NEAR(out[static_cast<size_t>(e)], want[static_cast<size_t>(e)], 1e-9) << e;
    sum += out[static_cast<size_t>(e)];
  }
  EXPECT_NEAR(sum, 3000, 1e-6);  // every token's path is known at least at length 0
}

TEST(InferenceEstimator, ManyExpertsAndTopKMatchTheReferenceInLittleMemory) {
  // DeepSeek-V3's shape: 256 experts, top-8. After its first token nearly every path has more than the 4 inline
  // pairs; the rows in between inline and dense (past 32 experts) must give the reference's estimate, and in far
  // less memory than a dense row each (1 KiB).
  constexpr int L = 4, E = 256, k = 8, l = 3;
  std::mt19937_64 rng(11);
  auto batch = [&](int tokens) {
    BatchRouting b;
    b.resize(tokens, L, k, false);
    for (int t = 0; t < tokens; ++t) {
      for (int j = 0; j < L; ++j) {
        const auto base = static_cast<uint16_t>(rng() % 64);  // slot 0 (the path) among 64 experts: some paths repeat
        for (int s = 0; s < k; ++s) {
          b.experts[b.index(j, t, s)] = static_cast<uint16_t>(s == 0 ? base : (base + 1 + rng() % (E - 1)) % E);
        }
      }
    }
    return b;
  };
  PathEstimator est(L, E, k, l);
  RefTables ref;
  for (int i = 0; i < 2; ++i) {
    BatchRouting p = batch(3000);
    est.add(p);
    ref_add(ref, p, L - 1, l);
  }
  size_t dense_rows = 0;
  for (const auto& [path, next] : ref) dense_rows += next.size() > 32;
  ASSERT_GT(dense_rows, 0u);                  // some rows go dense (the short paths)
  ASSERT_GT(ref.size() - dense_rows, 1000u);  // most stay in pairs
  BatchRouting b = batch(2000);
  std::vector<uint16_t> top1;
  PathEstimator::top1_choices(b, top1);
  std::vector<double> out(E);
  est.estimate(b, top1, L - 1, l, out);
  const std::vector<double> want = ref_estimate(ref, b, L - 1, l, E);
  for (int e = 0; e < E; ++e) EXPECT_NEAR(out[static_cast<size_t>(e)], want[static_cast<size_t>(e)], 1e-9) << e;
  // The layer-3 tables hold ref.size() rows; every layer's together hold about L times that. A dense row each would
  // be 1 KiB a row; pairs take a few hundred bytes at most.
  EXPECT_LT(est.table_bytes(), L * ref.size() * 300) << est.table_bytes() << " bytes for " << ref.size() << " rows";
}

TEST(InferenceEstimator, FollowsPathsAndBacksOff) {
  PathEstimator est(2, 4, 1, 1);
  est.add(chain_batch({0, 1, 2, 0}));  // paths 0->1, 1->2, 2->3 seen; 3 never seen at layer 0
  EXPECT_EQ(est.profiled_batches(), 1);
  BatchRouting b = chain_batch({0, 0, 1, 3});
  std::vector<uint16_t> top1;
  PathEstimator::top1_choices(b, top1);
  std::vector<double> out(4);
  est.estimate(b, top1, 1, 1, out);
  // Tokens from 0 go to 1 (twice), from 1 to 2; the token from 3 has an unknown path and backs off to layer 1's
  // profiled popularity {1: 2/4, 2: 1/4, 3: 1/4}.
  EXPECT_DOUBLE_EQ(out[0], 0.0);
  EXPECT_DOUBLE_EQ(out[1], 2.5);
  EXPECT_DOUBLE_EQ(out[2], 1.25);
  EXPECT_DOUBLE_EQ(out[3], 0.25);
  // Path length 0: the layer's popularity for every token: 4 * {0, .5, .25, .25}.
  est.estimate(b, top1, 1, 0, out);
  EXPECT_DOUBLE_EQ(out[1], 2.0);
  EXPECT_DOUBLE_EQ(out[2], 1.0);
  EXPECT_EQ(est.mean_counts(0), (std::vector<double>{2, 1, 1, 0}));
}

// Token t of a batch of T is on rank floor(t N / T), for any T and N (uneven splits included), and only recorded
// choices of experts below E count.
TEST(InferencePlan, RankExpertCountsSplitTokensAsFloorTNOverT) {
  std::mt19937_64 rng(5);
  for (int T = 1; T <= 40; ++T) {
    for (int N = 1; N <= 9; ++N) {
      BatchRouting b;
      b.resize(T, 2, 2, false);
      for (auto& e : b.experts) e = static_cast<uint16_t>(rng() % 7);  // ids 5 and 6 are past E = 5
      b.experts[b.index(1, 0, 0)] = kNoExpert;                         // token 0 unrecorded at layer 1
      b.experts[b.index(1, 0, 1)] = kNoExpert;
      for (int layer = 0; layer < 2; ++layer) {
        std::vector<double> want(static_cast<size_t>(N) * 5, 0.0);
        for (int t = 0; t < T; ++t) {
          for (int s = 0; s < 2; ++s) {
            const uint16_t e = b.experts[b.index(layer, t, s)];
            if (e < 5) want[static_cast<size_t>(t * N / T) * 5 + e] += 1;
          }
        }
        ASSERT_EQ(rank_expert_counts(b, layer, 5, N), want) << T << " " << N << " " << layer;
      }
    }
  }
}

TEST(InferenceEstimator, APathFollowedOnlyByOutOfRangeChoicesBacksOff) {
  // Token 0 goes 0 -> 5, an id outside the estimator's 4 experts: the path 0 gets a row with no counts, which must
  // back off to the layer's popularity (made of tokens 1 and 2: experts 2 and 3) rather than add nothing.
  PathEstimator est(2, 4, 1, 1);
  BatchRouting p;
  p.resize(3, 2, 1, false);
  const uint16_t ids[3][2] = {{0, 5}, {1, 2}, {1, 3}};
  for (int t = 0; t < 3; ++t) {
    for (int l = 0; l < 2; ++l) p.experts[p.index(l, t)] = ids[t][l];
  }
  est.add(p);
  BatchRouting b;
  b.resize(1, 2, 1, false);
  b.experts[b.index(0, 0)] = 0;
  b.experts[b.index(1, 0)] = 2;
  std::vector<uint16_t> top1;
  PathEstimator::top1_choices(b, top1);
  std::vector<double> out(4);
  est.estimate(b, top1, 1, 1, out);
  EXPECT_EQ(out, (std::vector<double>{0, 0, 0.5, 0.5}));
}

// freeze() lays the rows out by path key; estimates must not change by a bit. Covers dense and sparse rows, unknown
// paths, unrecorded choices (the path is cut), ids past the expert count, zero-count rows, top-2, an expert count
// that is not a power of two, and path lengths shorter than the tables'.
TEST(InferenceEstimator, FrozenTablesGiveBitIdenticalEstimates) {
  for (const int E : {6, 16}) {
    constexpr int L = 7, k = 2, max_path = 3;
    std::mt19937_64 rng(static_cast<uint64_t>(E));
    auto batch = [&](int tokens) {
      BatchRouting b;
      b.resize(tokens, L, k, false);
      for (int t = 0; t < tokens; ++t) {
        const int hot = static_cast<int>(rng() % 3);  // a few hot paths make dense rows, the rest stay sparse
        for (int j = 0; j < L; ++j) {
          for (int s = 0; s < k; ++s) {
            auto e = static_cast<uint16_t>(rng() % 4 == 0 ? rng() % E : (hot + j + s) % E);
            if (rng() % 50 == 0) e = static_cast<uint16_t>(E + 1);  // outside the model
            b.experts[b.index(j, t, s)] = e;
          }
          if (rng() % 40 == 0) {
            for (int s = 0; s < k; ++s) b.experts[b.index(j, t, s)] = kNoExpert;
          }
        }
      }
      return b;
    };
    PathEstimator plain(L, E, k, max_path), frozen(L, E, k, max_path);
    for (int i = 0; i < 2; ++i) {
      BatchRouting p = batch(700);
      plain.add(p);
      frozen.add(p);
    }
    frozen.freeze();
    BatchRouting b = batch(900);
    std::vector<uint16_t> top1;
    PathEstimator::top1_choices(b, top1);
    std::vector<double> want(static_cast<size_t>(E)), got(static_cast<size_t>(E));
    for (int j = 0; j < L; ++j) {
      for (int l = 0; l <= max_path; ++l) {
        plain.estimate(b, top1, j, l, want);
        frozen.estimate(b, top1, j, l, got);
        for (int e = 0; e < E; ++e) {
          ASSERT_EQ(std::bit_cast<uint64_t>(got[static_cast<size_t>(e)]),
                    std::bit_cast<uint64_t>(want[static_cast<size_t>(e)]))
              << "E " << E << " layer " << j << " l " << l << " expert " << e;
        }
      }
    }
    // add() after freeze() drops the frozen rows: estimates follow the new counts.
    BatchRouting p = batch(300);
    plain.add(p);
    frozen.add(p);
    plain.estimate(b, top1, L - 1, max_path, want);
    frozen.estimate(b, top1, L - 1, max_path, got);
    EXPECT_EQ(got, want);
  }
}

TEST(InferenceScheduler, LinaTwoPhaseDecisions) {
  auto est = std::make_shared<PathEstimator>(2, 4, 1, 1);
  est->add(chain_batch({0, 0, 0, 0, 0, 0, 1, 2}));
  PolicySpec pol;
  pol.name = "lina";
  pol.path_length = 1;
  InferenceScheduler s(pol, 4, 4, 2, est, 1);

  // Estimate right. Layer 0 has no path: Phase 2 alone places it on the gate's counts (s = {3, .5, .5, 0}: expert
  // 0 on three devices, experts 1 and 2 packed on one) and blocks for schedule_cost and three loads: expert 0's two
  // new copies and whichever of experts 1, 2 left its home device. Phase 1 for layer 1
  // at layer 0's gate (schedule_cost, overlapped); Phase 2 finds the same top-2 and costs finetune_cost.
  BatchRouting b = chain_batch({0, 0, 0, 0, 0, 0, 1, 2});
  s.begin_batch(b);
  LayerDecision d0 = s.on_gate(0, std::vector<double>{6, 1, 1, 0});
  EXPECT_FALSE(d0.scheduled);
  EXPECT_EQ(d0.placement.replicas[0].size(), 3u);
  EXPECT_DOUBLE_EQ(d0.blocking_seconds, pol.schedule_cost.seconds());
  EXPECT_EQ(d0.blocking_loads.size(), 3u);
  EXPECT_DOUBLE_EQ(d0.next_phase1_seconds, pol.schedule_cost.seconds());
  EXPECT_FALSE(d0.next_phase1_loads.empty());  // expert 1 (6 of 8 tokens expected) is replicated beyond home
  LayerDecision d1 = s.on_gate(1, std::vector<double>{0, 6, 1, 1});
  EXPECT_TRUE(d1.scheduled && d1.estimate_hit && !d1.rescheduled);
  EXPECT_DOUBLE_EQ(d1.blocking_seconds, pol.finetune_cost.seconds());
  EXPECT_TRUE(d1.blocking_loads.empty());
  EXPECT_GE(d1.placement.replicas[1].size(), 2u);

  // Estimate wrong (the actual routing no longer follows the profile): Phase 2 reschedules and blocks.
  BatchRouting c = chain_batch({0, 0, 0, 0, 0, 0, 1, 2});
  s.begin_batch(c);
  s.on_gate(0, std::vector<double>{6, 1, 1, 0});
  LayerDecision e1 = s.on_gate(1, std::vector<double>{0, 0, 2, 6});
  EXPECT_TRUE(e1.scheduled && !e1.estimate_hit && e1.rescheduled);
  EXPECT_DOUBLE_EQ(e1.blocking_seconds, pol.schedule_cost.seconds());
  EXPECT_GE(e1.placement.replicas[3].size(), 2u);
}

TEST(InferenceScheduler, LayersBeforeThePathAreStaticWithoutPhase2) {
  // `before_path: static`, and lina-no-finetune (Phase 1 only) always: layer 0 keeps the static placement, free.
  auto est = std::make_shared<PathEstimator>(2, 4, 1, 1);
  est->add(chain_batch({0, 0, 0, 0, 0, 0, 1, 2}));
  for (const char* variant : {"lina/static", "lina-no-finetune"}) {
    SCOPED_TRACE(variant);
    PolicySpec pol;
    pol.name = std::string(variant) == "lina/static" ? "lina" : "lina-no-finetune";
    pol.before_path_static = std::string(variant) == "lina/static";
    pol.path_length = 1;
    InferenceScheduler s(pol, 4, 4, 2, est, 1);
    BatchRouting b = chain_batch({0, 0, 0, 0, 0, 0, 1, 2});
    s.begin_batch(b);
    LayerDecision d0 = s.on_gate(0, std::vector<double>{6, 1, 1, 0});
    EXPECT_EQ(d0.placement, static_placement(4, 4));
    EXPECT_EQ(d0.blocking_seconds, 0);
    EXPECT_TRUE(d0.blocking_loads.empty());
    EXPECT_DOUBLE_EQ(d0.next_phase1_seconds, pol.schedule_cost.seconds());
  }
}

TEST(InferenceScheduler, BaselinesAndBounds) {
  PolicySpec pol;
  pol.name = "deepspeed";
  InferenceScheduler ds(pol, 4, 4, 2, nullptr, 1);
  BatchRouting b = chain_batch({0, 0, 0, 1});
  ds.begin_batch(b);
  LayerDecision d = ds.on_gate(0, std::vector<double>{3, 1, 0, 0});
  EXPECT_EQ(d.placement, static_placement(4, 4));
  EXPECT_EQ(d.blocking_seconds, 0);

  pol.name = "oracle-placement";
  InferenceScheduler oracle(pol, 4, 4, 2, nullptr, 1);
  oracle.begin_batch(b);
  d = oracle.on_gate(0, std::vector<double>{3, 1, 0, 0});
  EXPECT_EQ(d.placement.replicas[0].size(), 3u);  // s = {3, 1, 0, 0}
  EXPECT_EQ(d.blocking_seconds, 0);

  pol.name = "lina-no-estimate";
  InferenceScheduler ne(pol, 4, 4, 2, nullptr, 1);
  ne.begin_batch(b);
  d = ne.on_gate(0, std::vector<double>{3, 1, 0, 0});
  EXPECT_EQ(d.placement.replicas[0].size(), 3u);
  EXPECT_DOUBLE_EQ(d.blocking_seconds, pol.schedule_cost.seconds());
  EXPECT_EQ(d.blocking_loads.size(), 2u);  // expert 0 on two devices that are not its home

  pol.name = "lina";
  EXPECT_THROW(InferenceScheduler(pol, 4, 4, 2, nullptr, 1), InputError);
}

// policy.expert_cache: copies a placement stops using stay resident (in that much memory per device, least recently
// released evicted first), so a later placement that wants them back loads nothing. lina-no-estimate on 4 devices
// and 4 experts of 1 MB, one layer: batches alternate between expert 0 and expert 1 being hot (3 of 4 tokens).
TEST(InferenceScheduler, ExpertCacheKeepsReleasedCopies) {
  constexpr double kExpertBytes = 1e6;
  auto loads_per_batch = [&](double cache_bytes) {
    PolicySpec pol;
    pol.name = "lina-no-estimate";
    pol.expert_cache_bytes = cache_bytes;
    InferenceScheduler s(pol, 4, 4, 1, nullptr, 1, 0, kExpertBytes);
    std::vector<size_t> loads;
    BatchRouting b = chain_batch({0});
    for (int batch = 0; batch < 6; ++batch) {
      s.begin_batch(b);
      std::vector<double> actual = {0, 0, 0, 1};
      actual[static_cast<size_t>(batch % 2)] = 3;  // s = 3 copies of the hot expert
      LayerDecision d = s.on_gate(0, actual);
      EXPECT_EQ(d.placement.replicas[static_cast<size_t>(batch % 2)].size(), 3u);
      loads.push_back(d.blocking_loads.size());
    }
    return loads;
  };
  // Without a cache every batch loads copies of the hot expert again (the other placements' leftovers may hold one).
  const std::vector<size_t> none = loads_per_batch(0);
  for (size_t i = 0; i < none.size(); ++i) EXPECT_GE(none[i], 1u) << "batch " << i;
  // With room for 2 copies per device, once both hot sets have been loaded nothing loads again.
  const std::vector<size_t> cached = loads_per_batch(2 * kExpertBytes);
  EXPECT_EQ(cached[0], none[0]);
  EXPECT_EQ(cached[1], none[1]);
  for (size_t i = 2; i < cached.size(); ++i) EXPECT_EQ(cached[i], 0u) << "batch " << i;
  // Less than one copy of room is no cache.
  EXPECT_EQ(loads_per_batch(0.5 * kExpertBytes), none);
}

// Lina: Phase 1 loads that Phase 2 replaced are kept by the cache too. Profile: layer 1 = layer 0 + 1. Batch 1:
// Phase 1 places layer 1 for expert 1 (estimated 6 of 8 tokens) and loads its copies; the gate shows expert 3
// instead, so Phase 2 reschedules. Batch 2: Phase 1 wants the same copies of expert 1 again; with a cache they are
// still resident.
TEST(InferenceScheduler, ExpertCacheKeepsPhase1LoadsThatPhase2Replaced) {
  auto est = std::make_shared<PathEstimator>(2, 4, 1, 1);
  est->add(chain_batch({0, 0, 0, 0, 0, 0, 1, 2}));
  auto phase1_loads = [&](double cache_bytes) {
    PolicySpec pol;
    pol.name = "lina";
    pol.path_length = 1;
    pol.expert_cache_bytes = cache_bytes;
    InferenceScheduler s(pol, 4, 4, 2, est, 1, 0, 1);
    BatchRouting b = chain_batch({0, 0, 0, 0, 0, 0, 1, 2});
    s.begin_batch(b);
    const LayerDecision first = s.on_gate(0, std::vector<double>{6, 1, 1, 0});
    EXPECT_FALSE(first.next_phase1_loads.empty());
    EXPECT_TRUE(s.on_gate(1, std::vector<double>{0, 0, 2, 6}).rescheduled);
    s.begin_batch(b);
    return s.on_gate(0, std::vector<double>{6, 1, 1, 0}).next_phase1_loads;
  };
  const auto without = phase1_loads(0);
  const auto with = phase1_loads(16);
  EXPECT_FALSE(without.empty());  // expert 1's copies were dropped with the rescheduled placement
  for (const auto& [dev, e] : with) EXPECT_NE(e, 1) << "device " << dev;  // expert 1's copies stayed resident
  EXPECT_LT(with.size(), without.size());
}

// A device's cache holds at most its budget: with room for one copy, the older of two released copies is evicted.
TEST(InferenceScheduler, ExpertCacheEvictsTheLeastRecentlyReleased) {
  PolicySpec pol;
  pol.name = "lina-no-estimate";
  pol.expert_cache_bytes = 1;
  InferenceScheduler s(pol, 2, 2, 1, nullptr, 1, 0, 1);
  BatchRouting b = chain_batch({0});
  auto gate = [&](std::vector<double> actual) {
    s.begin_batch(b);
    return s.on_gate(0, actual);
  };
  // Expert 0 alone (2 copies: devices 0 and 1), then expert 1 alone (device 0 gets it; device 1 keeps expert 0 in
  // its cache), then expert 0 again: device 1 still holds it, nothing loads.
  EXPECT_EQ(gate({2, 0}).blocking_loads, (std::vector<std::pair<int, int>>{{1, 0}}));
  EXPECT_EQ(gate({0, 2}).blocking_loads, (std::vector<std::pair<int, int>>{{0, 1}}));
  EXPECT_TRUE(gate({2, 0}).blocking_loads.empty());
  // Expert 1 again: device 0 gets its cached copy back; then expert 0: device 1's copy was released (the cache
  // now holds it), device 0's copy of expert 1 released too, still nothing to load.
  EXPECT_TRUE(gate({0, 2}).blocking_loads.empty());
  EXPECT_TRUE(gate({2, 0}).blocking_loads.empty());
}

}  // namespace
}  // namespace lina

namespace lina {
namespace {

// 8 devices on 2 nodes of 4. Expert 0 expects 6 of 8 tokens: s_0 = 8 * 6/8 = 6 copies; experts 1 and 2 (1 token
// each) get one device each. Without nodes the six copies take devices 0-5 (four on node 0); with nodes each copy
// goes to the node with less expected load so far, so node 0 and node 1 get three copies each.
TEST(InferencePlacement, CopiesOfAHotExpertSpreadOverNodes) {
  std::vector<double> load = {6, 1, 1, 0, 0, 0, 0, 0};
  Placement flat = popularity_placement(load, 8, 4, 1);
  Placement spread = popularity_placement(load, 8, 4, 1, nullptr, 4);
  auto per_node = [](const std::vector<int>& devices) {
    int n0 = 0;
    for (int d : devices) n0 += d < 4 ? 1 : 0;
    return std::pair<int, int>{n0, static_cast<int>(devices.size()) - n0};
  };
  ASSERT_EQ(flat.replicas[0].size(), 6u);
  ASSERT_EQ(spread.replicas[0].size(), 6u);
  EXPECT_EQ(per_node(flat.replicas[0]), (std::pair<int, int>{4, 2}));
  EXPECT_EQ(per_node(spread.replicas[0]), (std::pair<int, int>{3, 3}));
}

}  // namespace
}  // namespace lina

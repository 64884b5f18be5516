// The synthetic generator (traces/synth.hpp): determinism, the Zipf marginal, the inter-layer correlation and
// fitting the parameters back from a trace.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "sched/error.hpp"
#include "sched/random.hpp"
#include "tests/traces/helpers.hpp"
#include "traces/reader.hpp"
#include "traces/stats.hpp"
#include "traces/synth.hpp"
#include "traces/writer.hpp"

namespace lina::traces {
namespace {

using namespace lina::traces::testing;

SynthParams small(double zipf, double rho, int k = 1) {
  SynthParams p;
  p.experts = 8;
  p.top_k = k;
  p.layers = 4;
  p.batches = 10;
  p.tokens = 2000;
  p.zipf = zipf;
  p.rho = rho;
  p.seed = 42;
  return p;
}

TEST(Synth, SameSeedSameBytes) {
  SynthParams p = small(1.0, 0.5, 2);
  p.weights = true;
  const std::string a = temp_path("a.ltr"), b = temp_path("b.ltr"), c = temp_path("c.ltr");
  write_synth(a, p);
  write_synth(b, p);
  p.seed = 43;
  write_synth(c, p);
  EXPECT_EQ(read_bytes(a), read_bytes(b));
  EXPECT_NE(read_bytes(a), read_bytes(c));
}

// The sampling is our own (not std:: distributions), so these ids are the same on every platform. If this test
// fails after an intended change of the generator, committed samples must be regenerated.
TEST(Synth, PortableSequence) {
  SynthParams p = small(1.0, 0.5, 2);
  p.tokens = 3;
  p.layers = 2;
  SynthGenerator g(p);
  BatchRouting b;
  g.next(b);
  const std::vector<uint16_t> first(b.experts.begin(), b.experts.end());
  SynthGenerator g2(p);
  BatchRouting b2;
  g2.next(b2);
  EXPECT_EQ(first, b2.experts);
  EXPECT_EQ(first, (std::vector<uint16_t>{0, 2, 7, 0, 7, 5, 3, 0, 6, 3, 6, 0}));
}

// The bucket table must answer exactly as counting the cumulative weights <= u, including at the weights themselves
// and one ulp either side of them, for few and many ranks.
TEST(Synth, RankSamplerAnswersAsCounting) {
  for (int experts : {1, 2, 16, 100, 1000}) {
    for (double zipf : {0.0, 0.619, 1.2, 3.0}) {
      std::vector<double> cdf;
      double acc = 0;
      for (int r = 0; r < experts; ++r) cdf.push_back(acc += std::pow(r + 1.0, -zipf));
      const RankSampler s(cdf);
      std::vector<double> probes;
      for (int i = 0; i <= 20000; ++i) probes.push_back(acc * i / 20000.0);
      for (double c : cdf) {
        probes.push_back(c);
        probes.push_back(std::nextafter(c, 0.0));
        probes.push_back(std::nextafter(c, 2 * acc));
      }
      std::mt19937_64 rng(experts);
      for (int i = 0; i < 20000; ++i) probes.push_back(uniform01(rng) * acc);
      for (double u : probes) {
        const auto want = static_cast<size_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
        ASSERT_EQ(s.rank_at(u), want) << experts << " " << zipf << " " << u;
        ASSERT_EQ(s.count_at(u), want);
      }
    }
  }
}

TEST(Synth, ZipfMarginal) {
  // Top-1, zipf 2 over 8 experts: the most popular expert has probability 1 / H where H = sum_r 1/r^2 (r = 1..8)
  // = 1.527422, so max/mean = 8 / 1.527422 = 5.2376 whatever rho (following keeps the rank).
  for (double rho : {0.0, 0.7}) {
    const std::string path = temp_path("z.ltr");
    write_synth(path, small(2.0, rho));
    StatsOptions o;
    const TraceStats s = compute_stats(path, o);
    EXPECT_NEAR(s.overall.skew_max_over_mean, 5.2376, 0.06) << "rho " << rho;
  }
  // zipf 0: uniform, max/mean close to 1.
  const std::string path = temp_path("u.ltr");
  write_synth(path, small(0.0, 0.0));
  StatsOptions o;
  EXPECT_NEAR(compute_stats(path, o).overall.skew_max_over_mean, 1.0, 0.06);
}

TEST(Synth, CorrelationSetsTheSamePathShare) {
  // Uniform popularity, top-1: a group follows its designated next expert with probability rho, and a fresh
  // uniform draw hits it with probability 1/8: share = rho + (1 - rho) / 8. Shuffled: about 1/8 plus noise.
  for (double rho : {0.0, 0.3, 0.8}) {
    const std::string path = temp_path("r.ltr");
    write_synth(path, small(0.0, rho));
    StatsOptions o;
    const TraceStats s = compute_stats(path, o);
    EXPECT_NEAR(s.overall.top1->mean, rho + (1 - rho) / 8, 0.02) << "rho " << rho;
    EXPECT_NEAR(s.overall.top1->shuffled_mean, 0.125, 0.02);
  }
}

TEST(Synth, HotSetsDifferBetweenLayers) {
  SynthParams p = small(1.5, 0.0);
  p.layers = 8;
  p.tokens = 500;
  SynthGenerator g(p);
  BatchRouting b;
  g.next(b);
  const LayerCounts c = count_experts(b, p.experts);
  std::set<int> hottest;
  for (int l = 0; l < p.layers; ++l) {
    int best = 0;
    for (int e = 1; e < p.experts; ++e) {
      if (c.count(l, e) > c.count(l, best)) best = e;
    }
    hottest.insert(best);
  }
  EXPECT_GE(hottest.size(), 3u);  // eight layers, each with its own ranking
}

TEST(Synth, FitRecoversParameters) {
  SynthParams p = small(1.0, 0.5, 2);
  p.experts = 16;
  p.layers = 6;
  p.batches = 20;
  p.tokens = 256;
  const std::string path = temp_path("f.ltr");
  write_synth(path, p);
  StatsOptions o;
  const FitResult f = fit_synth(compute_stats(path, o));
  EXPECT_EQ(f.mode, "top1");
  EXPECT_EQ(f.params.experts, 16);
  EXPECT_EQ(f.params.top_k, 2);
  EXPECT_EQ(f.params.layers, 6);
  EXPECT_EQ(f.params.tokens, 256);
  EXPECT_NEAR(f.params.zipf, 1.0, 0.12);
  EXPECT_NEAR(f.params.rho, 0.5, 0.08);
  EXPECT_NEAR(f.fitted_same_path, f.target_same_path, 0.02);
}

TEST(Synth, BadParameters) {
  SynthParams p;
  p.top_k = 17;
  EXPECT_THROW(p.validate(), InputError);
  p = SynthParams{};
  p.rho = 1.5;
  EXPECT_THROW(p.validate(), InputError);
  p = SynthParams{};
  p.zipf = -1;
  EXPECT_THROW(SynthGenerator{p}, InputError);
}

}  // namespace
}  // namespace lina::traces

namespace lina::traces {
namespace {

using namespace lina::traces::testing;

// The committed samples (traces/samples) are valid and reproduce byte for byte from the commands in
// traces/README.md.
TEST(Samples, ReadCleanAndReproduce) {
  const std::string dir = std::string(LINA_SOURCE_DIR) + "/traces/samples/";
  for (const char* name : {"synth-e16-top2.ltr", "synth-e8-top1.jsonl", "deepseek-like.ltr",
                           "synth-e16-top2-counts.ltr", "hand-written.jsonl"}) {
    TraceReader r(dir + name);
    LayerCounts c;
    uint64_t n = 0;
    while (r.next(c)) ++n;
    EXPECT_EQ(n, r.header().batches) << name;
  }
  SynthParams p;
  p.experts = 16;
  p.top_k = 2;
  p.layers = 8;
  p.batches = 10;
  p.tokens = 64;
  p.zipf = 1.0;
  p.rho = 0.5;
  p.seed = 1;
  p.weights = true;
  const std::string out = temp_path("synth-e16-top2.ltr");
  write_synth(out, p);
  EXPECT_EQ(read_bytes(out), read_bytes(dir + "synth-e16-top2.ltr"));
}

}  // namespace
}  // namespace lina::traces

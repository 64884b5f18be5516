// lina's portable sampling (sched/random.hpp): built on std::mt19937_64, whose output the C++ standard fixes, so the
// same seed gives the same numbers with every standard library, unlike std::*_distribution.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "sched/random.hpp"

namespace lina {
namespace {

// The standard fixes the 10,000th output of a default-seeded std::mt19937_64: 9981545732273789042.
TEST(Random, DrawsFollowFromTheStandardStream) {
  auto at_10000 = [] {
    std::mt19937_64 rng;
    rng.discard(9999);
    return rng;
  };
  constexpr uint64_t kTenThousandth = 9981545732273789042ull;
  std::mt19937_64 a = at_10000();
  EXPECT_EQ(a(), kTenThousandth);
  std::mt19937_64 b = at_10000();
  EXPECT_EQ(uniform01(b), static_cast<double>(kTenThousandth >> 11) * 0x1.0p-53);
  std::mt19937_64 c = at_10000();
  EXPECT_EQ(exponential(c, 4.0), -std::log1p(-static_cast<double>(kTenThousandth >> 11) * 0x1.0p-53) / 4.0);
  std::mt19937_64 d = at_10000();
  EXPECT_EQ(uniform_below(d, 10), kTenThousandth % 10);  // 2^64 mod 10 = 6: this draw is not rejected
}

// Exponential inter-arrival times (Poisson arrivals): mean 1 / rate, never negative or infinite.
TEST(Random, ExponentialHasMeanOneOverRate) {
  std::mt19937_64 rng(derive_seed(3, 7));
  constexpr int kDraws = 200000;
  constexpr double kRate = 250.0;
  double sum = 0;
  for (int i = 0; i < kDraws; ++i) {
    const double x = exponential(rng, kRate);
    ASSERT_TRUE(x >= 0 && std::isfinite(x));
    sum += x;
  }
  // Standard error of the mean: (1 / rate) / sqrt(n) = 0.22% of the mean; allow 5 of them.
  EXPECT_NEAR(sum / kDraws, 1 / kRate, 5 * (1 / kRate) / std::sqrt(kDraws));
}

// Box-Muller: mean 0, variance 1, and 2.5% of the draws beyond 1.96 in either tail.
TEST(Random, StandardNormalHasUnitVariance) {
  std::mt19937_64 rng(derive_seed(5, 1));
  constexpr int kDraws = 200000;
  double sum = 0, sum_sq = 0;
  int beyond = 0;
  for (int i = 0; i < kDraws; ++i) {
    const double x = standard_normal(rng);
    ASSERT_TRUE(std::isfinite(x));
    sum += x;
    sum_sq += x * x;
    beyond += x > 1.96;
  }
  EXPECT_NEAR(sum / kDraws, 0.0, 5 / std::sqrt(kDraws));
  EXPECT_NEAR(sum_sq / kDraws, 1.0, 5 * std::sqrt(2.0 / kDraws));
  EXPECT_NEAR(static_cast<double>(beyond) / kDraws, 0.025, 5 * std::sqrt(0.025 * 0.975 / kDraws));
}

// Gamma(a, 1) has mean a and variance a, for shapes below 1 (the boosted branch) and above.
TEST(Random, GammaHasMeanAndVarianceShape) {
  for (double shape : {0.1, 0.5, 1.0, 2.5, 30.0}) {
    std::mt19937_64 rng(derive_seed(9, static_cast<uint64_t>(shape * 10)));
    constexpr int kDraws = 200000;
    double sum = 0, sum_sq = 0;
    for (int i = 0; i < kDraws; ++i) {
      const double x = gamma_variate(rng, shape);
      ASSERT_TRUE(x >= 0 && std::isfinite(x)) << shape;
      sum += x;
      sum_sq += x * x;
    }
    const double mean = sum / kDraws;
    const double var = sum_sq / kDraws - mean * mean;
    EXPECT_NEAR(mean, shape, 5 * std::sqrt(shape / kDraws)) << shape;  // standard error sqrt(a / n)
    EXPECT_NEAR(var / shape, 1.0, 0.05) << shape;
  }
}

// Symmetric Dirichlet(alpha) over K parts: weights sum to 1, each has mean 1/K and variance
// (K - 1) / (K^2 (K alpha + 1)); small alpha puts nearly all weight on one part.
TEST(Random, DirichletWeightsHaveTheirMomentsAndConcentrate) {
  constexpr int kParts = 4;
  constexpr int kDraws = 50000;
  for (double alpha : {0.3, 1.0, 10.0}) {
    std::mt19937_64 rng(derive_seed(11, static_cast<uint64_t>(alpha * 10)));
    std::vector<double> w(kParts);
    double sum0 = 0, sum0_sq = 0;
    for (int i = 0; i < kDraws; ++i) {
      dirichlet(rng, alpha, w);
      double total = 0;
      for (double x : w) {
        ASSERT_GE(x, 0.0);
        total += x;
      }
      ASSERT_NEAR(total, 1.0, 1e-12);
      sum0 += w[0];
      sum0_sq += w[0] * w[0];
    }
    const double mean = sum0 / kDraws;
    const double var = sum0_sq / kDraws - mean * mean;
    const double want_var = (kParts - 1.0) / (kParts * kParts * (kParts * alpha + 1));
    EXPECT_NEAR(mean, 1.0 / kParts, 5 * std::sqrt(want_var / kDraws)) << alpha;
    EXPECT_NEAR(var / want_var, 1.0, 0.05) << alpha;
  }
  // Near alpha = 0, Gamma(alpha)^alpha is uniform, so log X is -Exp(1) / alpha: one part takes more than 99% when the
  // two smallest of the K exponentials are more than alpha ln(99) apart. Their spacing is exponential with rate
  // K - 1, so that happens with probability exp(-(K - 1) alpha ln 99): 87.1% at alpha = 0.01.
  std::mt19937_64 rng(1);
  std::vector<double> w(kParts);
  constexpr int kConcentrated = 5000;
  int one_part = 0;
  for (int i = 0; i < kConcentrated; ++i) {
    dirichlet(rng, 0.01, w);
    one_part += *std::max_element(w.begin(), w.end()) > 0.99;
  }
  const double want = std::exp(-(kParts - 1) * 0.01 * std::log(99.0));
  EXPECT_NEAR(static_cast<double>(one_part) / kConcentrated, want, 5 * std::sqrt(want * (1 - want) / kConcentrated));
}

}  // namespace
}  // namespace lina

// lina's portable sampling (sched/random.hpp): built on std::mt19937_64, whose output the C++ standard fixes, so the
// same seed gives the same numbers with every standard library, unlike std::*_distribution.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace lina

// Portable sampling from a std::mt19937_64 stream. The standard distributions are implementation-defined (libstdc++
// and libc++ give different numbers for the same seed), so lina implements its own (synthetic traces, shuffles,
// placements' random choices), which makes a seed produce the same bytes on every platform. In sched/ because
// every other folder may use it. The integer and uniform draws are exact everywhere; the exponential, normal and
// gamma draws also call libm (log, cos, pow), so they are the same bit for bit wherever libm rounds the same (any
// x86-64 glibc of the last years), not guaranteed across every C library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace lina {

// Uniform integer in [0, n), n >= 1, without modulo bias (rejection of the short top range).
inline uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
  for (;;) {
    const uint64_t x = rng();
    if (x >= threshold) return x % n;
  }
}

// Uniform double in [0, 1) with 53 random bits.
inline double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

// Exponential with rate `rate` (> 0), by inversion: -ln(1 - u) / rate, u = uniform01 (so 1 - u is in (0, 1]).
inline double exponential(std::mt19937_64& rng, double rate) { return -std::log1p(-uniform01(rng)) / rate; }

// Standard normal by Box-Muller from two uniform01 draws (the second variate is not kept, so every call uses exactly
// two draws of the stream).
inline double standard_normal(std::mt19937_64& rng) {
  const double u1 = 1.0 - uniform01(rng);  // (0, 1]: log is finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Gamma(shape, 1), shape > 0: Marsaglia and Tsang (2000), "A simple method for generating gamma variables", with
// their boost for shape < 1: Gamma(a) = Gamma(a + 1) * U^(1/a).
inline double gamma_variate(std::mt19937_64& rng, double shape) {
  if (shape < 1.0) {
    const double boost = std::pow(1.0 - uniform01(rng), 1.0 / shape);
    return gamma_variate(rng, shape + 1.0) * boost;
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = standard_normal(rng);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - uniform01(rng);  // (0, 1]
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

// Weights drawn from the symmetric Dirichlet distribution of concentration alpha > 0 over weights.size() parts
// (normalised Gamma(alpha) draws): small alpha puts almost all weight on one part, large alpha spreads it evenly.
inline void dirichlet(std::mt19937_64& rng, double alpha, std::vector<double>& weights) {
  double total = 0;
  for (double& w : weights) total += (w = gamma_variate(rng, alpha));
  if (!(total > 0)) {  // every draw underflowed (alpha far below 1): the mass goes to one part, as in the limit
    std::fill(weights.begin(), weights.end(), 0.0);
    weights[size_t(uniform_below(rng, weights.size()))] = 1.0;
    return;
  }
  for (double& w : weights) w /= total;
}

// Fisher-Yates.
template <class T>
void shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(uniform_below(rng, i))]);
}

// A seed for sub-stream `stream` of `seed` (splitmix64 finaliser), so that streams do not overlap in practice.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace lina

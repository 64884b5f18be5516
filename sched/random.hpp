// Portable sampling from a std::mt19937_64 stream. The standard distributions are implementation-defined (libstdc++
// and libc++ give different numbers for the same seed), so lina implements its own (synthetic traces, shuffles,
// placements' random choices), which makes a seed produce the same bytes on every platform. In sched/ because
// every other folder may use it.
#pragma once

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

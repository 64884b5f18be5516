// Shared helpers of the trace tests: temporary paths, small headers and batches.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "sched/routing.hpp"
#include "traces/format.hpp"

namespace lina::traces::testing {

// A fresh file path under the test's temporary directory (removed at the start of each use).
inline std::string temp_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "lina_traces" /
                              (std::string(info->test_suite_name()) + "." + info->name());
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::filesystem::remove(p);
  return p.string();
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}
inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline TraceHeader make_header(std::vector<int> layers, int experts, int top_k, bool weights = false) {
  TraceHeader h;
  h.model = "test-model";
  h.layers = std::move(layers);
  h.experts = experts;
  h.top_k = top_k;
  h.has_weights = weights;
  h.source = "unit test";
  h.dataset = "none";
  h.licence = "CC0-1.0";
  return h;
}

// A batch of random distinct choices (and descending weights when asked).
inline BatchRouting random_batch(const TraceHeader& h, int tokens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  BatchRouting b;
  b.resize(tokens, h.n_layers(), h.top_k, h.has_weights);
  for (int l = 0; l < h.n_layers(); ++l) {
    for (int t = 0; t < tokens; ++t) {
      auto c = b.choices(l, t);
      for (int s = 0; s < h.top_k; ++s) {
        uint16_t e;
        bool dup;
        do {
          e = uint16_t(rng() % uint64_t(h.experts));
          dup = false;
          for (int r = 0; r < s; ++r) dup |= c[size_t(r)] == e;
        } while (dup);
        c[size_t(s)] = e;
        if (h.has_weights) b.weights[b.index(l, t, s)] = 1.0f / float(s + 2);
      }
    }
  }
  return b;
}

// Builds a batch from [layer][token] -> choices (empty vector = unrecorded).
inline BatchRouting batch_of(const std::vector<std::vector<std::vector<int>>>& ids, int top_k) {
  BatchRouting b;
  b.resize(int(ids.at(0).size()), int(ids.size()), top_k, false);
  for (size_t l = 0; l < ids.size(); ++l) {
    for (size_t t = 0; t < ids[l].size(); ++t) {
      for (int s = 0; s < top_k; ++s) {
        b.experts[b.index(int(l), int(t), s)] = ids[l][t].empty() ? kNoExpert : uint16_t(ids[l][t][size_t(s)]);
      }
    }
  }
  return b;
}

}  // namespace lina::traces::testing

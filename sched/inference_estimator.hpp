// Lina's popularity estimator (paper section 5.2; DESIGN.md 3.2 Phase 1) as the inference scheduler uses it, on
// in-memory batches. sched/ depends on nothing else, so this is its own implementation of the lookup tables that
// traces/estimate.cpp evaluates on files (`lina trace estimate`); both follow the same definition:
//
// For every MoE layer j >= 1 and path length m = 0..max_path (m <= j), a token's path is its top-1 choices at the m
// layers before j (the most recent last); the table maps a path to the distribution of the experts the token chose
// at layer j (all top_k slots), counted over the profiling batches. Estimating a batch at layer j adds, for each
// token, the normalised next-expert distribution of the longest path (m <= l) the tables know, backing off to
// shorter paths (m = 0 is the layer's popularity); a path with an unrecorded choice is cut there. The result is the
// expected tokens per expert (it sums to tokens * top_k when every path is known).
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "sched/routing.hpp"

namespace lina {

class PathEstimator {
 public:
  PathEstimator(int layers, int experts, int top_k, int max_path);

  // Adds a profiling batch (same layers, experts and top_k).
  void add(const BatchRouting& b);
  int profiled_batches() const { return batches_; }

  // Expected tokens per expert at MoE layer `layer` of batch `b`, from each token's path of up to `path_length`
  // choices before it. `top1` is top1_choices(b); `out` has one entry per expert.
  void estimate(const BatchRouting& b, const std::vector<uint16_t>& top1, int layer, int path_length,
                std::span<double> out) const;

  // Mean tokens per expert at a layer over the profiling batches (replicate-history's popularity).
  std::vector<double> mean_counts(int layer) const;

  // The top-1 choice of (layer, token): slot 0, or the highest-weight slot when the batch has gate weights.
  static uint16_t top1(const BatchRouting& b, int layer, int token);
  // top1 of every (layer, token), layer-major.
  static void top1_choices(const BatchRouting& b, std::vector<uint16_t>& out);

 private:
  struct Table {
    static constexpr uint32_t kAbsent = UINT32_MAX;
    // Path key -> row of `counts`: a flat array when the keys fit in kDirectBits (short paths: 16 experts, l <= 4),
    // the estimator's hot loop then does no hashing; a hash map beyond.
    std::vector<uint32_t> direct;
    std::unordered_map<uint64_t, uint32_t> index;
    // Counts are integers: 4 bytes each, not 8, halves the tables (l = 6 on 16 experts held 5.7 GB in doubles).
    std::vector<uint32_t> counts;  // rows of `experts_` counts
    std::vector<uint64_t> totals;  // row sums

    uint32_t find(uint64_t key) const;
    uint32_t find_or_add(uint64_t key, int experts);
  };
  static constexpr int kDirectBits = 16;
  // Path key of the m choices before layer j of token t (false when one is unrecorded).
  bool key(const std::vector<uint16_t>& top1, int tokens, int t, int j, int m, uint64_t& k) const;
  Table& table(int j, int m) { return tables_[static_cast<size_t>(j) * static_cast<size_t>(max_path_ + 1) + m]; }
  const Table& table(int j, int m) const {
    return tables_[static_cast<size_t>(j) * static_cast<size_t>(max_path_ + 1) + m];
  }

  int layers_, experts_, top_k_, max_path_, bits_;
  int batches_ = 0;
  std::vector<Table> tables_;         // [layer][m]
  std::vector<double> layer_counts_;  // [layer][expert], summed over profiling batches
  std::vector<uint16_t> top1_scratch_;
};

}  // namespace lina

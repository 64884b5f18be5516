// Lina's popularity estimator (paper section 5.2; DESIGN.md 3.2 Phase 1) evaluated on traces
// (`lina trace estimate`), and the profiling / evaluation split (`lina trace split`).
//
// Lookup tables, built from the profiling trace: for every MoE layer j >= 1 and path length m = 0..L, a token's
// path is its top-1 choices at the m layers before j (the most recent last); the table maps the path to the counts
// of the experts the token chose at layer j (all top_k slots). Estimating a batch at layer j adds, for each token,
// the normalised next-expert distribution of the longest path (m <= L) the tables know (backing off to shorter
// paths, m = 0 being the layer's overall popularity); a path with an unrecorded choice is cut there. The estimated
// top-2 experts are the two largest sums.
//
// Accuracy: the share of evaluated (batch, layer) cases whose estimated top-2 equals the actual top-2, as a set,
// ties in the actual counts accepted (the estimated pair is right when its actual counts are the two largest). A
// case is evaluated when at least two experts received tokens. Lina schedules from layer L+1 on, so the overall
// accuracy covers layers j >= L (0-based in the trace); `all_layers` covers every j >= 1.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lina::traces {

struct EstimateLayer {
  int layer = -1;
  uint64_t cases = 0, hits = 0;
};

struct EstimateResult {
  int path_length = 0;
  uint64_t cases = 0, hits = 0;              // layers j >= path_length
  uint64_t all_cases = 0, all_hits = 0;      // layers j >= 1
  uint64_t full_paths = 0, token_paths = 0;  // how often the full-length path was in the tables
  std::vector<EstimateLayer> layers;
  double accuracy() const { return cases ? double(hits) / double(cases) : 0.0; }
  double all_accuracy() const { return all_cases ? double(all_hits) / double(all_cases) : 0.0; }
  double coverage() const { return token_paths ? double(full_paths) / double(token_paths) : 0.0; }
};

// Both traces must be routing traces with the same layers and expert count.
std::vector<EstimateResult> evaluate_estimator(const std::string& profile, const std::string& eval,
                                               const std::vector<int>& path_lengths);

nlohmann::ordered_json estimate_to_json(const std::vector<EstimateResult>& r);
std::string estimate_to_text(const std::vector<EstimateResult>& r);

// Splits a trace by batches into two files that share none: the first `fraction` of the batches (rounded) go to
// `profile_out`, the rest to `eval_out`; with `shuffle`, a seeded random choice of that many batches (file order
// kept). Returns {profile batches, eval batches}.
std::pair<uint64_t, uint64_t> split_trace(const std::string& in, const std::string& profile_out,
                                          const std::string& eval_out, double fraction, bool shuffle, uint64_t seed);

}  // namespace lina::traces

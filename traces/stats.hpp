// Trace statistics (`lina trace stats`, DESIGN.md 5 and 6): popularity skew and the inter-layer "same path" share.
//
// Definitions (the Lina paper, section 5.1, and ../shared/traces/README.md):
// - Popularity of expert e at a layer = number of token choices it received (each of a token's top_k choices
//   counts). skew max/mean divides the most popular expert's count by the mean over all experts, experts without
//   tokens included; max/min divides by the least popular (infinite when an expert got nothing: JSON null).
//   "Aggregated" pools the whole trace; "batch" computes the ratio per batch and averages over batches.
// - Same path, for consecutive MoE layers (i, i+1) of the trace: tokens are grouped by their layer-i expert; a
//   group's share is the fraction of its tokens whose layer-(i+1) choice is the group's most common next expert.
//   top1 mode: a token's choice is its first slot (its highest gate weight where weights exist). set mode
//   (top_k > 1): a token joins the group of every expert in its set, the group's most common next expert is counted
//   over the members' next sets, and a hit is a next set that contains it. The k2 variant (the paper's k = 2)
//   counts a hit when the next choice is one of the group's two most common next experts (set mode: the next set
//   holds one of them). "mean" is the unweighted mean over groups of at least min_group members, "weighted" the
//   member-weighted mean over the same groups (= hits / members). "shuffled" recomputes everything after a seeded
//   random permutation of the layer-(i+1) choices among the same tokens: the share that popularity alone explains.
//   Overall values pool the groups of all layer pairs.
// Unrecorded choices (kNoExpert) are skipped: a token enters a pair only when both layers recorded it.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "traces/reader.hpp"

namespace lina::traces {

enum class BatchFilter { kAll, kPrefill, kDecode };

struct StatsOptions {
  std::vector<int> exclude_layers;  // model layer ids; pairs touching them are dropped
  int min_group = 10;
  uint64_t seed = 1;
  BatchFilter batches = BatchFilter::kAll;
};

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct SamePath {
  double mean = kNaN, weighted = kNaN;
  double shuffled_mean = kNaN, shuffled_weighted = kNaN;
  double k2_mean = kNaN, k2_weighted = kNaN;
  double shuffled_k2_mean = kNaN, shuffled_k2_weighted = kNaN;
  uint64_t groups = 0;   // groups with at least min_group members
  uint64_t members = 0;  // their members (tokens; set mode: token-expert memberships)
};

struct LayerStats {
  int layer = -1;       // model layer id (-1 for the overall row)
  int next_layer = -1;  // the pair's next layer id, -1 when this layer starts no pair
  double skew_max_over_mean = kNaN;
  double skew_max_over_min = kNaN;  // +inf when an expert received nothing
  double batch_skew_max_over_mean = kNaN;
  double batch_skew_max_over_min = kNaN;  // over the batches where every expert received a token
  std::optional<SamePath> top1, set;
};

struct TraceStats {
  std::string file;
  TraceHeader header;
  StatsOptions options;
  uint64_t batches = 0;  // after the batch filter
  uint64_t tokens = 0;
  double batch_tokens_median = kNaN;
  double skew_max_over_mean_lo = kNaN, skew_max_over_mean_hi = kNaN;  // range over layers
  LayerStats overall;
  std::vector<LayerStats> layers;  // kept layers, in trace order
};

TraceStats compute_stats(TraceReader& reader, const StatsOptions& options);
TraceStats compute_stats(const std::string& path, const StatsOptions& options);

nlohmann::ordered_json stats_to_json(const TraceStats& s);
std::string stats_to_text(const TraceStats& s);

// Same-path statistics of one pair of layers from in-memory choices: `cur` and `next` hold k ids per token
// (kNoExpert = unrecorded). Exposed for the synthetic generator's fitting and for tests.
struct PairAccumulator {
  double share_sum = 0, shuffled_share_sum = 0, k2_share_sum = 0, shuffled_k2_share_sum = 0;
  uint64_t hits = 0, shuffled_hits = 0, k2_hits = 0, shuffled_k2_hits = 0;
  uint64_t groups = 0, members = 0;
  void add(const PairAccumulator& o);
  SamePath result() const;
};
PairAccumulator same_path_pair(const std::vector<uint16_t>& cur, const std::vector<uint16_t>& next, int top_k,
                               int experts, bool set_mode, int min_group, uint64_t seed);

}  // namespace lina::traces

// Synthetic routing traces (`lina trace synth`, DESIGN.md 2.6 and 5) and fitting their parameters to a real trace
// (`lina trace fit`).
//
// Model. Each layer l ranks the experts by a random permutation pi_l (its hot set: the top ranks differ between
// layers) and gives rank r the Zipf weight 1 / (r + 1)^zipf (zipf = 0: uniform). A token's first-layer choices are
// top_k distinct draws from those weights. At the next layer each slot j follows, with probability rho, the
// "designated next expert" of its previous choice e, succ_l(e) = pi_{l+1}(rank_l(e)) (unless another slot already
// took it), and is otherwise a fresh Zipf draw distinct from the token's other choices. Because succ maps rank r to
// rank r, the designated next expert of a group is also the most common one, and for top-1 the marginal
// popularity of every layer stays exactly Zipf(zipf) whatever rho: skew is set by zipf alone and the same-path
// share by rho (about rho + (1 - rho) * p(succ) for top-1). Gate weights, when asked, are random and descending.
//
// Randomness comes only from std::mt19937_64 streams derived from the seed (sched/random.hpp), so one seed gives
// byte-identical files everywhere.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "sched/routing.hpp"
#include "traces/format.hpp"
#include "traces/stats.hpp"

namespace lina::traces {

struct SynthParams {
  int experts = 16;
  int top_k = 1;
  int layers = 12;
  uint64_t batches = 100;
  int tokens = 512;  // per batch
  double zipf = 1.0;
  double rho = 0.0;
  uint64_t seed = 1;
  bool weights = false;
  std::string model = "synthetic";

  void validate() const;  // InputError naming the bad parameter
  nlohmann::ordered_json to_json() const;
  std::string command_line() const;  // the `lina trace synth` arguments that reproduce these parameters
};

// Sampling a rank from cumulative weights cdf (ascending): rank_at(u) is the number of weights <= u, i.e. the index
// std::upper_bound finds, for u drawn uniformly from [0, total). Almost every u is answered by one table lookup: u
// falls into bucket floor(u * scale) of 64 per rank, and a bucket that contains no cumulative weight gives every u in
// it the same rank (the bucket index is monotonic in u, so every weight below the bucket is <= u and every weight
// above it is > u). The few buckets that contain a weight count. Same answers as counting, bit for bit: the
// generator's output does not change, it is only faster (rank_at was a sixth of generating a batch).
class RankSampler {
 public:
  explicit RankSampler(std::vector<double> cdf = {});
  size_t rank_at(double u) const {
    const double x = u * scale_;
    if (x >= 0 && x < static_cast<double>(bucket_.size())) {
      const uint32_t r = bucket_[static_cast<size_t>(x)];
      if (r != kMixed) return r;
    }
    return count_at(u);
  }
  // The reference answer, by counting (a binary search beyond 64 ranks).
  size_t count_at(double u) const;
  const std::vector<double>& cdf() const { return cdf_; }

 private:
  static constexpr uint32_t kMixed = UINT32_MAX;
  std::vector<double> cdf_;
  std::vector<uint32_t> bucket_;  // the rank of every u in the bucket, or kMixed
  double scale_ = 0;
};

class SynthGenerator {
 public:
  explicit SynthGenerator(const SynthParams& p);
  TraceHeader header() const;
  // The next batch (deterministic sequence for a seed).
  void next(BatchRouting& out);

 private:
  SynthParams p_;
  std::mt19937_64 rng_;
  std::vector<std::vector<uint16_t>> rank_to_expert_;  // [layer][rank]
  std::vector<std::vector<uint16_t>> expert_to_rank_;  // [layer][expert]
  RankSampler ranks_;                                  // cumulative Zipf weights by rank
  uint16_t draw_rank_excluding(const uint16_t* chosen_ranks, int n_chosen);
};

// Writes a synthetic trace to `path` (binary, or JSON lines for *.jsonl). Returns the number of tokens.
uint64_t write_synth(const std::string& path, const SynthParams& p);

// The synth parameters whose statistics best match a trace's: experts, top-k, layers, batches and tokens per
// batch (the median) are copied; zipf is found by bisection on the per-layer skew max/mean and then rho on the
// same-path mean (top1 mode where the trace has one, else set mode), each measured on synthetic samples of the
// trace's size so that the finite-sample bias matches.
struct FitResult {
  SynthParams params;
  double target_skew = kNaN, fitted_skew = kNaN;
  double target_same_path = kNaN, fitted_same_path = kNaN;
  std::string mode;  // top1 or set
};
FitResult fit_synth(const TraceStats& stats);

}  // namespace lina::traces

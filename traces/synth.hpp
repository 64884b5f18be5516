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
// Randomness comes only from std::mt19937_64 streams derived from the seed (traces/random.hpp), so one seed gives
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
  std::vector<double> cdf_;                            // cumulative Zipf weights by rank
  uint16_t draw_rank_excluding(const uint16_t* chosen_ranks, int n_chosen);
  size_t rank_at(double u) const;
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

// What runs on the cluster: batch and sequence sizes, how many steps or batches, where the routing comes from, and
// (inference) how batches arrive. DESIGN.md 2.6; every field is declared in workload_params() (`lina params`).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "sched/params.hpp"

namespace lina {

struct RoutingSpec {
  // balanced: every expert receives the same number of tokens (training with a load-balancing loss);
  // uniform: each token picks experts uniformly at random; zipf: popularity ~ rank^-zipf_s with per-layer hot sets
  // and inter-layer correlation rho; trace: replay a recorded trace (traces/FORMAT.md).
  std::string kind = "balanced";
  double zipf_s = 1.2;
  double rho = 0.0;
  std::string trace;          // path, for kind == trace
  std::string profile_trace;  // path of the profiling trace (Lina's lookup tables); empty: first half of `trace`
  // zipf/uniform (inference): each sequence of a batch draws one of `topics` generators with their own hot sets, so
  // that a batch's popularity varies with its mix of topics (1: one generator, popularity fixed per layer).
  int64_t topics = 1;
  // Where a topic is drawn: per sequence (a batch mixes topics evenly, so its popularity is near their average), per
  // batch (each batch follows one topic's hot sets in full, and the hot sets change from batch to batch), or per
  // sequence from a mixture whose weights each batch draws from Dirichlet(topic_alpha): between the two, so that
  // both a batch's skew and its hot sets vary from batch to batch, as a real stream of requests does.
  std::string topic_per = "sequence";
  double topic_alpha = 1.0;
  int64_t profile_batches = 100;  // zipf/uniform (inference): profiling batches generated before the evaluated ones
};

struct WorkloadSpec {
  int64_t batch_size = 16;  // sequences per GPU per step (training) or per batch (inference)
  int64_t seq_len = 512;    // tokens per sequence
  int64_t steps = 2;        // training steps simulated; metrics are those of the last step
  int64_t batches = 50;     // inference batches
  RoutingSpec routing;
  std::string arrival = "closed";  // inference: closed loop, or poisson with `arrival_rate`
  double arrival_rate_per_s = 0;

  int64_t tokens_per_gpu() const { return batch_size * seq_len; }
};

WorkloadSpec workload_from_json(const nlohmann::json& j, const std::string& file, const std::string& pointer);
const std::vector<ParamDef>& workload_params();

}  // namespace lina

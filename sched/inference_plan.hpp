// One inference batch as a Plan (DESIGN.md 2.6, 3.2). The batch's tokens are split evenly over the N devices
// (token t on rank floor(t * N / T)), which run every layer on their share: dense operators as compute, and per MoE
// layer: gate, dispatch all-to-all-v to the device(s) holding each token's expert (replicas split the expert's
// tokens evenly), expert FFNs (packed experts one after another), combine all-to-all-v (the transpose); shared
// experts run beside the all-to-all. The policy's work (LayerDecision) becomes tasks: host scheduling time on the
// host stream of every rank (the scheduler runs replicated), and expert weights loaded from host memory as
// CommKind::kHostLoad transfers on the rank's load stream (Stream::kAllReduce, which inference does not otherwise
// use). Blocking work sits between the gate and the dispatch; Phase 1 work for layer j+1 starts after layer j's gate
// and the dispatch of layer j+1 waits for it.
#pragma once

#include <vector>

#include "sched/inference_scheduler.hpp"
#include "sched/model_spec.hpp"
#include "sched/plan.hpp"
#include "sched/training_plan.hpp"

namespace lina {

struct InferenceBatchInput {
  const ModelSpec* model = nullptr;
  const ModelCost* cost = nullptr;  // model_cost(model, tokens per rank, seq_len)
  int ranks = 0;
  bool hierarchical_a2a = true;
  // Per MoE layer: tokens rank r routes to expert e, counts[r * E + e] (all top_k slots).
  std::vector<std::vector<double>> counts;
  std::vector<LayerDecision> decisions;  // per MoE layer
  double expert_param_bytes = 0;         // weights of one routed expert
  // Per MoE layer: routed tokens the gate dropped per rank over the capacity (drop_over_capacity; empty: none).
  // The dense einsums still run over all of a rank's tokens.
  std::vector<std::vector<double>> dropped;
};

// Per-rank routed-token counts of one MoE layer of a batch: [rank * E + expert].
std::vector<double> rank_expert_counts(const BatchRouting& b, int layer, int experts, int ranks);

// With a capacity factor (model.capacity_factor > 0), the gate keeps at most C = ceil(cf * k * S / E) tokens per
// expert from each rank of S tokens (S: its routed tokens / k) and drops the rest (DeepSpeed-MoE / GShard;
// DeepSpeed's default for inference is cf 1.0 with dropping). Caps counts[r * E + e] in place and returns the
// routed tokens dropped per rank; empty when dropless.
std::vector<double> drop_over_capacity(std::vector<double>& counts, const ModelSpec& m, int ranks);

Plan build_inference_plan(const InferenceBatchInput& in);

// What one MoE layer moves and computes under a decision.
struct LayerTraffic {
  std::vector<double> tokens;  // [src * N + dst]: tokens rank src sends to device dst (src == dst stays local)
  std::vector<double> work;    // [device * E + expert]: tokens each device computes per expert
  // Dense dispatch only: the capacity C every (source, device) buffer is padded to and the number of devices that
  // hold experts (the buffers per source), for the einsum costs. 0 with sparse dispatch.
  double capacity = 0;
  int slots = 0;
};
// Sparse dispatch moves and computes the routed tokens (all-to-all-v). Dense dispatch (DeepSpeed-MoE's einsums over
// [tokens, experts, capacity]) pads every buffer to the capacity C. With a capacity factor, C is `min_capacity`
// (more where a device receives more, as a packed or replicated placement can). Dropless (min_capacity 0), DeepSpeed
// sets C to the most tokens any rank sends one expert (max of the expert counts all-reduced over the group). Every
// rank sends C tokens' worth to every expert, and each expert computes all N * C rows, padding included: under skew
// the whole layer grows with the hottest expert, not only its device. Buffers are per destination device here (per
// expert in DeepSpeed; the same when a device holds at most one expert): Lina's replicas and packed experts are
// addressed by device.
LayerTraffic layer_traffic(const std::vector<double>& counts, const LayerDecision& d, int ranks, int experts,
                           bool dense, double min_capacity = 0);

}  // namespace lina

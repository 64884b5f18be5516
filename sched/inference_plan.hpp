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
};

// Per-rank routed-token counts of one MoE layer of a batch: [rank * E + expert].
std::vector<double> rank_expert_counts(const BatchRouting& b, int layer, int experts, int ranks);

Plan build_inference_plan(const InferenceBatchInput& in);

// Tokens each device computes per expert in a MoE layer: [device * E + expert].
std::vector<double> device_expert_tokens(const std::vector<double>& counts, const LayerDecision& d, int ranks,
                                         int experts);

}  // namespace lina

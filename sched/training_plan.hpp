// The training step as a Plan (DESIGN.md 2.6, 3.1): data parallel over all GPUs plus expert parallel, as in the
// Lina paper. Per MoE layer and pass: gate, dispatch all-to-all, expert FFN on the received tokens, combine
// all-to-all (two all-to-alls forward, two backward, each moving the same bytes); non-expert gradients allreduced
// over all ranks as they become ready in backward (DDP buckets, or Lina's micro-ops); expert gradients allreduced
// among the replicas of each expert; the optimizer step at the end.
#pragma once

#include <string>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/plan.hpp"
#include "sched/policy_spec.hpp"
#include "sched/workload_spec.hpp"

namespace lina {

// Forward costs of one layer for a rank's `tokens` (from sched/flops.hpp) and the gradient tensors of the layer.
struct LayerCost {
  bool moe = false;
  std::vector<OpCost> other;              // norms, attention projections and scores, residuals: all but the FFN/MoE
  OpCost gate;                            // router (MoE layers)
  OpCost ffn;                             // dense FFN (dense layers) or shared experts (MoE layers); may be empty
  std::vector<double> grad_tensor_bytes;  // non-expert gradient tensors of the layer, in backward order
  double expert_grad_bytes = 0;           // one routed expert's gradients
};

struct ModelCost {
  std::vector<LayerCost> layers;             // global layer order
  OpCost embedding;                          // input embedding lookup (forward start)
  std::vector<OpCost> head;                  // final norm, output projection and loss (forward end)
  std::vector<double> embedding_grad_bytes;  // gradient tensors outside the layers
  double replicated_param_bytes = 0;         // non-expert parameters held by every rank
  double expert_param_bytes = 0;             // one routed expert's parameters
};
ModelCost model_cost(const ModelSpec& m, double tokens, double seq_len);

// Tokens each rank sends to each expert in one layer: counts[rank * E + expert].
using LayerRouting = std::vector<double>;

struct TrainingLayout {
  int ranks = 0;
  int experts = 0;
  int experts_per_device = 1;  // packing k
  int group_size = 0;          // expert-parallel group: experts / k devices
  int replicas = 1;            // of each expert: ranks / group_size
  int pipeline_degree = 1;     // all-to-all / expert-compute chunks
  // Share of the device's expert weights that do not fit in GPU memory and live in host memory: they are loaded
  // over PCIe before each forward and backward expert computation (DESIGN.md 3.1; make_layout fills it in).
  double offloaded_share = 0;
};

// Share of a device's expert parameters that do not fit in GPU memory with k experts per device, counting the
// non-expert parameters first, at 16 bytes per parameter for mixed-precision Adam (bf16 weights and gradients, fp32
// master copy, two moments). With ZeRO stage 1 (policy.zero_stage) the 12 bytes of optimizer state are sharded over
// the parameter's data-parallel group (all GPUs for the non-expert parameters, the expert's replicas for its own);
// with stage 2 the 2 bytes of gradient too.
// 0 when everything fits.
double offloaded_expert_share(const ModelSpec& m, const ClusterSpec& c, int experts_per_device, int zero_stage = 0);
// How the memory count keeps optimizer state, for messages: "mixed-precision Adam", "mixed-precision Adam, ZeRO-1".
std::string optimizer_state_name(int zero_stage);
// What does not fit in GPU memory at k experts per GPU (as offloaded_expert_share counts it), as a sentence for the
// results' notes; empty when everything fits.
std::string memory_note(const ModelSpec& m, const ClusterSpec& c, int experts_per_device, int zero_stage = 0);

// The smallest valid layout for a packing k (k = 0: the smallest k with E/k dividing the rank count). Throws
// InputError when experts and ranks cannot be arranged (E must divide N*k and E/k divide N).
TrainingLayout make_layout(const ModelSpec& m, const ClusterSpec& c, int experts_per_device, int pipeline_degree,
                           int zero_stage = 0);

struct TrainingPlanInput {
  const ModelSpec* model = nullptr;
  const ClusterSpec* cluster = nullptr;
  const WorkloadSpec* workload = nullptr;
  const PolicySpec* policy = nullptr;
  TrainingLayout layout;
  // routing[layer] for each MoE layer in order (size = moe layers); empty: balanced.
  std::vector<LayerRouting> routing;
  int steps = 1;
};

Plan build_training_plan(const TrainingPlanInput& in);

// The LinkClass bits (sched/plan.hpp) that the traffic of a collective over `ranks` crosses, from the route shapes of
// ClusterSpec: kNodeLinks when two of its ranks share a node, kNicLinks when it spans nodes; with one NIC per node,
// inter-node traffic also crosses the GPU's port into its node (GPU -> node switch -> NIC), so both.
uint8_t link_classes(const ClusterSpec& c, const std::vector<int>& ranks);

// Volume of one rank's all-to-all buffer in a MoE layer: tokens * top_k * d * dtype bytes. The share for the rank's
// own experts (1/G of it with balanced routing over a group of G) stays local and is not sent.
double balanced_a2a_bytes_per_rank(const ModelSpec& m, const WorkloadSpec& w);

// Lina's all-to-all micro-ops (paper 4.1-4.2, DESIGN.md 3.1): the rank's all-to-all buffer is cut into equal
// micro-ops of the same size as the allreduce micro-ops, and the expert computation of each runs as soon as it
// arrives. The number of chunks is ceil(buffer / micro_op_bytes), at least 1 and at most kMaxPipelineDegree
// (sched/policy_spec.hpp; a size that would cut finer is reported through the `pipeline_degree` metric).
int lina_pipeline_degree(const ModelSpec& m, const WorkloadSpec& w, double micro_op_bytes);

}  // namespace lina

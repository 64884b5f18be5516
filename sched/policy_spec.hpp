// The policies an experiment compares and their options (DESIGN.md 3.1, 3.2). Every option is declared once in
// policy_params(); an option that a policy does not use is an error, so a typo never silently does nothing.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "sched/params.hpp"
#include "sched/time.hpp"

namespace lina {

// The most all-to-all / expert-compute chunks a policy pipelines (`pipeline_degree`, and Lina's micro-ops).
inline constexpr int kMaxPipelineDegree = 64;

struct PolicySpec {
  std::string name;   // one of training_policy_names() or inference_policy_names()
  std::string label;  // shown in tables (defaults to name; must be unique within an experiment)

  // Training.
  double bucket_bytes = 25e6;    // DDP gradient bucket (deepspeed, naive-priority, tutel, ideal, lina-fixed)
  double micro_op_bytes = 30e6;  // Lina's allreduce micro-op size (paper section 4.1: 30 MB)
  bool micro_op_fusion = false;  // fuse tensors (in readiness order) before cutting micro-ops
  int pipeline_degree = 0;       // all-to-all/expert pipelining chunks; 0: the policy's default
  std::string packing = "auto";  // lina expert packing: auto (the controller), off, or a fixed experts-per-device
  bool hierarchical_a2a = true;  // the paper turns hierarchical all-to-all on for all systems (section 6)
  // lina: which all-to-alls an allreduce micro-op waits for (policy.hold): any of its device's (the paper), only those
  // on a class of links it crosses too (Collective::links), or none (an ablation: no prioritisation at all).
  enum class Hold { kDevice, kLinks, kNone };
  Hold hold = Hold::kDevice;
  // ZeRO stage (Rajbhandari et al., SC'20, arXiv 1910.02054): 0, plain data parallelism (every GPU keeps the whole
  // optimizer state and gradients of what it trains); 1, each data-parallel group shards the fp32 master weights and
  // Adam moments; 2, the gradients too. Gradients are then reduce-scattered instead of allreduced, each GPU updates
  // its shard, and the updated weights are all-gathered at the end of the step (DeepSpeed's stages 1 and 2, whose
  // all-gather ends the step); the two stages differ in memory only.
  int zero_stage = 0;

  // Inference.
  int path_length = 3;                  // Lina's estimation path length l (paper Table 5)
  bool before_path_static = false;      // the first l MoE layers: static placement, not Phase 2 alone
  Time schedule_cost = Time::us(6200);  // one full scheduling run (paper section 6.3: 6.2 ms)
  Time finetune_cost = Time::us(1450);  // Phase 2 finding no change (paper: 1.45 ms)
  int max_experts_per_device = 4;       // first-fit-decreasing packing bound (paper section 5.2)
  // GPU memory per device for expert copies beyond its home experts and the latest placement of each layer (least
  // recently used evicted); 0: a copy is dropped as soon as its layer's placement no longer uses it.
  double expert_cache_bytes = 0;
};

const std::vector<std::string>& training_policy_names();
const std::vector<std::string>& inference_policy_names();

// Reads one entry of "policies" for the given mode ("training" or "inference").
PolicySpec policy_from_json(const nlohmann::json& j, const std::string& mode, const std::string& file,
                            const std::string& pointer);
const std::vector<ParamDef>& policy_params();

}  // namespace lina

#include "sched/policy_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "sched/error.hpp"

namespace lina {
namespace {
using nlohmann::json;
using D = Dimension;
using T = ParamType;
constexpr double kNoMax = 1e308;

// Which options each policy reads; any other option given to it is an error.
std::vector<std::string> options_of(const std::string& name) {
  if (name == "lina" || name == "lina-priority" || name == "lina-partition") {
    return {"micro_op_size", "micro_op_fusion", "pipeline_degree", "packing", "hierarchical_a2a", "hold", "zero_stage"};
  }
  if (name == "lina-fixed" || name == "deepspeed" || name == "naive-priority" || name == "ideal") {
    return {"bucket_size", "hierarchical_a2a", "zero_stage"};
  }
  if (name == "tutel") return {"bucket_size", "pipeline_degree", "hierarchical_a2a", "zero_stage"};
  return {};
}
std::vector<std::string> inference_options_of(const std::string& name) {
  if (name.starts_with("lina")) {
    return {"path_length",      "before_path", "schedule_cost", "finetune_cost", "max_experts_per_device",
            "hierarchical_a2a", "expert_cache"};
  }
  if (name == "oracle-placement" || name == "replicate-history") return {"max_experts_per_device", "hierarchical_a2a"};
  return {"hierarchical_a2a"};
}

}  // namespace

const std::vector<std::string>& training_policy_names() {
  static const std::vector<std::string> n = {"deepspeed",      "naive-priority", "lina",  "lina-priority",
                                             "lina-partition", "lina-fixed",     "tutel", "ideal"};
  return n;
}

const std::vector<std::string>& inference_policy_names() {
  static const std::vector<std::string> n = {
      "deepspeed", "lina", "lina-no-estimate", "lina-no-finetune", "ideal", "oracle-placement", "replicate-history"};
  return n;
}

const std::vector<ParamDef>& policy_params() {
  static const std::vector<ParamDef> t = [] {
    std::vector<std::string> all = training_policy_names();
    for (const auto& n : inference_policy_names()) {
      if (std::find(all.begin(), all.end(), n) == all.end()) all.push_back(n);
    }
    return std::vector<ParamDef>{
        {"policy.name", T::kChoice, D::kNumber, nullptr, "the policy (DESIGN.md 3.1 training, 3.2 inference)", -1e308,
         kNoMax, all},
        {"policy.label",
         T::kString,
         D::kNumber,
         "",
         "name shown in tables (default: the policy name)",
         -1e308,
         kNoMax,
         {}},
        {"policy.bucket_size",
         T::kQuantity,
         D::kBytes,
         "25MB",
         "DDP gradient bucket: gradients are fused and allreduced when a bucket is full (PyTorch default 25 MB)",
         1,
         kNoMax,
         {}},
        {"policy.micro_op_size",
         T::kQuantity,
         D::kBytes,
         "30MB",
         "lina: micro-op size (paper 4.1: 30 MB); gradients are cut into equal chunks of it, and so is each rank's "
         "all-to-all buffer when pipelining (at most 64 chunks). At least 64 KiB: smaller micro-ops are all launch "
         "latency, and cutting gigabytes of gradients into them would make a plan of millions of tasks",
         65536,
         kNoMax,
         {}},
        {"policy.micro_op_fusion",
         T::kBool,
         D::kNumber,
         false,
         "lina: fuse gradients in readiness order before cutting micro-ops (BytePS-style), so a micro-op may hold "
         "chunks of several tensors; false: each tensor is cut on its own (DESIGN.md 3.1)",
         -1e308,
         kNoMax,
         {}},
        {"policy.pipeline_degree",
         T::kInteger,
         D::kNumber,
         0,
         "all-to-all / expert-compute pipelining chunks; 0: policy default (lina: the all-to-all buffer over "
         "micro_op_size; tutel: adaptive among 1, 2, 4, 8)",
         0,
         kMaxPipelineDegree,
         {}},
        {"policy.packing",
         T::kString,
         D::kNumber,
         "auto",
         "lina: expert packing: auto (controller doubles experts per device while FFN < all-to-all), off, or an "
         "integer experts-per-device",
         -1e308,
         kNoMax,
         {}},
        {"policy.hierarchical_a2a",
         T::kBool,
         D::kNumber,
         true,
         "use hierarchical all-to-all (intra-node then inter-node); the paper enables it for all systems",
         -1e308,
         kNoMax,
         {}},
        {"policy.hold",
         T::kChoice,
         D::kNumber,
         "device",
         "lina: which all-to-alls an allreduce micro-op waits for. device (the paper, DESIGN.md 3.1): any all-to-all "
         "waiting or running on its GPU, and a MoE layer's backward all-to-alls from the start of its combine "
         "computation. links (beyond the paper): only those whose traffic crosses a class of links the micro-op's "
         "crosses too, the GPU's port into its node (NVLink or PCIe) or its NIC; with one NIC per node inter-node "
         "traffic crosses both, so there the two are the same. none (an ablation): never, so Lina keeps its "
         "partitioning, pipelining and packing without prioritising the all-to-all",
         -1e308,
         kNoMax,
         {"device", "links", "none"}},
        {"policy.zero_stage",
         T::kInteger,
         D::kNumber,
         0,
         "training: ZeRO stage (arXiv 1910.02054). 0: plain data parallelism, every GPU keeps the whole optimizer "
         "state and gradients of what it trains (16 bytes a parameter with mixed-precision Adam); 1: each "
         "data-parallel group (all GPUs for the non-expert parameters, an expert's replicas for its own) shards the "
         "fp32 weights and Adam moments (4 + 12 / group bytes); 2: the gradients too (2 + 14 / group bytes). Either "
         "way gradients are reduce-scattered, each GPU updates its shard, and the updated weights are all-gathered at "
         "the end of the step",
         0,
         2,
         {}},
        {"policy.path_length",
         T::kInteger,
         D::kNumber,
         3,
         "lina inference: expert path length l used to estimate the next layer (paper Table 5: 3 is best)",
         1,
         16,
         {}},
        {"policy.before_path",
         T::kChoice,
         D::kNumber,
         "after-gate",
         "lina inference: the first l MoE layers, which have no path of l choices to estimate from: placed on the "
         "gate's actual counts (Phase 2 alone, blocking for schedule_cost and the weight loads) or left static. "
         "lina-no-finetune has no Phase 2 and leaves them static either way",
         -1e308,
         kNoMax,
         {"after-gate", "static"}},
        {"policy.schedule_cost",
         T::kQuantity,
         D::kSeconds,
         "6.2ms",
         "lina inference: cost of one scheduling run (paper 6.3)",
         0,
         kNoMax,
         {}},
        {"policy.finetune_cost",
         T::kQuantity,
         D::kSeconds,
         "1.45ms",
         "lina inference: cost of Phase 2 when it finds no change (paper 6.3)",
         0,
         kNoMax,
         {}},
        {"policy.max_experts_per_device",
         T::kInteger,
         D::kNumber,
         4,
         "inference placement: at most this many experts packed on one device (paper 5.2)",
         1,
         1024,
         {}},
        {"policy.expert_cache",
         T::kQuantity,
         D::kBytes,
         "0B",
         "lina inference: GPU memory per device that keeps expert copies a placement no longer uses (least recently "
         "released evicted first), so that a later placement finds them without a load over PCIe; 0: as the paper's "
         "system, a device holds its home experts and the latest placement's copies of each layer",
         0,
         kNoMax,
         {}},
    };
  }();
  return t;
}

PolicySpec policy_from_json(const json& j, const std::string& mode, const std::string& file,
                            const std::string& pointer) {
  SpecReader r(j, file, pointer, policy_params(), "policy");
  PolicySpec p;
  p.name = r.choice("name");
  const auto& names = mode == "training" ? training_policy_names() : inference_policy_names();
  if (std::find(names.begin(), names.end(), p.name) == names.end()) {
    r.fail("name", fmt::format("policy '{}' is not a {} policy", p.name, mode));
  }
  p.label = r.string("label");
  if (p.label.empty()) p.label = p.name;
  auto allowed = mode == "training" ? options_of(p.name) : inference_options_of(p.name);
  for (const auto& [key, value] : j.items()) {
    if (key == "name" || key == "label") continue;
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      bool declared = std::any_of(policy_params().begin(), policy_params().end(),
                                  [&](const ParamDef& d) { return d.path == "policy." + key; });
      if (declared) r.fail(key, fmt::format("option '{}' does not apply to {} policy '{}'", key, mode, p.name));
    }
  }
  if (r.has("bucket_size")) p.bucket_bytes = r.quantity("bucket_size");
  if (r.has("micro_op_size")) p.micro_op_bytes = r.quantity("micro_op_size");
  if (r.has("micro_op_fusion")) p.micro_op_fusion = r.boolean("micro_op_fusion");
  if (r.has("pipeline_degree")) p.pipeline_degree = static_cast<int>(r.integer("pipeline_degree"));
  if (r.has("packing")) {
    p.packing = r.string("packing");
    bool ok = p.packing == "auto" || p.packing == "off" ||
              (!p.packing.empty() && std::all_of(p.packing.begin(), p.packing.end(), ::isdigit) &&
               p.packing.size() < 6 && std::stoi(p.packing) >= 1);
    if (!ok) r.fail("packing", "expected \"auto\", \"off\" or a positive integer (experts per device)");
  }
  if (r.has("hierarchical_a2a")) p.hierarchical_a2a = r.boolean("hierarchical_a2a");
  if (r.has("hold")) {
    const std::string h = r.choice("hold");
    p.hold = h == "links"  ? PolicySpec::Hold::kLinks
             : h == "none" ? PolicySpec::Hold::kNone
                           : PolicySpec::Hold::kDevice;
  }
  if (r.has("zero_stage")) p.zero_stage = static_cast<int>(r.integer("zero_stage"));
  if (r.has("path_length")) p.path_length = static_cast<int>(r.integer("path_length"));
  if (r.has("before_path")) p.before_path_static = r.choice("before_path") == "static";
  if (r.has("schedule_cost")) p.schedule_cost = r.time("schedule_cost");
  if (r.has("finetune_cost")) p.finetune_cost = r.time("finetune_cost");
  if (r.has("max_experts_per_device")) p.max_experts_per_device = static_cast<int>(r.integer("max_experts_per_device"));
  if (r.has("expert_cache")) p.expert_cache_bytes = r.quantity("expert_cache");
  r.finish();
  return p;
}

}  // namespace lina

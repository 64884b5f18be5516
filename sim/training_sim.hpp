// Simulates training steps of an MoE model on a cluster under one policy (DESIGN.md 2.6, 3.1) and measures them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/plan.hpp"
#include "sched/policy_spec.hpp"
#include "sched/timeline.hpp"
#include "sched/training_plan.hpp"
#include "sched/workload_spec.hpp"

namespace lina::sim {

struct RunResult {
  std::map<std::string, double> metrics;     // names carry their unit: step_time_s, a2a_time_s, ...
  std::map<std::string, std::string> notes;  // policy decisions: packing, pipeline degree
  Plan plan;
  Timeline timeline;
  // Inference with record_links: one CSV row per evaluated batch and MoE layer (cmd_run writes layers-<label>.csv).
  std::string layers_csv;
};

struct TrainingInput {
  ClusterSpec cluster;
  ModelSpec model;
  WorkloadSpec workload;
  PolicySpec policy;
  uint64_t seed = 1;
  bool record_links = false;
};

RunResult run_training(const TrainingInput& in);

// Metrics of the last step of a training timeline (DESIGN.md 6): step time, MoE layer times, all-to-all and gradient
// synchronisation busy time, exposed communication (weight loads from host memory included), compute utilisation,
// pipelining efficiency, and the time loading offloaded expert weights where there are any; averaged over ranks.
std::map<std::string, double> training_metrics(const Plan& plan, const Timeline& tl);

// What a step of `step_time_s` (already in `metrics`) delivers, for comparing clusters rather than policies:
//   tokens_per_s = tokens per GPU x GPUs / step time (every GPU trains its own micro-batch);
//   mfu          = model FLOPs utilisation (Chowdhery et al., PaLM, arXiv 2204.02311, appendix B): the model's
//                  training FLOPs (3 x model_forward_flops_per_token: top_k experts per token, attention over the
//                  whole sequence) x tokens_per_s, over the GPUs' peak at the model's compute dtype;
//   usd_per_million_tokens = the cluster's price per second over tokens_per_s, x 1e6 (only with
//                  cluster.price_usd_per_gpu_hour).
// MFU counts useful work only: capacity padding, DeepSpeed's dense-dispatch einsums, norms and activations and the
// optimizer are time the step spends but not model FLOPs, so one policy's MFU above another's is the same ranking as
// its step time, and MFU against peak says how far the cluster is from what its GPUs could do.
void add_throughput_metrics(std::map<std::string, double>& metrics, const ModelSpec& model,
                            const WorkloadSpec& workload, const ClusterSpec& cluster);

// The Lina paper's Figure 3: how much longer each backward all-to-all of the last step took in `run` than in
// `reference` (the ideal bound, where allreduce never slows an all-to-all). Needs the same plan structure (same
// layout and chunks); each list is sorted, both empty when the plans differ. `contended` keeps the all-to-alls that
// ran, in `run`, while a gradient allreduce ran on the same rank: the paper's figure measures the slowdown "by a
// concurrent allreduce", which the others did not meet.
struct A2aSlowdowns {
  std::vector<double> all, contended;
};
A2aSlowdowns a2a_bwd_slowdowns(const RunResult& run, const RunResult& reference);

}  // namespace lina::sim

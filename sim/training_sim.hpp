// Simulates training steps of an MoE model on a cluster under one policy (DESIGN.md 2.6, 3.1) and measures them.
#pragma once

#include <map>
#include <string>

#include "sched/cluster_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/plan.hpp"
#include "sched/policy_spec.hpp"
#include "sched/timeline.hpp"
#include "sched/training_plan.hpp"
#include "sched/workload_spec.hpp"

namespace lina::sim {

struct RunResult {
  std::map<std::string, double> metrics;  // names carry their unit: step_time_s, a2a_time_s, ...
  std::map<std::string, std::string> notes;  // policy decisions: packing, pipeline degree
  Plan plan;
  Timeline timeline;
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

// Metrics of the last step of a training timeline (DESIGN.md 6): step time, MoE layer times, all-to-all and
// allreduce busy time, exposed communication, compute utilisation, pipelining efficiency; averaged over ranks.
std::map<std::string, double> training_metrics(const Plan& plan, const Timeline& tl);

}  // namespace lina::sim

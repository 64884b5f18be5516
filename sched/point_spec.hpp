// One fully resolved sweep point of an experiment: typed cluster, workload and policies (model added by the model
// spec), validated. This is what an executor receives.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sched/experiment_spec.hpp"
#include "sched/policy_spec.hpp"
#include "sched/workload_spec.hpp"

namespace lina {

struct PointSpec {
  std::string mode;
  uint64_t seed = 1;
  ClusterSpec cluster;
  nlohmann::json model_json;  // resolved model object
  WorkloadSpec workload;
  std::vector<PolicySpec> policies;
};

// Throws InputError naming the spec file and JSON pointer of the first problem.
PointSpec load_point(const ExperimentSpec& e, const nlohmann::json& point_document);

}  // namespace lina

// One fully resolved sweep point of an experiment: typed cluster, model, workload and policies, validated. This is
// what an executor receives.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sched/experiment_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/policy_spec.hpp"
#include "sched/workload_spec.hpp"

namespace lina {

struct PointSpec {
  std::string mode;
  uint64_t seed = 1;
  ClusterSpec cluster;
  nlohmann::json model_json;  // resolved model object
  ModelSpec model;            // model_json read and checked
  WorkloadSpec workload;
  std::vector<PolicySpec> policies;
};

// Throws InputError naming the spec file and JSON pointer of the first problem.
PointSpec load_point(const ExperimentSpec& e, const nlohmann::json& point_document);

}  // namespace lina

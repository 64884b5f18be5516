// Result files shared by the simulator and the hardware backend (DESIGN.md 6): results.json with the versioned
// schema "lina.results/1", a CSV for plots, and the comparison table printed by `lina run`.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sched/experiment_spec.hpp"

namespace lina::cli {

inline constexpr const char* kResultsSchema = "lina.results/1";

struct PolicyMetrics {
  std::string policy;  // label
  std::string name;    // policy name
  std::map<std::string, double> metrics;
  std::map<std::string, std::string> notes;
};

struct PointResult {
  int index = 0;
  std::string key;
  nlohmann::json params = nlohmann::json::object();  // sweep values of this point
  std::vector<PolicyMetrics> policies;
};

nlohmann::json point_to_json(const PointResult& p);
PointResult point_from_json(const nlohmann::json& j);

// Adds speedup_vs_first (the first policy's time over each policy's: step_time_s or latency_p50_s) and, for
// inference, speedup_p95_vs_first (latency_p95_s) and a2a_tail_speedup_vs_first (a2a_tail_time_s).
void add_speedups(PointResult& p);

// The experiment's published references beside the simulated means (and, as JSON, for results.json).
struct ReferenceRow {
  std::string where, policy, metric, source;
  double simulated = 0, published = 0;
  int points = 0;  // sweep points averaged
};
// A point's sweep values for people: "path=value,...", where a swept object shows its "name" when it has one.
std::string point_label(const nlohmann::json& params);

std::vector<ReferenceRow> compare_references(const std::vector<Reference>& references,
                                             const std::vector<PointResult>& points);
std::string references_table(const std::vector<ReferenceRow>& rows);
nlohmann::json references_json(const std::vector<ReferenceRow>& rows);

std::string results_csv(const std::vector<PointResult>& points);
std::string results_table(const std::string& mode, const PointResult& p);

}  // namespace lina::cli

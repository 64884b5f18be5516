#include "sched/point_spec.hpp"

#include <fmt/format.h>

#include "sched/error.hpp"

namespace lina {

PointSpec load_point(const ExperimentSpec& e, const nlohmann::json& doc) {
  PointSpec p;
  p.mode = doc.at("mode").get<std::string>();
  p.seed = doc.value("seed", uint64_t{1});
  p.cluster = cluster_from_json(doc.at("cluster"), e.file, "/cluster");
  p.model_json = doc.at("model");
  if (!p.model_json.is_object()) throw InputError(format_location(e.file, "/model", "expected a model object"));
  p.model = load_model(p.model_json, e.file, "/model");  // here, so that every point's model is checked at load time
  p.workload = workload_from_json(doc.value("workload", nlohmann::json::object()), e.file, "/workload");
  const auto& list = doc.at("policies");
  for (size_t i = 0; i < list.size(); ++i) {
    std::string ptr = fmt::format("/policies/{}", i);
    PolicySpec ps = policy_from_json(list[i], p.mode, e.file, ptr);
    for (const auto& other : p.policies) {
      if (other.label == ps.label) {
        throw InputError(format_location(
            e.file, ptr, fmt::format("two policies are labelled '{}': give one a distinct \"label\"", ps.label)));
      }
    }
    p.policies.push_back(std::move(ps));
  }
  return p;
}

}  // namespace lina

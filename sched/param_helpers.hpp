// Short constructors for parameter tables (ParamDef), so that a table reads as one line per parameter.
// The same shapes as the helpers in cluster_spec.cpp; new tables can use these instead of copying them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "sched/params.hpp"

namespace lina::param_helpers {

// A quantity with a unit of `dim` (or a plain number in the base unit), in [min, max].
inline ParamDef q(std::string path, Dimension dim, nlohmann::json def, std::string doc, double min = 0,
                  double max = 1e308) {
  return ParamDef{std::move(path), ParamType::kQuantity, dim, std::move(def), std::move(doc), min, max, {}};
}
// A plain JSON number in [min, max].
inline ParamDef number(std::string path, nlohmann::json def, std::string doc, double min, double max = 1e308) {
  return ParamDef{
      std::move(path), ParamType::kNumber, Dimension::kNumber, std::move(def), std::move(doc), min, max, {}};
}
inline ParamDef integer(std::string path, nlohmann::json def, std::string doc, double min, double max = 1e308) {
  return ParamDef{
      std::move(path), ParamType::kInteger, Dimension::kNumber, std::move(def), std::move(doc), min, max, {}};
}
inline ParamDef boolean(std::string path, bool def, std::string doc) {
  return ParamDef{std::move(path), ParamType::kBool, Dimension::kNumber, def, std::move(doc), -1e308, 1e308, {}};
}
inline ParamDef choice(std::string path, std::vector<std::string> choices, nlohmann::json def, std::string doc) {
  return ParamDef{std::move(path), ParamType::kChoice, Dimension::kNumber, std::move(def), std::move(doc), -1e308,
                  1e308,           std::move(choices)};
}
inline ParamDef text(std::string path, nlohmann::json def, std::string doc) {
  return ParamDef{
      std::move(path), ParamType::kString, Dimension::kNumber, std::move(def), std::move(doc), -1e308, 1e308, {}};
}
inline ParamDef obj(std::string path, std::string doc, nlohmann::json def = nlohmann::json::object()) {
  return ParamDef{
      std::move(path), ParamType::kObject, Dimension::kNumber, std::move(def), std::move(doc), -1e308, 1e308, {}};
}
inline ParamDef list(std::string path, nlohmann::json def, std::string doc) {
  return ParamDef{
      std::move(path), ParamType::kList, Dimension::kNumber, std::move(def), std::move(doc), -1e308, 1e308, {}};
}

}  // namespace lina::param_helpers

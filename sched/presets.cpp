#include "sched/presets.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "sched/error.hpp"
#include "sched/params.hpp"

namespace lina {
namespace {

// "experiments/clusters/dgx-a100.json" -> folder "experiments/clusters", name "dgx-a100".
bool split(std::string_view path, std::string_view& folder, std::string_view& name) {
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return false;
  folder = path.substr(0, slash);
  name = path.substr(slash + 1);
  if (name.size() > 5 && name.substr(name.size() - 5) == ".json") name.remove_suffix(5);
  return true;
}

}  // namespace

std::filesystem::path resolve_relative(const std::string& name, const std::string& referencing_file) {
  std::filesystem::path p(name);
  if (p.is_relative() && !referencing_file.empty()) {
    auto beside = std::filesystem::path(referencing_file).parent_path() / p;
    if (std::filesystem::exists(beside)) return beside;
  }
  return p;
}

const EmbeddedPreset* find_preset(std::string_view folder, std::string_view name) {
  for (const auto& p : embedded_presets()) {
    std::string_view f, n;
    if (split(p.path, f, n) && f == folder && n == name) return &p;
  }
  return nullptr;
}

std::vector<std::string> preset_names(std::string_view folder) {
  std::vector<std::string> out;
  for (const auto& p : embedded_presets()) {
    std::string_view f, n;
    if (split(p.path, f, n) && f == folder) out.emplace_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A reference is a preset name, a path to a JSON file, or an inline object. Returns the object and its origin.
ResolvedSpec resolve_spec_reference(const nlohmann::json& ref, const std::string& file, const std::string& pointer,
                                    std::string_view folder, std::string_view what) {
  if (ref.is_object()) return {ref, file};
  if (!ref.is_string()) {
    throw InputError(
        format_location(file, pointer, fmt::format("expected a {} preset name, a file path or an object", what)));
  }
  std::string name = ref.get<std::string>();
  if (const EmbeddedPreset* p = find_preset(folder, name)) {
    return {parse_json_text(std::string(p->json), std::string(p->path)), std::string(p->path)};
  }
  bool looks_like_path = name.find('/') != std::string::npos || name.ends_with(".json");
  if (looks_like_path) {
    auto path = resolve_relative(name, file);
    if (!std::filesystem::exists(path)) {
      throw InputError(format_location(file, pointer, fmt::format("{} file '{}' not found", what, name)));
    }
    return {parse_json_file(path.string()), path.string()};
  }
  auto names = preset_names(folder);
  std::string near = nearest(name, names);
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  throw InputError(format_location(file, pointer,
                                   fmt::format("unknown {} preset '{}'{}; presets: {}", what, name,
                                               near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near), list)));
}

nlohmann::json merge_over_base(const nlohmann::json& j, const std::string& file, const std::string& pointer,
                               std::string_view folder, std::string_view what, const SpecCheck& check) {
  if (!j.is_object() || !j.contains("base")) return j;
  const nlohmann::json& base_ref = j.at("base");
  const std::string base_pointer = pointer + "/base";
  if (!base_ref.is_string()) {
    throw InputError(format_location(file, base_pointer, fmt::format("expected a {} preset name or file path", what)));
  }
  static thread_local int depth = 0;
  if (depth > 8) {
    throw InputError(format_location(file, base_pointer, "too many nested 'base' references (a cycle?)"));
  }
  auto [base_json, origin] = resolve_spec_reference(base_ref, file, base_pointer, folder, what);
  ++depth;
  try {
    check(base_json, origin, origin == file ? base_pointer : "");
  } catch (...) {
    --depth;
    throw;
  }
  --depth;
  nlohmann::json merged = base_json.is_object() ? base_json : nlohmann::json::object();
  merged.erase("base");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "base") continue;
    if (it.value().is_object() && merged.contains(it.key()) && merged[it.key()].is_object()) {
      merged[it.key()].merge_patch(it.value());
    } else {
      merged[it.key()] = it.value();
    }
  }
  return merged;
}

}  // namespace lina

// Preset JSON files (cluster, GPU and model specs) embedded into the binary at build time (cmake/EmbedPresets.cmake),
// so that a spec can say "cluster": "dgx-a100" from any working directory.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lina {

struct EmbeddedPreset {
  std::string_view path;  // relative to the source tree, e.g. "experiments/clusters/dgx-a100.json"
  std::string_view json;
};

const std::vector<EmbeddedPreset>& embedded_presets();

// Finds the preset `name` in folder `folder` ("experiments/clusters", "models", "experiments/gpus").
const EmbeddedPreset* find_preset(std::string_view folder, std::string_view name);
// Names of all presets in a folder, sorted.
std::vector<std::string> preset_names(std::string_view folder);

// A path named in a spec: relative to the referencing file's folder when it exists there, else as given (relative
// to the working directory).
std::filesystem::path resolve_relative(const std::string& name, const std::string& referencing_file);

// A spec reference: a preset name (looked up in `folder`), a path to a JSON file (relative to the referencing file's
// folder when it exists there, else to the working directory), or an inline object. Returns the object and where it
// came from (the preset's or file's path, or `file` for an inline object), for error messages.
struct ResolvedSpec {
  nlohmann::json json;
  std::string origin;
};
ResolvedSpec resolve_spec_reference(const nlohmann::json& ref, const std::string& file, const std::string& pointer,
                                    std::string_view folder, std::string_view what);

// An object with "base" (a preset name in `folder` or a file path) is that spec with the object's other fields over
// it: a field replaces the base's, an object field is merged into the base's object field by field ("nic":
// {"bandwidth": ...} keeps the base NIC's other fields). The base is checked first by `check(json, origin,
// pointer)`, so that its own errors name its own file; bases may have bases (up to 8 deep). Without "base": `j`.
using SpecCheck = std::function<void(const nlohmann::json&, const std::string&, const std::string&)>;
nlohmann::json merge_over_base(const nlohmann::json& j, const std::string& file, const std::string& pointer,
                               std::string_view folder, std::string_view what, const SpecCheck& check);

}  // namespace lina

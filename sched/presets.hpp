// Preset JSON files (cluster, GPU and model specs) embedded into the binary at build time (cmake/EmbedPresets.cmake),
// so that a spec can say "cluster": "dgx-a100" from any working directory.
#pragma once

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

}  // namespace lina

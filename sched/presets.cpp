#include "sched/presets.hpp"

#include <algorithm>

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

}  // namespace lina

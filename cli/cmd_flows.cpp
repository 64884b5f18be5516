// Placeholder: `lina flows` lands with its issue.
#include <cstdio>

#include "cli/commands.hpp"

namespace lina::cli {

int cmd_flows(const std::vector<std::string>&) {
  std::fprintf(stderr, "lina flows: not available in this build yet\n");
  return 1;
}

}  // namespace lina::cli

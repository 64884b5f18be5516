// Placeholder: `lina trace` lands with its issue.
#include <cstdio>

#include "cli/commands.hpp"

namespace lina::cli {

int cmd_trace(const std::vector<std::string>&) {
  std::fprintf(stderr, "lina trace: not available in this build yet\n");
  return 1;
}

}  // namespace lina::cli

// Placeholder: `lina collective` lands with its issue.
#include <cstdio>

#include "cli/commands.hpp"

namespace lina::cli {

int cmd_collective(const std::vector<std::string>&) {
  std::fprintf(stderr, "lina collective: not available in this build yet\n");
  return 1;
}

}  // namespace lina::cli

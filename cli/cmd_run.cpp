#include <cstdio>

#include "cli/commands.hpp"

namespace lina::cli {

int cmd_run(const std::vector<std::string>&) {
  std::fprintf(stderr, "lina run: not available in this build yet\n");
  return 1;
}

}  // namespace lina::cli

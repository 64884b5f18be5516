#include "sched/error.hpp"

namespace lina {

std::string format_location(const std::string& file, const std::string& where, const std::string& message) {
  std::string out;
  if (!file.empty()) out += file + ": ";
  if (!where.empty()) out += where + ": ";
  return out + message;
}

}  // namespace lina

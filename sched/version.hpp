// lina's version and the git commit it was built from (recorded in results.json).
#pragma once
#include <string_view>
namespace lina {
std::string_view version();
std::string_view git_commit();
}  // namespace lina

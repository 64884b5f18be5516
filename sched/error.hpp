// Errors caused by the user's input (specs, traces, command-line values).
//
// Every such error names where the problem is (a file and a JSON pointer, a byte offset or a line) and what was
// expected. The `lina` program prints what() on one line and exits with code 2 (kInputErrorExit); anything else that
// escapes is a bug in lina and exits with code 1.
#pragma once

#include <stdexcept>
#include <string>

namespace lina {

inline constexpr int kInputErrorExit = 2;

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& message) : std::runtime_error(message) {}
};

// "FILE: POINTER: MESSAGE" where FILE or POINTER may be empty (then omitted).
std::string format_location(const std::string& file, const std::string& where, const std::string& message);

}  // namespace lina

// The subcommands of `lina`. Each lives in cmd_<name>.cpp and parses its own options with Boost.Program_options.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lina::cli {

// A subcommand receives its arguments without the program and command names. It returns the process exit code;
// InputError escaping it becomes exit code 2 with its message on one line (see main.cpp).
using CommandFn = int (*)(const std::vector<std::string>& args);

struct Command {
  std::string_view name;
  std::string_view summary;
  CommandFn run;
};

const std::vector<Command>& commands();
const Command* find_command(std::string_view name);

int cmd_run(const std::vector<std::string>& args);
int cmd_params(const std::vector<std::string>& args);
int cmd_collective(const std::vector<std::string>& args);
int cmd_flows(const std::vector<std::string>& args);
int cmd_trace(const std::vector<std::string>& args);
int cmd_hw(const std::vector<std::string>& args);

// Runs the whole program (used by main() and by the end-to-end tests, which call it in-process).
int main_entry(int argc, const char* const* argv);

}  // namespace lina::cli

#include "cli/commands.hpp"

namespace lina::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> list = {
      {"run", "run an experiment spec and write results, a timeline and plots", cmd_run},
      {"params", "list every parameter with its unit, default and documentation", cmd_params},
      {"collective", "simulate one collective (and concurrent ones) on a cluster", cmd_collective},
      {"flows", "simulate a list of flows from a JSON file", cmd_flows},
      {"trace", "expert-selection traces: convert, stats, synth, fit, split, estimate", cmd_trace},
      {"hw", "hardware backend: calibrate, validate (needs CUDA and a GPU)", cmd_hw},
  };
  return list;
}

const Command* find_command(std::string_view name) {
  for (const auto& c : commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

}  // namespace lina::cli

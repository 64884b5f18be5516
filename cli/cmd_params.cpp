// `lina params [--json]`: every parameter with its unit, default and documentation.
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.hpp"
#include "sched/params.hpp"

namespace lina::cli {

int cmd_params(const std::vector<std::string>& args) {
  namespace po = boost::program_options;
  po::options_description opts("lina params [--json]");
  opts.add_options()("help,h", "show this help")("json", "print a JSON array instead of a table");
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).run(), vm);
  if (vm.count("help")) {
    std::ostringstream help;
    help << opts;
    std::printf(
        "%s\nLists every parameter of experiment, cluster, GPU, model, workload and policy specs.\n"
        "A parameter's path is what --set and \"sweep\" take (policies.N.* for policy options).\n",
        help.str().c_str());
    return 0;
  }
  auto params = all_params();
  if (vm.count("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : params) {
      nlohmann::json e = {{"path", p.path},
                          {"unit", p.unit_name()},
                          {"required", p.required()},
                          {"default", p.default_value},
                          {"doc", p.doc}};
      if (!p.choices.empty()) e["choices"] = p.choices;
      if (p.min > -1e308) e["min"] = p.min;
      if (p.max < 1e308) e["max"] = p.max;
      out.push_back(std::move(e));
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  size_t wp = 4, wu = 4, wd = 7;
  auto default_text = [](const ParamDef& p) {
    if (p.required()) return std::string("(required)");
    return p.default_value.is_string() ? p.default_value.get<std::string>() : p.default_value.dump();
  };
  for (const auto& p : params) {
    wp = std::max(wp, p.path.size());
    wu = std::max(wu, std::min<size_t>(p.unit_name().size(), 24));
    wd = std::max(wd, std::min<size_t>(default_text(p).size(), 16));
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", "path", wp, "unit", wu, "default", wd, "documentation");
  for (const auto& p : params) {
    out += fmt::format("{:<{}}  {:<{}}  {:<{}}  {}\n", p.path, wp, p.unit_name(), wu, default_text(p), wd, p.doc);
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace lina::cli

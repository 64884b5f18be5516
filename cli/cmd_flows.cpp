// `lina flows FILE`: simulates a list of flows on a cluster with the flow-level network (DESIGN.md 2.3) and prints
// each flow's start and finish time as JSON, with full double precision.
//
// FILE: {"cluster": PRESET | PATH | {inline spec}, "flows": [{"src": gpu, "dst": gpu, "bytes": n | "64MiB",
//        "start_s": t (default 0), "class": c (default 0, 0 = highest), "weight": w (default 1)}, ...]}
// GPUs are numbered node-major (node * gpus_per_node + local index). Flows are listed in non-decreasing start time.
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>

#include "cli/commands.hpp"
#include "sched/cluster_spec.hpp"
#include "sched/error.hpp"
#include "sched/params.hpp"
#include "sim/network.hpp"

namespace lina::cli {
namespace {

namespace po = boost::program_options;

constexpr const char* kUsage =
    "usage: lina flows FILE\n"
    "\n"
    "Simulates flows on a cluster with the flow-level network model (strict priority across classes, weighted\n"
    "max-min within a class) and prints {\"flows\": [{\"id\", \"start_s\", \"finish_s\"}...], \"stats\": {...}} as "
    "JSON.\n"
    "\n"
    "FILE is JSON: {\"cluster\": PRESET|PATH|{...}, \"flows\": [{\"src\": GPU, \"dst\": GPU, \"bytes\": N|\"64MiB\",\n"
    "  \"start_s\": T, \"class\": C, \"weight\": W}, ...]}; start_s (default 0) must not decrease along the list,\n"
    "  class defaults to 0 (highest priority, at most 63), weight to 1. GPUs are numbered node-major\n"
    "  (node * gpus_per_node + local index); id is the flow's index in the list.\n";

const std::vector<ParamDef>& flow_table() {
  static const std::vector<ParamDef> t = {
      ParamDef{"flows_file.cluster",
               ParamType::kObject,
               Dimension::kNumber,
               nullptr,
               "cluster: a preset name, a JSON file or an inline object",
               -1e308,
               1e308,
               {}},
      ParamDef{"flows_file.flows", ParamType::kList, Dimension::kNumber, nullptr, "the flows", -1e308, 1e308, {}},
      ParamDef{"flows_file.description", ParamType::kString, Dimension::kNumber, "", "free text", -1e308, 1e308, {}},
      ParamDef{"flow.src", ParamType::kInteger, Dimension::kNumber, nullptr, "source GPU", 0, 1e308, {}},
      ParamDef{"flow.dst", ParamType::kInteger, Dimension::kNumber, nullptr, "destination GPU", 0, 1e308, {}},
      ParamDef{"flow.bytes", ParamType::kQuantity, Dimension::kBytes, nullptr, "bytes to move", 0, 1e308, {}},
      ParamDef{"flow.start_s", ParamType::kNumber, Dimension::kNumber, 0.0, "start time, seconds", 0, 1e9, {}},
      ParamDef{"flow.class", ParamType::kInteger, Dimension::kNumber, 0, "priority class, 0 highest", 0, 63, {}},
      ParamDef{
          "flow.weight", ParamType::kNumber, Dimension::kNumber, 1.0, "weight within its class", 1e-300, 1e300, {}},
  };
  return t;
}

struct FlowIn {
  int src, dst, cls;
  double bytes, weight;
  Time start;
};

}  // namespace

int cmd_flows(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("file", po::value<std::string>()->required(), "flows file (JSON)");
  po::positional_options_description pos;
  pos.add("file", 1);
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
  }
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  po::notify(vm);
  const std::string file = vm["file"].as<std::string>();

  const auto wall0 = std::chrono::steady_clock::now();
  const nlohmann::json j = parse_json_file(file);
  SpecReader top(j, file, "", flow_table(), "flows_file");
  top.string("description");
  ClusterSpec cluster = load_cluster(top.raw("cluster"), file, top.pointer("cluster"));
  const nlohmann::json& list = top.raw("flows");
  if (!list.is_array()) top.fail("flows", "expected a list of flows");
  top.finish();

  sim::Topology topo(cluster);
  std::vector<FlowIn> flows;
  flows.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    SpecReader r(list[i], file, fmt::format("/flows/{}", i), flow_table(), "flow");
    FlowIn f{};
    f.src = static_cast<int>(r.integer("src"));
    f.dst = static_cast<int>(r.integer("dst"));
    for (auto [key, gpu] : {std::pair{"src", f.src}, std::pair{"dst", f.dst}}) {
      if (gpu >= topo.gpu_count()) {
        r.fail(key, fmt::format("unknown GPU {}: the cluster has GPUs 0..{}", gpu, topo.gpu_count() - 1));
      }
    }
    f.bytes = r.quantity("bytes");
    double start = r.quantity("start_s");
    f.start = Time::from_seconds(start);
    if (!flows.empty() && f.start < flows.back().start) {
      r.fail("start_s", fmt::format("expected a start time >= the previous flow's ({} s), got {} s",
                                    flows.back().start.seconds(), start));
    }
    f.cls = static_cast<int>(r.integer("class"));
    f.weight = r.quantity("weight");
    r.finish();
    flows.push_back(f);
  }

  sim::Engine engine;
  sim::Network net(engine, topo);
  std::vector<Time> finish(flows.size(), Time::max());
  // One engine event per distinct start time: flows starting together are started by one event.
  for (size_t i = 0; i < flows.size();) {
    size_t k = i;
    while (k < flows.size() && flows[k].start == flows[i].start) ++k;
    engine.schedule_at(flows[i].start, [&, i, k] {
      for (size_t x = i; x < k; ++x) {
        const FlowIn& f = flows[x];
        net.start_flow(f.src, f.dst, f.bytes, f.cls, f.weight,
                       [&finish, &engine, x](sim::Network::FlowId) { finish[x] = engine.now(); });
      }
    });
    i = k;
  }
  engine.run();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();

  nlohmann::ordered_json out;
  nlohmann::ordered_json& arr = out["flows"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < flows.size(); ++i) {
    arr.push_back({{"id", i}, {"start_s", flows[i].start.seconds()}, {"finish_s", finish[i].seconds()}});
  }
  const auto& s = net.stats();
  out["stats"] = {{"events", engine.events_executed()},
                  {"rate_recomputes", s.rate_recomputes},
                  {"components", s.components},
                  {"flow_allocations", s.flow_allocations},
                  {"flows", s.flows},
                  {"wall_s", wall}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace lina::cli

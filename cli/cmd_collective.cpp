// `lina collective`: simulates one collective (plus optional concurrent ones, all launched at time 0 by every rank)
// on a cluster with the flow-level network and prints each one's completion time (DESIGN.md 2.3, 2.4).
#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <iostream>
#include <set>

#include "cli/commands.hpp"
#include "sched/cluster_spec.hpp"
#include "sched/error.hpp"
#include "sched/units.hpp"
#include "sim/collectives.hpp"

namespace lina::cli {
namespace {

namespace po = boost::program_options;
using sim::Collectives;

constexpr const char* kUsage =
    "usage: lina collective --cluster PRESET|FILE --op alltoall|allreduce|reducescatter|allgather --bytes SIZE\n"
    "                       [--algo direct|hierarchical|ring|tree|auto] [--ranks LIST] [--with OP:SIZE[:CLASS]]...\n"
    "                       [--class N] [--ring-model steps|pipelined] [--json]\n"
    "\n"
    "Simulates one collective, plus the --with ones running concurrently on the same ranks, all launched at time 0,\n"
    "and prints each one's completion time (the last rank's). SIZE follows nccl-tests: the send buffer of one rank\n"
    "(alltoall: M in total, M/P to each rank; allreduce and reducescatter: M), and for allgather the gathered output\n"
    "(each rank contributes M/P). Units: B, KB, MB, GB, KiB, MiB, GiB. Default algorithms: alltoall direct,\n"
    "allreduce ring; reducescatter and allgather are rings. --ranks takes GPU ids and ranges (\"0-7,16,24-31\"),\n"
    "default all GPUs. Priority class 0 is the highest; --with collectives use their default algorithm and class 0\n"
    "unless CLASS is given. --ring-model overrides the cluster's ring_model (docs/network.md: each ring step\n"
    "simulated, or each ring phase as one pipelined transfer per edge).\n";

Collectives::Op parse_op(const std::string& s, const std::string& where) {
  if (s == "alltoall") return Collectives::Op::kAllToAll;
  if (s == "allreduce") return Collectives::Op::kAllReduce;
  if (s == "reducescatter") return Collectives::Op::kReduceScatter;
  if (s == "allgather") return Collectives::Op::kAllGather;
  throw InputError(format_location("", where,
                                   fmt::format("expected alltoall, allreduce, reducescatter or allgather, "
                                               "got '{}'",
                                               s)));
}

Collectives::Algo default_algo(Collectives::Op op) {
  return op == Collectives::Op::kAllToAll ? Collectives::Algo::kDirect : Collectives::Algo::kRing;
}

Collectives::Algo parse_algo(const std::string& s, Collectives::Op op) {
  using A = Collectives::Algo;
  A a;
  if (s == "direct") {
    a = A::kDirect;
  } else if (s == "hierarchical") {
    a = A::kHierarchical;
  } else if (s == "ring") {
    a = A::kRing;
  } else if (s == "tree") {
    a = A::kTree;
  } else if (s == "auto") {
    a = A::kAuto;
  } else {
    throw InputError(fmt::format("--algo: expected direct, hierarchical, ring, tree or auto, got '{}'", s));
  }
  bool ok = op == Collectives::Op::kAllToAll    ? (a == A::kDirect || a == A::kHierarchical)
            : op == Collectives::Op::kAllReduce ? (a != A::kDirect)
                                                : a == A::kRing;
  if (!ok) {
    throw InputError(
        fmt::format("--algo: '{}' is not an algorithm of {} (alltoall: direct, hierarchical; allreduce: "
                    "ring, tree, hierarchical, auto; reducescatter, allgather: ring)",
                    s, Collectives::name(op)));
  }
  return a;
}

double parse_bytes(const std::string& s, const std::string& where) {
  try {
    return parse_quantity(s, Dimension::kBytes);
  } catch (const InputError& e) {
    throw InputError(format_location("", where, e.what()));
  }
}

int parse_class(const std::string& s, const std::string& where) {
  size_t used = 0;
  int c = -1;
  try {
    c = std::stoi(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != s.size() || c < 0 || c > sim::Network::kMaxClass) {
    throw InputError(format_location("", where, fmt::format("expected a priority class in [0, 63], got '{}'", s)));
  }
  return c;
}

std::vector<int> parse_ranks(const std::string& s, int gpus) {
  std::vector<int> out;
  if (s == "all") {
    for (int g = 0; g < gpus; ++g) out.push_back(g);
    return out;
  }
  std::set<int> seen;
  size_t p = 0;
  auto fail = [&](const std::string& why) {
    throw InputError(
        fmt::format("--ranks: expected GPU ids and ranges such as 0-7,16 within 0..{}: {} in '{}'", gpus - 1, why, s));
  };
  while (p <= s.size()) {
    size_t comma = s.find(',', p);
    std::string item = s.substr(p, comma == std::string::npos ? std::string::npos : comma - p);
    size_t dash = item.find('-');
    auto num = [&](const std::string& t) {
      size_t used = 0;
      int v = -1;
      try {
        v = std::stoi(t, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (t.empty() || used != t.size() || v < 0) fail(fmt::format("bad number '{}'", t));
      if (v >= gpus) fail(fmt::format("unknown GPU {}", v));
      return v;
    };
    int a = num(dash == std::string::npos ? item : item.substr(0, dash));
    int b = dash == std::string::npos ? a : num(item.substr(dash + 1));
    if (b < a) fail(fmt::format("empty range '{}'", item));
    for (int g = a; g <= b; ++g) {
      if (!seen.insert(g).second) fail(fmt::format("GPU {} listed twice", g));
      out.push_back(g);
    }
    if (comma == std::string::npos) break;
    p = comma + 1;
  }
  return out;
}

struct Job {
  Collectives::Op op;
  Collectives::Algo algo;
  double bytes;
  int cls;
  std::vector<Time> finish;  // per rank index
};

}  // namespace

int cmd_collective(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("cluster", po::value<std::string>()->required(), "cluster preset name or JSON file")(
      "op", po::value<std::string>()->required(), "alltoall | allreduce | reducescatter | allgather")(
      "bytes", po::value<std::string>()->required(), "size, nccl-tests convention (e.g. 64MiB)")(
      "algo", po::value<std::string>(),
      "direct | hierarchical | ring | tree | auto (allreduce: the fastest alone, as NCCL's tuner)")(
      "ranks", po::value<std::string>()->default_value("all"), "GPU ids and ranges, e.g. 0-7,16")(
      "with", po::value<std::vector<std::string>>()->composing(), "concurrent collective OP:SIZE[:CLASS]")(
      "class", po::value<std::string>()->default_value("0"), "priority class of the main collective (0 highest)")(
      "ring-model", po::value<std::string>(), "steps | pipelined: how rings are simulated (default: the cluster's)")(
      "json", po::bool_switch(), "print JSON");
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << kUsage << "\n" << opts;
      return 0;
    }
  }
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).run(), vm);
  po::notify(vm);

  const auto wall0 = std::chrono::steady_clock::now();
  ClusterSpec cluster = load_cluster_preset_or_file(vm["cluster"].as<std::string>());
  if (vm.count("ring-model")) {
    const std::string m = vm["ring-model"].as<std::string>();
    const auto model = ring_model_named(m);
    if (!model) throw InputError(format_location("", "--ring-model", "expected steps or pipelined, got '" + m + "'"));
    cluster.ring_model = *model;
  }
  std::vector<Job> jobs;
  {
    Job j;
    j.op = parse_op(vm["op"].as<std::string>(), "--op");
    j.algo = vm.count("algo") ? parse_algo(vm["algo"].as<std::string>(), j.op) : default_algo(j.op);
    j.bytes = parse_bytes(vm["bytes"].as<std::string>(), "--bytes");
    j.cls = parse_class(vm["class"].as<std::string>(), "--class");
    jobs.push_back(j);
  }
  if (vm.count("with")) {
    for (const auto& w : vm["with"].as<std::vector<std::string>>()) {
      const std::string where = "--with " + w;
      size_t c1 = w.find(':');
      if (c1 == std::string::npos) throw InputError(format_location("", where, "expected OP:SIZE[:CLASS]"));
      size_t c2 = w.find(':', c1 + 1);
      Job j;
      j.op = parse_op(w.substr(0, c1), where);
      j.algo = default_algo(j.op);
      j.bytes = parse_bytes(w.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1), where);
      j.cls = c2 == std::string::npos ? 0 : parse_class(w.substr(c2 + 1), where);
      jobs.push_back(j);
    }
  }

  sim::Engine engine;
  sim::Topology topo(cluster);
  sim::Network net(engine, topo);
  Collectives coll(engine, net, topo, cluster);
  const std::vector<int> ranks = parse_ranks(vm["ranks"].as<std::string>(), topo.gpu_count());
  std::vector<int> index_of(topo.gpu_count(), -1);
  for (size_t i = 0; i < ranks.size(); ++i) index_of[ranks[i]] = static_cast<int>(i);
  std::vector<Collectives::CollId> ids;
  for (Job& j : jobs) {
    j.finish.assign(ranks.size(), Time::max());
    auto done = [&engine, &index_of, &j](int gpu) { j.finish[index_of[gpu]] = engine.now(); };
    try {
      switch (j.op) {
        case Collectives::Op::kAllToAll:
          ids.push_back(coll.alltoall(ranks, j.bytes, j.algo, j.cls, done));
          break;
        case Collectives::Op::kAllReduce:
          ids.push_back(coll.allreduce(ranks, j.bytes, j.algo, j.cls, done));
          break;
        case Collectives::Op::kReduceScatter:
          ids.push_back(coll.reduce_scatter(ranks, j.bytes, j.cls, done));
          break;
        case Collectives::Op::kAllGather:
          ids.push_back(coll.all_gather(ranks, j.bytes, j.cls, done));
          break;
      }
    } catch (const std::invalid_argument& e) {
      // e.g. a hierarchical algorithm on ranks that do not fill nodes evenly
      throw InputError(fmt::format("--ranks/--algo: {}", e.what()));
    }
  }
  for (auto id : ids) coll.launch_all(id);
  engine.run();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();

  nlohmann::ordered_json out;
  out["cluster"] = cluster.name;
  out["gpus"] = topo.gpu_count();
  out["ranks"] = ranks;
  out["collective_alpha_s"] = cluster.collective_alpha.seconds();
  nlohmann::ordered_json& arr = out["collectives"] = nlohmann::ordered_json::array();
  for (const Job& j : jobs) {
    Time last = Time::zero(), first = Time::max();
    for (Time t : j.finish) {
      last = std::max(last, t);
      first = std::min(first, t);
    }
    nlohmann::ordered_json rank_times = nlohmann::ordered_json::array();
    for (Time t : j.finish) rank_times.push_back(t.seconds());
    arr.push_back({{"op", Collectives::name(j.op)},
                   {"algo", Collectives::name(j.algo)},
                   {"bytes", j.bytes},
                   {"class", j.cls},
                   {"time_s", last.seconds()},
                   {"first_rank_s", first.seconds()},
                   {"algbw_bytes_per_s", last > Time::zero() ? j.bytes / last.seconds() : 0.0},
                   {"rank_finish_s", rank_times}});
  }
  const auto& s = net.stats();
  out["stats"] = {{"events", engine.events_executed()},     {"flows", s.flows},
                  {"rate_recomputes", s.rate_recomputes},   {"components", s.components},
                  {"flow_allocations", s.flow_allocations}, {"wall_s", wall}};
  if (vm["json"].as<bool>()) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << fmt::format("cluster {}: {} GPUs, {} ranks, alpha {} us\n", cluster.name, topo.gpu_count(), ranks.size(),
                           cluster.collective_alpha.seconds() * 1e6);
  for (const auto& c : arr) {
    std::cout << fmt::format("{:<13} {:<12} {:>14} class {}: {:.6f} ms (first rank {:.6f} ms), algbw {:.3f} GB/s\n",
                             c["op"].get<std::string>(), c["algo"].get<std::string>(),
                             format_quantity(c["bytes"].get<double>(), Dimension::kBytes), c["class"].get<int>(),
                             c["time_s"].get<double>() * 1e3, c["first_rank_s"].get<double>() * 1e3,
                             c["algbw_bytes_per_s"].get<double>() / 1e9);
  }
  std::cout << fmt::format("{} flows, {} rate recomputes, {} events, {:.3f} s wall\n", s.flows, s.rate_recomputes,
                           engine.events_executed(), wall);
  return 0;
}

}  // namespace lina::cli

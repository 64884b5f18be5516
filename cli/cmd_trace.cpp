// `lina trace`: expert-selection traces (DESIGN.md 5; traces/README.md documents every subcommand with examples).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "cli/commands.hpp"
#include "sched/error.hpp"
#include "traces/convert.hpp"
#include "traces/estimate.hpp"
#include "traces/reader.hpp"
#include "traces/stats.hpp"
#include "traces/synth.hpp"
#include "traces/writer.hpp"

namespace lina::cli {
namespace {

namespace po = boost::program_options;
using namespace lina::traces;

constexpr const char* kUsage =
    "usage: lina trace SUBCOMMAND [ARGS...]\n"
    "\n"
    "subcommands:\n"
    "  info FILE                      header and batch summary of a trace\n"
    "  stats FILE [--json] [--exclude-layer L]... [--batches all|prefill|decode] [--min-group N] [--seed S]\n"
    "                                 popularity skew and same-path statistics\n"
    "  convert --from FORMAT INPUT... -o OUT [--regroup-decode N]\n"
    "                                 convert public traces (deepseek-csv, llama4-json, mixtral-jsonl, mixtral-raw)\n"
    "  counts FILE -o OUT             layer-level trace: expert token counts per layer per batch\n"
    "  synth -o OUT [options]         synthetic trace (Zipf skew, per-layer hot sets, inter-layer correlation)\n"
    "  fit FILE                       synth parameters that best match a trace's statistics\n"
    "  split FILE --profile-out A --eval-out B [--profile-fraction F] [--shuffle --seed S]\n"
    "                                 profiling / evaluation split by batches\n"
    "  estimate --profile FILE --eval FILE [--path-length L]...\n"
    "                                 accuracy of Lina's top-2 popularity estimate\n"
    "\n"
    "'lina trace SUBCOMMAND --help' lists a subcommand's options. Bad input exits with code 2.\n";

struct Parsed {
  po::variables_map vm;
  bool help = false;
};

// Parses args with the given options and positional name; --help prints the usage of the subcommand.
Parsed parse(const std::vector<std::string>& args, const po::options_description& opts,
             const po::positional_options_description& pos, const std::string& usage) {
  Parsed p;
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << usage << "\n" << opts;
      p.help = true;
      return p;
    }
  }
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), p.vm);
  po::notify(p.vm);
  return p;
}

int trace_info(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("file", po::value<std::string>()->required(), "trace file")(
      "batches", po::value<int>()->default_value(10), "list the first N batches");
  po::positional_options_description pos;
  pos.add("file", 1);
  auto p = parse(args, opts, pos, "usage: lina trace info FILE [--batches N]");
  if (p.help) return 0;
  TraceReader r(p.vm["file"].as<std::string>());
  const auto& h = r.header();
  std::cout << header_to_json(h).dump(2) << "\n";
  LayerCounts c;
  const int show = p.vm["batches"].as<int>();
  uint64_t i = 0, prefill = 0, max_tokens = 0;
  while (r.next(c)) {
    prefill += (c.flags & kBatchPrefill) != 0;
    max_tokens = std::max<uint64_t>(max_tokens, uint64_t(c.tokens));
    if (int64_t(i) < show) {
      std::cout << fmt::format("batch {}: {} tokens{}\n", i, c.tokens, (c.flags & kBatchPrefill) ? " (prefill)" : "");
    }
    ++i;
  }
  std::cout << fmt::format("{} batches ({} prefill), {} tokens, largest batch {} tokens; file checks passed\n", i,
                           prefill, h.tokens, max_tokens);
  return 0;
}

// The layers and batches `trace stats` and `trace fit` look at (--exclude-layer, --batches).
StatsOptions stats_selection(const po::variables_map& vm) {
  StatsOptions o;
  if (vm.count("exclude-layer")) o.exclude_layers = vm["exclude-layer"].as<std::vector<int>>();
  const std::string b = vm["batches"].as<std::string>();
  if (b == "all") {
    o.batches = BatchFilter::kAll;
  } else if (b == "prefill") {
    o.batches = BatchFilter::kPrefill;
  } else if (b == "decode") {
    o.batches = BatchFilter::kDecode;
  } else {
    throw InputError(fmt::format("--batches: expected all, prefill or decode, got '{}'", b));
  }
  return o;
}

int trace_stats(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("file", po::value<std::string>()->required(), "trace file")("json", "print JSON")(
      "exclude-layer", po::value<std::vector<int>>()->composing(), "leave out this model layer id (repeatable)")(
      "batches", po::value<std::string>()->default_value("all"), "which batches: all, prefill or decode")(
      "min-group", po::value<int>()->default_value(10), "smallest group counted in the unweighted same-path mean")(
      "seed", po::value<uint64_t>()->default_value(1), "seed of the shuffled baseline");
  po::positional_options_description pos;
  pos.add("file", 1);
  auto p = parse(args, opts, pos, "usage: lina trace stats FILE [--json] [--exclude-layer L]...");
  if (p.help) return 0;
  StatsOptions o = stats_selection(p.vm);
  o.min_group = p.vm["min-group"].as<int>();
  o.seed = p.vm["seed"].as<uint64_t>();
  const TraceStats s = compute_stats(p.vm["file"].as<std::string>(), o);
  if (p.vm.count("json")) {
    std::cout << stats_to_json(s).dump(2) << "\n";
  } else {
    std::cout << stats_to_text(s);
  }
  return 0;
}

int trace_convert(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("from", po::value<std::string>()->required(),
                     "source format: deepseek-csv, llama4-json, mixtral-jsonl or mixtral-raw")(
      "input", po::value<std::vector<std::string>>()->required(), "input files (positional)")(
      "output,o", po::value<std::string>()->required(), "output trace (.jsonl: JSON lines, else binary)")(
      "regroup-decode", po::value<int>()->default_value(1), "decode steps of N requests form one batch")(
      "experts", po::value<int>()->default_value(0), "expert count (default: the source model's)")(
      "model", po::value<std::string>()->default_value(""), "header: model name")(
      "source", po::value<std::string>()->default_value(""), "header: source")(
      "dataset", po::value<std::string>()->default_value(""), "header: dataset")(
      "licence", po::value<std::string>()->default_value(""), "header: licence");
  po::positional_options_description pos;
  pos.add("input", -1);
  auto p = parse(args, opts, pos, "usage: lina trace convert --from FORMAT INPUT... -o OUT [--regroup-decode N]");
  if (p.help) return 0;
  ConvertOptions o;
  o.from = p.vm["from"].as<std::string>();
  o.inputs = p.vm["input"].as<std::vector<std::string>>();
  o.output = p.vm["output"].as<std::string>();
  o.regroup_decode = p.vm["regroup-decode"].as<int>();
  o.experts = p.vm["experts"].as<int>();
  o.model = p.vm["model"].as<std::string>();
  o.source = p.vm["source"].as<std::string>();
  o.dataset = p.vm["dataset"].as<std::string>();
  o.licence = p.vm["licence"].as<std::string>();
  const ConvertSummary s = convert(o);
  for (const auto& n : s.notes) spdlog::debug("{}", n);
  std::cout << fmt::format("{}: {} requests -> {} batches, {} tokens, {} unrecorded token-layer choices\n", o.output,
                           s.requests, s.batches, s.tokens, s.unrecorded);
  return 0;
}

int trace_counts(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("file", po::value<std::string>()->required(), "routing trace")(
      "output,o", po::value<std::string>()->required(), "counts trace to write");
  po::positional_options_description pos;
  pos.add("file", 1);
  auto p = parse(args, opts, pos, "usage: lina trace counts FILE -o OUT");
  if (p.help) return 0;
  TraceReader r(p.vm["file"].as<std::string>());
  TraceHeader h = r.header();
  h.kind = TraceKind::kCounts;
  h.has_weights = false;
  TraceWriter w(p.vm["output"].as<std::string>(), h);
  LayerCounts c;
  while (r.next(c)) w.write(c);
  w.close();
  std::cout << fmt::format("{}: {} batches\n", p.vm["output"].as<std::string>(), w.header().batches);
  return 0;
}

int trace_synth(const std::vector<std::string>& args) {
  SynthParams d;
  po::options_description opts("options");
  opts.add_options()("output,o", po::value<std::string>()->required(), "trace to write (.jsonl: JSON lines)")(
      "experts", po::value<int>()->default_value(d.experts), "experts per MoE layer")(
      "top-k", po::value<int>()->default_value(d.top_k), "choices per token")(
      "layers", po::value<int>()->default_value(d.layers), "MoE layers")(
      "batches", po::value<uint64_t>()->default_value(d.batches), "batches")(
      "tokens", po::value<int>()->default_value(d.tokens), "tokens per batch")(
      "zipf", po::value<double>()->default_value(d.zipf), "popularity skew: Zipf exponent over each layer's ranking")(
      "rho", po::value<double>()->default_value(d.rho), "inter-layer correlation: probability to follow the group")(
      "seed", po::value<uint64_t>()->default_value(d.seed), "seed (same seed: byte-identical file)")(
      "weights", "store random descending gate weights")("model", po::value<std::string>()->default_value(d.model),
                                                         "header: model name");
  po::positional_options_description pos;
  auto p = parse(args, opts, pos, "usage: lina trace synth -o OUT [options]");
  if (p.help) return 0;
  SynthParams s;
  s.experts = p.vm["experts"].as<int>();
  s.top_k = p.vm["top-k"].as<int>();
  s.layers = p.vm["layers"].as<int>();
  s.batches = p.vm["batches"].as<uint64_t>();
  s.tokens = p.vm["tokens"].as<int>();
  s.zipf = p.vm["zipf"].as<double>();
  s.rho = p.vm["rho"].as<double>();
  s.seed = p.vm["seed"].as<uint64_t>();
  s.weights = p.vm.count("weights") > 0;
  s.model = p.vm["model"].as<std::string>();
  const std::string out = p.vm["output"].as<std::string>();
  const uint64_t tokens = write_synth(out, s);
  std::cout << fmt::format("{}: {} batches, {} tokens\n", out, s.batches, tokens);
  return 0;
}

int trace_fit(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("file", po::value<std::string>()->required(), "trace to match")("json", "print JSON")(
      "exclude-layer", po::value<std::vector<int>>()->composing(), "leave out this model layer id (repeatable)")(
      "batches", po::value<std::string>()->default_value("all"), "which batches: all, prefill or decode");
  po::positional_options_description pos;
  pos.add("file", 1);
  auto p = parse(args, opts, pos, "usage: lina trace fit FILE [--json] [--exclude-layer L]...");
  if (p.help) return 0;
  StatsOptions o = stats_selection(p.vm);
  const TraceStats s = compute_stats(p.vm["file"].as<std::string>(), o);
  const FitResult f = fit_synth(s);
  if (p.vm.count("json")) {
    nlohmann::ordered_json j;
    j["params"] = f.params.to_json();
    j["mode"] = f.mode;
    j["target_skew_max_over_mean"] = f.target_skew;
    j["fitted_skew_max_over_mean"] = f.fitted_skew;
    j["target_same_path_mean"] = std::isfinite(f.target_same_path) ? nlohmann::ordered_json(f.target_same_path)
                                                                   : nlohmann::ordered_json(nullptr);
    j["fitted_same_path_mean"] = std::isfinite(f.fitted_same_path) ? nlohmann::ordered_json(f.fitted_same_path)
                                                                   : nlohmann::ordered_json(nullptr);
    j["command"] = f.params.command_line() + " -o OUT";
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << fmt::format("zipf {:.4f}: skew max/mean {:.3f} (trace {:.3f})\n", f.params.zipf, f.fitted_skew,
                             f.target_skew);
    std::cout << fmt::format("rho  {:.4f}: same path ({}) {:.3f} (trace {:.3f})\n", f.params.rho, f.mode,
                             f.fitted_same_path, f.target_same_path);
    std::cout << f.params.command_line() << " -o OUT\n";
  }
  return 0;
}

int trace_split(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("file", po::value<std::string>()->required(), "trace to split")(
      "profile-out", po::value<std::string>()->required(), "profiling part")(
      "eval-out", po::value<std::string>()->required(), "evaluation part")(
      "profile-fraction", po::value<double>()->default_value(0.5), "share of the batches used for profiling")(
      "shuffle", "choose the profiling batches at random (default: the first ones)")(
      "seed", po::value<uint64_t>()->default_value(1), "seed of --shuffle");
  po::positional_options_description pos;
  pos.add("file", 1);
  auto p = parse(args, opts, pos, "usage: lina trace split FILE --profile-out A --eval-out B [options]");
  if (p.help) return 0;
  const auto [a, b] = split_trace(p.vm["file"].as<std::string>(), p.vm["profile-out"].as<std::string>(),
                                  p.vm["eval-out"].as<std::string>(), p.vm["profile-fraction"].as<double>(),
                                  p.vm.count("shuffle") > 0, p.vm["seed"].as<uint64_t>());
  std::cout << fmt::format("{}: {} batches, {}: {} batches\n", p.vm["profile-out"].as<std::string>(), a,
                           p.vm["eval-out"].as<std::string>(), b);
  return 0;
}

int trace_estimate(const std::vector<std::string>& args) {
  po::options_description opts("options");
  opts.add_options()("profile", po::value<std::string>()->required(), "trace the lookup tables are built from")(
      "eval", po::value<std::string>()->required(), "trace the estimate is evaluated on")(
      "path-length", po::value<std::vector<int>>()->composing(), "path length L (repeatable; default 1, 3 and 6)")(
      "json", "print JSON");
  po::positional_options_description pos;
  auto p = parse(args, opts, pos, "usage: lina trace estimate --profile FILE --eval FILE [--path-length L]...");
  if (p.help) return 0;
  std::vector<int> ls = {1, 3, 6};
  if (p.vm.count("path-length")) ls = p.vm["path-length"].as<std::vector<int>>();
  const auto r = evaluate_estimator(p.vm["profile"].as<std::string>(), p.vm["eval"].as<std::string>(), ls);
  if (p.vm.count("json")) {
    std::cout << estimate_to_json(r).dump(2) << "\n";
  } else {
    std::cout << estimate_to_text(r);
  }
  return 0;
}

}  // namespace

int cmd_trace(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? kInputErrorExit : 0;
  }
  const std::string sub = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "info") return trace_info(rest);
  if (sub == "stats") return trace_stats(rest);
  if (sub == "convert") return trace_convert(rest);
  if (sub == "counts") return trace_counts(rest);
  if (sub == "synth") return trace_synth(rest);
  if (sub == "fit") return trace_fit(rest);
  if (sub == "split") return trace_split(rest);
  if (sub == "estimate") return trace_estimate(rest);
  std::fprintf(stderr, "lina trace: unknown subcommand '%s'\n%s", sub.c_str(), kUsage);
  return kInputErrorExit;
}

}  // namespace lina::cli

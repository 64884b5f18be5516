// `lina run SPEC [--set k=v]... [-o DIR] [-j N] [--no-plot] [--no-timeline]`: runs every sweep point and policy of an
// experiment, prints the comparison table and writes results.json, results.csv, Perfetto timelines and plots.
//
// Each finished point is saved at once under DIR/points/ (atomically); a rerun over the same folder loads the
// points whose key (sweep values) and spec digest match instead of recomputing them, so an interrupted sweep loses
// nothing. Points run in parallel on -j threads; results do not depend on -j.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <boost/program_options.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cli/commands.hpp"
#include "cli/report.hpp"
#include "sched/atomic_file.hpp"
#include "sched/error.hpp"
#include "sched/experiment_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/point_spec.hpp"
#include "sched/version.hpp"
#include "sim/inference_sim.hpp"
#include "sim/training_sim.hpp"

namespace lina::cli {
namespace {

namespace fs = std::filesystem;

struct Options {
  std::string spec;
  std::vector<std::string> sets;
  std::string out;
  std::string calibration;
  int jobs = 1;
  bool plot = true;
  bool timeline = true;
};

// Runs one point: every policy in spec order.
PointResult run_point(const ExperimentSpec& e, const SweepPoint& sp, const std::string& out_dir, bool timelines) {
  nlohmann::json doc = e.point_document(sp);
  PointSpec ps = load_point(e, doc);
  const ModelSpec& model = ps.model;
  PointResult pr;
  pr.index = sp.index;
  pr.key = sp.key();
  for (const auto& [k, v] : sp.params) pr.params[k] = v;
  std::vector<sim::RunResult> runs;
  for (const auto& pol : ps.policies) {
    // Link utilisation is recorded only for the point whose timelines are written (it can be large).
    sim::RunResult r;
    if (ps.mode == "inference") {
      sim::InferenceInput in{ps.cluster, model, ps.workload, pol, ps.seed, timelines, {}, {}};
      in.share_batches = ps.policies.size() > 1;  // the point's policies replay the same batches
      r = sim::run_inference(in);
    } else {
      r = sim::run_training(sim::TrainingInput{ps.cluster, model, ps.workload, pol, ps.seed, timelines});
    }
    PolicyMetrics pm{pol.label, pol.name, r.metrics, r.notes};
    pr.policies.push_back(std::move(pm));
    if (timelines) {
      write_chrome_trace(r.plan, r.timeline, ps.cluster.gpus_per_node,
                         (fs::path(out_dir) / fmt::format("timeline-{}.json", pol.label)).string());
      if (!r.layers_csv.empty()) {
        write_file_atomic((fs::path(out_dir) / fmt::format("layers-{}.csv", pol.label)).string(), r.layers_csv);
      }
    }
    if (ps.mode == "training") runs.push_back(std::move(r));
  }
  // With the ideal bound in the comparison, each other policy gets the slowdown of its backward all-to-alls
  // against it (the paper's Figure 3), where both ran the same plan structure.
  for (size_t ideal = 0; ideal < runs.size(); ++ideal) {
    if (ps.policies[ideal].name != "ideal") continue;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (i == ideal) continue;
      const auto [s, c] = sim::a2a_bwd_slowdowns(runs[i], runs[ideal]);
      if (s.empty()) continue;
      auto& m = pr.policies[i].metrics;
      m["a2a_bwd_slowdown_p50"] = s[(s.size() - 1) / 2];
      m["a2a_bwd_slowdown_max"] = s.back();
      // Figure 3 proper: the all-to-alls that met a concurrent allreduce, and how many of them did.
      m["a2a_bwd_contended_share"] = static_cast<double>(c.size()) / static_cast<double>(s.size());
      if (!c.empty()) {
        m["a2a_bwd_contended_slowdown_p50"] = c[(c.size() - 1) / 2];
        m["a2a_bwd_contended_slowdown_max"] = c.back();
      }
    }
    break;
  }
  add_speedups(pr);
  return pr;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int cmd_run(const std::vector<std::string>& args) {
  namespace po = boost::program_options;
  Options o;
  po::options_description opts("lina run SPEC [options]");
  opts.add_options()("help,h", "show this help")("set,s", po::value(&o.sets)->composing(),
                                                 "override a parameter: PATH=VALUE (repeatable; see 'lina params')")(
      "output,o", po::value(&o.out), "output folder (default: the spec's \"output\", else results/<name>)")(
      "jobs,j", po::value(&o.jobs)->default_value(1), "sweep points run in parallel")(
      "calibration", po::value(&o.calibration),
      "calibration file from 'lina hw calibrate' (docs/calibration.md); same as --set cluster.calibration=FILE")(
      "no-plot", "do not draw plots")(
      "no-timeline",
      "do not write timeline-*.json and layers-*.csv (at thousands of GPUs they take hundreds of MB and most of the "
      "run's time)")("spec", po::value(&o.spec), "experiment spec (JSON)");
  po::positional_options_description pos;
  pos.add("spec", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::ostringstream h;
    h << opts;
    std::printf("%s", h.str().c_str());
    return 0;
  }
  if (o.spec.empty()) throw InputError("missing experiment spec (usage: lina run SPEC)");
  if (o.jobs < 1) throw InputError("--jobs must be at least 1");
  o.plot = !vm.count("no-plot");
  o.timeline = !vm.count("no-timeline");

  std::vector<Override> overrides;
  for (const auto& s : o.sets) overrides.push_back(parse_override(s));
  if (!o.calibration.empty()) {
    if (!fs::exists(o.calibration)) throw InputError(format_location(o.calibration, "", "calibration file not found"));
    overrides.push_back(
        Override{"cluster.calibration", fs::absolute(o.calibration).string(), "--calibration " + o.calibration});
  }
  ExperimentSpec e = load_experiment(o.spec, overrides);
  std::string out = o.out.empty() ? e.output : o.out;
  // Cached points are reused only for the same resolved spec, calibration contents and lina build (a new version
  // or commit may change any result).
  std::string digest_text = e.document.dump() + std::string(version()) + std::string(git_commit());
  if (e.document.contains("cluster") && e.document["cluster"].is_object()) {
    std::string cal = e.document["cluster"].value("calibration", "");
    if (!cal.empty()) digest_text += read_file(cal);
  }
  const std::string digest = std::to_string(std::hash<std::string>{}(digest_text));
  auto points = e.points();
  std::vector<PointResult> results(points.size());
  std::vector<uint8_t> have(points.size(), 0);
  for (size_t i = 0; i < points.size(); ++i) {
    fs::path f = fs::path(out) / "points" / fmt::format("{}.json", i);
    if (!fs::exists(f)) continue;
    auto j = nlohmann::json::parse(read_file(f.string()), nullptr, false);
    if (j.is_discarded() || j.value("key", "") != points[i].key() || j.value("spec_digest", "") != digest) continue;
    results[i] = point_from_json(j);
    have[i] = 1;
  }
  size_t cached = static_cast<size_t>(std::count(have.begin(), have.end(), 1));
  if (cached > 0) spdlog::info("{} of {} points already done in {}: not recomputed", cached, points.size(), out);

  std::atomic<size_t> next{0}, done{cached};
  std::mutex error_mutex;
  std::exception_ptr error;
  const bool tty = ::isatty(2);
  auto worker = [&] {
    while (true) {
      size_t i = next++;
      if (i >= points.size()) return;
      if (have[i]) continue;
      try {
        PointResult pr = run_point(e, points[i], out, i == 0 && o.timeline);
        nlohmann::json j = point_to_json(pr);
        j["spec_digest"] = digest;
        write_file_atomic((fs::path(out) / "points" / fmt::format("{}.json", i)).string(), j.dump(2) + "\n");
        results[i] = std::move(pr);
        size_t d = ++done;
        if (tty) std::fprintf(stderr, "\rlina run: %zu/%zu points", d, points.size());
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = points.size();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < std::min<int>(o.jobs, static_cast<int>(points.size())); ++t) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  if (tty && points.size() > cached) std::fprintf(stderr, "\n");
  if (error) std::rethrow_exception(error);
  // What did not fit in GPU memory (sim/training_sim: notes["memory"]), once per distinct note, naming where.
  std::map<std::string, std::string> memory;
  for (const auto& r : results) {
    for (const auto& pm : r.policies) {
      auto it = pm.notes.find("memory");
      if (it == pm.notes.end() || memory.count(it->second)) continue;
      std::string where = pm.policy;
      if (!r.params.empty()) where = point_label(r.params) + ", " + where;
      memory.emplace(it->second, where);
    }
  }
  for (const auto& [note, where] : memory) spdlog::warn("{}: {}", where, note);
  // Inference with a capacity factor drops tokens a server would not: say how many, once.
  for (const auto& r : results) {
    if (r.policies.empty()) continue;
    const auto& m = r.policies.front().metrics;
    auto it = m.find("dropped_token_share");
    if (it == m.end() || !(it->second > 0)) continue;
    spdlog::warn(
        "{}the gate dropped {:.1f}% of the routed tokens over the experts' capacity (model.capacity_factor); "
        "serving is usually dropless: model.capacity_factor = 0",
        r.params.empty() ? "" : point_label(r.params) + ": ", it->second * 100);
    break;
  }

  nlohmann::json doc = {{"schema", kResultsSchema},
                        {"experiment", e.name},
                        {"description", e.description},
                        {"mode", e.mode},
                        {"spec", e.file},
                        {"lina_version", std::string(version())},
                        {"git_commit", std::string(git_commit())},
                        {"seed", e.seed},
                        {"points", nlohmann::json::array()}};
  for (const auto& r : results) doc["points"].push_back(point_to_json(r));
  auto refs = compare_references(e.references, results);
  if (!refs.empty()) doc["references"] = references_json(refs);
  write_file_atomic((fs::path(out) / "results.json").string(), doc.dump(2) + "\n");
  write_file_atomic((fs::path(out) / "results.csv").string(), results_csv(results));

  std::string table =
      fmt::format("{} ({} mode, {} point{})\n", e.name, e.mode, points.size(), points.size() == 1 ? "" : "s");
  for (const auto& r : results) {
    if (points.size() > 1) table += fmt::format("\npoint {}: {}\n", r.index, point_label(r.params));
    table += results_table(e.mode, r);
  }
  if (!refs.empty())
    table += "\nagainst published numbers (simulated: mean over the matching points)\n" + references_table(refs);
  std::fputs(table.c_str(), stdout);
  if (o.timeline) {
    std::printf("\nwrote %s/results.json, results.csv and timeline-*.json (open in ui.perfetto.dev)\n", out.c_str());
  } else {
    std::printf("\nwrote %s/results.json and results.csv\n", out.c_str());
  }

  if (o.plot) {
    // Plots come from plots/plot_results.py with Debian's matplotlib (/usr/bin/python3); a missing matplotlib is
    // a warning, not a failure: the results are already written.
    fs::path script = fs::path(LINA_SOURCE_DIR) / "plots" / "plot_results.py";
    std::string cmd = fmt::format("/usr/bin/python3 '{}' '{}' >&2", script.string(), out);
    std::fflush(stdout);  // the table first, then the plotter's lines, also when stdout is a pipe
    if (!fs::exists(script) || std::system(cmd.c_str()) != 0) {
      spdlog::warn("plots not drawn (needs /usr/bin/python3 with matplotlib: scripts/setup.sh installs it)");
    } else {
      std::printf("plots in %s/\n", out.c_str());
    }
  }
  return 0;
}

}  // namespace lina::cli

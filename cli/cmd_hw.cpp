// `lina hw info|calibrate|run|validate`: the hardware backend (DESIGN.md 7, docs/hardware.md).
//
//   lina hw info                                  devices, memory, links, driver/CUDA/cuBLAS/NCCL versions
//   lina hw calibrate [-o FILE] [--quick]         microbenchmarks -> FILE (lina.calibration/1) and
//                                                 FILE.measurements.json (lina.measurements/1)
//   lina hw calibrate --from MEAS.json -o FILE    fit a calibration from recorded measurements (no GPU needed)
//   lina hw run SPEC [--set k=v] [-o DIR]         the spec's first point, each policy, on the local GPUs (training:
//                                                 the spec's steps; inference: its batches, the placements decided
//                                                 online by the same scheduler objects as in the simulator)
//   lina hw validate SPEC --calibration FILE      as run, plus the simulator with the calibration: per task kind and
//                                                 end to end, measured vs predicted and the relative error
//
// The spec's cluster is scaled to the GPUs present: one node of that many GPUs of the detected GPU type (the GPU
// preset matching the device name, or --gpu), with the spec's link parameters replaced by the calibration's.
#include <fmt/format.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "cli/commands.hpp"
#include "sched/error.hpp"

#ifdef LINA_HAVE_CUDA
#include <filesystem>
#include <memory>

#include "cli/report.hpp"
#include "hw/calibration_fit.hpp"
#include "hw/cuda_backend.hpp"
#include "hw/device.hpp"
#include "hw/executor.hpp"
#include "hw/microbench.hpp"
#include "hw/validation.hpp"
#include "sched/atomic_file.hpp"
#include "sched/experiment_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/point_spec.hpp"
#include "sched/training_plan.hpp"
#include "sched/training_scheduler.hpp"
#include "sim/collective_backend.hpp"
#include "sim/compute.hpp"
#include "sim/executor.hpp"
#include "sim/inference_sim.hpp"
#include "sim/training_sim.hpp"
#endif

namespace lina::cli {
namespace {

namespace po = boost::program_options;

constexpr const char* kUsage =
    "usage: lina hw info\n"
    "       lina hw calibrate [-o FILE] [--quick] [--gpu NAME|FILE] [--collective-alpha SECONDS]\n"
    "       lina hw calibrate --from MEASUREMENTS.json [-o FILE] [--collective-alpha SECONDS]\n"
    "       lina hw run SPEC [--set PATH=VALUE]... [-o DIR] [--gpu NAME|FILE]\n"
    "       lina hw validate SPEC --calibration FILE [--set PATH=VALUE]... [-o DIR] [--gpu NAME|FILE]\n"
    "Runs lina's plans on the local GPUs with CUDA, cuBLAS and NCCL (docs/hardware.md).\n";

#ifdef LINA_HAVE_CUDA

struct Options {
  std::string spec, out, gpu, from, calibration;
  std::vector<std::string> sets;
  bool quick = false;
  double collective_alpha = 0;
};

po::variables_map parse(const std::vector<std::string>& args, Options& o, const std::string& title) {
  po::options_description opts(title);
  opts.add_options()("help,h", "show this help")("output,o", po::value(&o.out), "output file or folder")(
      "gpu", po::value(&o.gpu), "GPU preset name or file (default: detected from the device name)")(
      "quick", "fewer shapes and sizes (smoke runs)")("from", po::value(&o.from),
                                                      "fit from recorded measurements instead of measuring")(
      "collective-alpha", po::value(&o.collective_alpha),
      "the cluster's collective_alpha in seconds, subtracted from the fitted per-step latency")(
      "calibration", po::value(&o.calibration), "calibration file (validate)")(
      "set,s", po::value(&o.sets)->composing(), "override a spec parameter: PATH=VALUE")("spec", po::value(&o.spec),
                                                                                         "experiment spec");
  po::positional_options_description pos;
  pos.add("spec", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  po::notify(vm);
  o.quick = vm.count("quick") > 0;
  if (vm.count("help")) {
    std::ostringstream h;
    h << opts;
    std::printf("%s%s", kUsage, h.str().c_str());
  }
  return vm;
}

GpuSpec detect_gpu(const std::string& override_name) {
  if (!override_name.empty()) return load_gpu(nlohmann::json(override_name), "--gpu", "");
  const auto si = hw::system_info();
  if (si.devices.empty()) throw InputError("no GPU: " + si.query.reason);
  const std::string preset = hw::gpu_preset_for(si.devices[0].name, si.devices[0].memory_bytes);
  if (preset.empty()) {
    throw InputError(
        fmt::format("no GPU preset matches '{}': pass --gpu NAME|FILE (experiments/gpus/)", si.devices[0].name));
  }
  return load_gpu(nlohmann::json(preset), "", "");
}

int info() {
  const auto si = hw::system_info();
  std::printf("CUDA runtime %s, driver %s, cuBLAS %d.%d.%d, NCCL %d.%d.%d\n",
              hw::version_text(si.runtime_version).c_str(),
              si.driver_version ? hw::version_text(si.driver_version).c_str() : "none", si.cublas_version / 10000,
              si.cublas_version / 100 % 100, si.cublas_version % 100, si.nccl_version / 10000,
              si.nccl_version / 100 % 100, si.nccl_version % 100);
  if (si.devices.empty()) {
    std::printf("no GPU: %s\n", si.query.reason.c_str());
    return 1;
  }
  for (const auto& d : si.devices) {
    const std::string preset = hw::gpu_preset_for(d.name, d.memory_bytes);
    std::printf("GPU %d: %s, %.1f GB, compute capability %d.%d, %d SMs, PCI %s, preset %s\n", d.index, d.name.c_str(),
                d.memory_bytes / 1e9, d.cc_major, d.cc_minor, d.sms, d.pci_bus.c_str(),
                preset.empty() ? "(none: use --gpu)" : preset.c_str());
  }
  if (si.devices.size() > 1) {
    std::printf("links (peer access):\n");
    for (size_t a = 0; a < si.links.size(); ++a) {
      std::printf("  GPU %zu:", a);
      for (const auto& l : si.links[a]) std::printf(" %7s", l.c_str());
      std::printf("\n");
    }
  }
  return 0;
}

int calibrate(const std::vector<std::string>& args) {
  Options o;
  auto vm = parse(args, o, "lina hw calibrate options");
  if (vm.count("help")) return 0;
  const std::string out = o.out.empty() ? "calibration.json" : o.out;
  hw::Measurements m;
  if (!o.from.empty()) {
    m = hw::load_measurements(o.from);
  } else {
    const GpuSpec gpu = detect_gpu(o.gpu);
    hw::MicrobenchOptions mo;
    mo.quick = o.quick;
    mo.gpu = gpu.name;
    mo.peak_bf16_flops = gpu.peak_fp16_flops;
    std::fprintf(stderr, "lina hw calibrate: measuring on %s...\n", gpu.name.c_str());
    m = hw::run_microbenchmarks(mo);
    write_file_atomic(out + ".measurements.json", hw::to_json(m).dump(2) + "\n");
  }
  hw::FitOptions fo;
  fo.collective_alpha_s = o.collective_alpha;
  const nlohmann::json cal = hw::fit_calibration(m, fo);
  sim::calibration_from_json(cal, out);  // the simulator must accept what we write
  write_file_atomic(out, cal.dump(2) + "\n");
  std::printf("launch overhead %.2f us; hbm %.0f GB/s\n", m.launch_overhead_s * 1e6,
              cal["gpu"].value("hbm_bandwidth", 0.0) / 1e9);
  for (const auto& k : m.kernels) {
    if (k.op != OpKind::kGemm) continue;
    const double t = hw::median(k.seconds);
    std::printf("gemm %6lldx%6lldx%5lld  %8.3f ms  %6.1f%% of peak\n", static_cast<long long>(k.shape.m),
                static_cast<long long>(k.shape.n), static_cast<long long>(k.shape.k), t * 1e3,
                100 * k.flops / (m.peak_bf16_flops * t));
  }
  if (cal.contains("links")) {
    for (auto it = cal["links"].begin(); it != cal["links"].end(); ++it) {
      std::printf("%s: alpha %.2f us, bandwidth %.1f GB/s\n", it.key().c_str(), it.value()["alpha"].get<double>() * 1e6,
                  it.value()["bandwidth"].get<double>() / 1e9);
    }
  }
  if (cal.contains("interference")) std::printf("interference %.3f\n", cal["interference"].get<double>());
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

struct Experiment {
  ExperimentSpec spec;
  PointSpec point;
  ModelSpec model;
};

// The spec is read (and checked) before the devices are asked for, so that a bad spec is reported as such on any
// machine, with or without GPUs.
ExperimentSpec load_spec(const Options& o) {
  if (o.spec.empty()) throw InputError("missing experiment spec (usage: lina hw run SPEC)");
  std::vector<Override> overrides;
  for (const auto& s : o.sets) overrides.push_back(parse_override(s));
  return load_experiment(o.spec, overrides);
}

Experiment load(ExperimentSpec spec, int gpus, const GpuSpec& gpu) {
  Experiment e{std::move(spec), {}, {}};
  e.point = load_point(e.spec, e.spec.point_document(e.spec.points().front()));
  e.model = e.point.model;
  e.point.cluster.nodes = 1;
  e.point.cluster.gpus_per_node = gpus;
  e.point.cluster.gpu = gpu;
  return e;
}

Plan plan_for(const Experiment& e, const PolicySpec& pol) {
  int degree = pol.pipeline_degree;
  if (pol.name == "lina" && degree == 0) degree = lina_pipeline_degree(e.model, e.point.workload, pol.micro_op_bytes);
  int packing = 0;
  if (pol.packing != "auto" && pol.packing != "off") packing = std::stoi(pol.packing);
  TrainingPlanInput in;
  in.model = &e.model;
  in.cluster = &e.point.cluster;
  in.workload = &e.point.workload;
  in.policy = &pol;
  in.layout = make_layout(e.model, e.point.cluster, packing, degree, pol.zero_stage);
  in.steps = static_cast<int>(e.point.workload.steps);
  return build_training_plan(in);
}

Timeline run_on_gpus(const Plan& plan, const Experiment& e, RuntimeScheduler& sched) {
  hw::CudaBackend backend;
  const auto [least, greatest] = hw::stream_priority_range();
  hw::LoweringOptions lo;
  lo.hidden = e.model.hidden;
  lo.least_priority = least;
  lo.greatest_priority = greatest;
  const hw::LoweredPlan lowered = hw::lower_plan(plan, lo);
  hw::HwExecutor exec(backend);
  return exec.run(plan, lowered, sched);
}

Timeline run_on_gpus(const Plan& plan, const Experiment& e, const PolicySpec& policy) {
  auto sched = make_training_scheduler(policy);
  return run_on_gpus(plan, e, *sched);
}

// The simulator on the same plan, with the calibration (compute tables, links, launch overhead, interference).
Timeline simulate(const Plan& plan, const Experiment& e, const PolicySpec& policy, const sim::Calibration& cal) {
  ClusterSpec cluster = e.point.cluster;
  sim::apply_calibration(cluster, cal);
  sim::Engine engine;
  sim::Topology topology(cluster);
  sim::Network network(engine, topology);
  sim::NetworkCollectives collectives(engine, network, topology, cluster);
  sim::ComputeModel compute(cluster.gpu, cal);
  sim::ExecutorOptions opts;
  opts.compute_duration = [&](const Task& t) { return compute.task_duration(t, e.model.compute_dtype); };
  sim::Executor exec(engine, collectives, opts);
  auto sched = make_training_scheduler(policy);
  return exec.run(plan, *sched);
}

const std::vector<std::string> kEndToEnd = {"step_time_s", "a2a_time_s", "allreduce_time_s", "exposed_comm_s"};
const std::vector<std::string> kInferenceEndToEnd = {"latency_p50_s", "latency_p95_s", "a2a_mean_time_s",
                                                     "moe_layer_mean_s"};

// What `lina hw run|validate` collects per policy, written once at the end (training and inference alike).
struct HwReport {
  PointResult measured, predicted;
  std::string tables;
  nlohmann::json validation = nlohmann::json::array();

  void add_measured(const PolicySpec& pol, std::map<std::string, double> metrics) {
    measured.policies.push_back(PolicyMetrics{pol.label, pol.name, std::move(metrics), {}});
  }
  // `scope` says which tasks the per-kind rows cover (the last step, the first batch).
  void add_validation(const PolicySpec& pol, std::map<std::string, double> metrics, const std::string& scope,
                      const std::vector<hw::ErrorRow>& rows, const std::vector<hw::ErrorRow>& e2e) {
    predicted.policies.push_back(PolicyMetrics{pol.label, pol.name, std::move(metrics), {}});
    tables += fmt::format("\n{} (per task kind: {})\n{}{}", pol.label, scope, hw::error_table(rows),
                          hw::error_table(e2e).substr(hw::error_table({}).size()));
    nlohmann::json j = {{"policy", pol.label}, {"rows", nlohmann::json::array()}};
    for (const auto& r : rows) {
      j["rows"].push_back({{"kind", r.what},
                           {"tasks", r.tasks},
                           {"measured_s", r.measured_s},
                           {"predicted_s", r.predicted_s},
                           {"rel_error", r.rel_error()}});
    }
    for (const auto& r : e2e) {
      j["rows"].push_back({{"metric", r.what},
                           {"measured_s", r.measured_s},
                           {"predicted_s", r.predicted_s},
                           {"rel_error", r.rel_error()}});
    }
    validation.push_back(j);
  }
  int finish(const Options& o, const Experiment& e, int gpus, const GpuSpec& gpu, const std::string& out,
             bool validate) {
    namespace fs = std::filesystem;
    add_speedups(measured);
    nlohmann::json doc = {{"schema", kResultsSchema},
                          {"experiment", e.spec.name},
                          {"mode", e.spec.mode},
                          {"executor", "hw"},
                          {"gpus", gpus},
                          {"gpu", gpu.name},
                          {"points", nlohmann::json::array({point_to_json(measured)})}};
    if (validate) {
      add_speedups(predicted);
      doc["simulated"] = point_to_json(predicted);
      doc["validation"] = validation;
      doc["calibration"] = o.calibration;
    }
    write_file_atomic((fs::path(out) / "results.json").string(), doc.dump(2) + "\n");
    std::printf("%s on %d x %s (measured)\n%s", e.spec.name.c_str(), gpus, gpu.name.c_str(),
                results_table(e.spec.mode, measured).c_str());
    if (validate) std::printf("\nmeasured vs simulated with %s%s", o.calibration.c_str(), tables.c_str());
    std::printf("\nwrote %s/results.json and timeline-*.json\n", out.c_str());
    return 0;
  }
};

std::string timeline_path(const std::string& out, const PolicySpec& pol, const char* where) {
  return (std::filesystem::path(out) / fmt::format("timeline-{}-{}.json", pol.label, where)).string();
}

// Inference on the GPUs: run_inference drives the batches, the inference scheduler decides each layer's placement
// from the gate's routing, and every batch's plan runs on the devices (InferenceInput::execute). Validation runs
// the same batches in the simulator with the calibration; the per-kind table compares the first batch's plan.
void run_inference_policies(const Options& o, const Experiment& e, bool validate, int gpus, const std::string& out,
                            HwReport& report) {
  for (const auto& pol : e.point.policies) {
    sim::InferenceInput in;
    in.cluster = e.point.cluster;
    in.model = e.model;
    in.workload = e.point.workload;
    in.policy = pol;
    in.seed = e.point.seed;
    std::fprintf(stderr, "lina hw: %s on %d GPU(s): %lld batches\n", pol.label.c_str(), gpus,
                 static_cast<long long>(in.workload.batches));
    sim::InferenceInput on_gpus = in;
    on_gpus.execute = [&](const Plan& plan, RuntimeScheduler& sched) { return run_on_gpus(plan, e, sched); };
    const sim::RunResult measured = sim::run_inference(on_gpus);
    write_chrome_trace(measured.plan, measured.timeline, gpus, timeline_path(out, pol, "gpu"));
    report.add_measured(pol, measured.metrics);
    if (!validate) continue;
    sim::InferenceInput simulated = in;
    simulated.cluster.calibration = std::filesystem::absolute(o.calibration).string();
    const sim::RunResult predicted = sim::run_inference(simulated);
    write_chrome_trace(predicted.plan, predicted.timeline, gpus, timeline_path(out, pol, "sim"));
    report.add_validation(pol, predicted.metrics, "first batch, summed over ranks",
                          hw::compare_by_kind(measured.plan, measured.timeline, predicted.timeline),
                          hw::compare_metrics(measured.metrics, predicted.metrics, kInferenceEndToEnd));
  }
}

void run_training_policies(const Experiment& e, const std::optional<sim::Calibration>& cal, int gpus,
                           const std::string& out, HwReport& report) {
  for (const auto& pol : e.point.policies) {
    const Plan plan = plan_for(e, pol);
    std::fprintf(stderr, "lina hw: %s on %d GPU(s): %zu tasks\n", pol.label.c_str(), gpus, plan.tasks.size());
    const Timeline measured = run_on_gpus(plan, e, pol);
    write_chrome_trace(plan, measured, gpus, timeline_path(out, pol, "gpu"));
    auto mm = sim::training_metrics(plan, measured);
    sim::add_throughput_metrics(mm, e.model, e.point.workload, e.point.cluster);
    report.add_measured(pol, mm);
    if (!cal) continue;
    const Timeline predicted = simulate(plan, e, pol, *cal);
    write_chrome_trace(plan, predicted, gpus, timeline_path(out, pol, "sim"));
    auto pm = sim::training_metrics(plan, predicted);
    sim::add_throughput_metrics(pm, e.model, e.point.workload, e.point.cluster);
    report.add_validation(pol, pm, "summed over ranks, last step", hw::compare_by_kind(plan, measured, predicted),
                          hw::compare_metrics(mm, pm, kEndToEnd));
  }
}

int run_or_validate(const std::vector<std::string>& args, bool validate) {
  Options o;
  auto vm = parse(args, o, validate ? "lina hw validate options" : "lina hw run options");
  if (vm.count("help")) return 0;
  if (validate && o.calibration.empty()) throw InputError("lina hw validate needs --calibration FILE");
  std::optional<sim::Calibration> cal;
  if (validate) cal = sim::load_calibration(o.calibration);
  ExperimentSpec spec = load_spec(o);
  const auto q = hw::query_devices();
  if (q.count == 0) throw InputError("no GPU: " + q.reason);
  GpuSpec gpu = detect_gpu(o.gpu);
  if (cal && !cal->gpu.empty() && cal->gpu != gpu.name) {
    throw InputError(fmt::format("{}: measured on '{}' but these GPUs are '{}'", o.calibration, cal->gpu, gpu.name));
  }
  Experiment e = load(std::move(spec), q.count, gpu);
  namespace fs = std::filesystem;
  const std::string out = o.out.empty() ? (fs::path("results") / ("hw-" + e.spec.name)).string() : o.out;
  HwReport report;
  if (e.spec.mode == "inference") {
    run_inference_policies(o, e, validate, q.count, out, report);
  } else {
    run_training_policies(e, cal, q.count, out, report);
  }
  return report.finish(o, e, q.count, gpu, out, validate);
}

#endif  // LINA_HAVE_CUDA

}  // namespace

int cmd_hw(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::printf("%s", kUsage);
    return args.empty() ? kInputErrorExit : 0;
  }
#ifdef LINA_HAVE_CUDA
  const std::string sub = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "info") return info();
  if (sub == "calibrate") return calibrate(rest);
  if (sub == "run") return run_or_validate(rest, false);
  if (sub == "validate") return run_or_validate(rest, true);
  throw InputError(fmt::format("unknown 'lina hw' command '{}' (info, calibrate, run, validate)", sub));
#else
  // `lina` itself never loads CUDA (cuBLAS, cuBLASLt and NCCL are about 200 MB of resident libraries and 0.1 s at
  // every start, for commands that never touch a GPU). A build with the backend puts `lina-hw`, the same program
  // with it, beside `lina`: the command is handed over to it.
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const std::filesystem::path hw = ec ? std::filesystem::path() : self.parent_path() / "lina-hw";
  if (!hw.empty() && std::filesystem::exists(hw, ec)) {
    std::vector<std::string> words = {hw.string(), "hw"};
    words.insert(words.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    std::fflush(nullptr);
    ::execv(hw.c_str(), argv.data());
    std::fprintf(stderr, "lina hw: cannot run %s: %s\n", hw.c_str(), std::strerror(errno));
    return 1;
  }
  std::fprintf(stderr,
               "lina hw: this build has no hardware backend (configure with -DLINA_CUDA=ON where the CUDA toolkit, "
               "cuBLAS and NCCL are installed; it builds lina-hw beside lina)\n");
  return 1;
#endif
}

}  // namespace lina::cli

#include "sim/training_sim.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>

#include "sched/error.hpp"
#include "sched/flops.hpp"
#include "sched/inference_plan.hpp"
#include "sched/training_scheduler.hpp"
#include "sim/collective_backend.hpp"
#include "sim/compute.hpp"
#include "sim/executor.hpp"
#include "sim/inference_sim.hpp"

namespace lina::sim {
namespace {

using Interval = std::pair<int64_t, int64_t>;

// Sorts and merges intervals in place; returns the total covered length.
int64_t merge(std::vector<Interval>& v) {
  std::sort(v.begin(), v.end());
  std::vector<Interval> out;
  for (const auto& iv : v) {
    if (iv.second <= iv.first) continue;
    if (!out.empty() && iv.first <= out.back().second) {
      out.back().second = std::max(out.back().second, iv.second);
    } else {
      out.push_back(iv);
    }
  }
  v.swap(out);
  int64_t total = 0;
  for (const auto& iv : v) total += iv.second - iv.first;
  return total;
}

// Length of the intersection of two merged interval lists.
int64_t overlap(const std::vector<Interval>& a, const std::vector<Interval>& b) {
  int64_t total = 0;
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    int64_t lo = std::max(a[i].first, b[j].first), hi = std::min(a[i].second, b[j].second);
    if (hi > lo) total += hi - lo;
    if (a[i].second < b[j].second) {
      ++i;
    } else {
      ++j;
    }
  }
  return total;
}

struct Simulated {
  Plan plan;
  Timeline timeline;
  std::map<std::string, double> metrics;
};

// Per MoE layer, tokens from rank r to expert e ([r * E + e]) for one training step: empty when balanced (training
// uses a load-balancing loss), else the first evaluated batch of the workload's routing (synthetic or a trace). The
// batch's tokens are split evenly over the ranks in order (token t on rank t * N / tokens), and each rank's counts
// are scaled to its T * top_k choices, so a trace whose batches are smaller or larger than N * T tokens keeps its
// popularity shape and the workload keeps its size. The same routing serves every step.
std::vector<LayerRouting> training_routing(const TrainingInput& in) {
  const WorkloadSpec& w = in.workload;
  if (w.routing.kind == "balanced") return {};
  const int N = in.cluster.gpu_count(), E = in.model.experts, k = in.model.top_k;
  const int layers = in.model.moe_layer_count();
  WorkloadSpec whole = w;  // one batch of all ranks' tokens
  whole.batch_size = w.batch_size * N;
  whole.batches = 1;
  whole.routing.profile_batches = 1;
  RoutingSources src = make_routing_sources(whole, in.model, in.seed);
  BatchRouting b;
  if (!src.eval->next(b) || b.tokens <= 0) {
    throw InputError(fmt::format("workload.routing: the {} routing gave no batch for training", w.routing.kind));
  }
  std::vector<LayerRouting> out(static_cast<size_t>(layers), LayerRouting(static_cast<size_t>(N) * E, 0.0));
  for (int j = 0; j < layers && j < b.layers; ++j) {
    LayerRouting& r = out[static_cast<size_t>(j)];
    r = rank_expert_counts(b, j, E, N);  // the split inference uses too (sched/inference_plan.hpp)
    const double want = static_cast<double>(w.tokens_per_gpu()) * k;
    for (int rank = 0; rank < N; ++rank) {
      double sum = 0;
      for (int e = 0; e < E; ++e) sum += r[static_cast<size_t>(rank) * E + e];
      for (int e = 0; e < E; ++e) {
        double& c = r[static_cast<size_t>(rank) * E + e];
        c = sum > 0 ? c * want / sum : want / E;
      }
    }
  }
  return out;
}

Simulated simulate(const TrainingInput& in, const TrainingLayout& layout, const std::vector<LayerRouting>& routing) {
  TrainingPlanInput pin;
  pin.model = &in.model;
  pin.cluster = &in.cluster;
  pin.workload = &in.workload;
  pin.policy = &in.policy;
  pin.layout = layout;
  pin.steps = static_cast<int>(in.workload.steps);
  pin.routing = routing;
  Simulated s;
  s.plan = build_training_plan(pin);

  // A calibration measured on the cluster replaces datasheet numbers: links before the topology is built, compute
  // efficiencies in the compute model.
  auto [cluster, calibration] = calibrate_cluster(in.cluster);
  Engine engine;
  Topology topology(cluster);
  Network network(engine, topology);
  std::optional<Network> gradient_network;  // the ideal bound's own network for gradient synchronisation
  if (in.policy.name == "ideal") gradient_network.emplace(engine, topology);
  NetworkCollectives collectives = gradient_network
                                       ? NetworkCollectives(engine, network, *gradient_network, topology, cluster)
                                       : NetworkCollectives(engine, network, topology, cluster);
  ComputeModel compute(cluster.gpu, calibration);
  const std::string dtype = in.model.compute_dtype;
  ExecutorOptions opts;
  opts.compute_duration = [&](const Task& t) { return compute.task_duration(t, dtype); };
  std::vector<LinkSample> samples;
  if (in.record_links) {
    network.set_link_observer([&samples](Time t, LinkId l, double rate) {
      samples.push_back(LinkSample{t, static_cast<int>(l), rate});
    });
  }
  Executor exec(engine, collectives, opts);
  std::unique_ptr<RuntimeScheduler> sched = make_training_scheduler(in.policy);
  s.timeline = exec.run(s.plan, *sched);
  s.timeline.link_samples = std::move(samples);
  s.timeline.link_names.clear();
  for (size_t l = 0; l < topology.link_count(); ++l) {
    s.timeline.link_names.push_back(topology.link_name(static_cast<LinkId>(l)));
    s.timeline.link_capacity_bytes_per_s.push_back(topology.link_capacity(static_cast<LinkId>(l)));
  }
  s.metrics = training_metrics(s.plan, s.timeline);
  return s;
}

// Mean duration of the forward expert-compute chunks and of the forward all-to-all chunks (the packing
// controller's measurement, paper section 4.2).
std::pair<double, double> ffn_and_a2a_chunk_seconds(const Simulated& s) {
  double ffn = 0, a2a = 0;
  int nf = 0, na = 0;
  for (const auto& r : s.timeline.records) {
    if (r.task < 0) continue;
    const Task& t = s.plan.tasks[static_cast<size_t>(r.task)];
    if (t.phase != Phase::kForward) continue;
    double d = (r.end - r.start).seconds();
    if (t.role == Role::kExpert) {
      ffn += d;
      ++nf;
    } else if (t.kind == TaskKind::kComm && (t.role == Role::kDispatch || t.role == Role::kCombine)) {
      a2a += d;
      ++na;
    }
  }
  return {nf ? ffn / nf : 0, na ? a2a / na : 0};
}

}  // namespace

std::map<std::string, double> training_metrics(const Plan& plan, const Timeline& tl) {
  int last_step = 0;
  for (const auto& t : plan.tasks) last_step = std::max(last_step, t.step);
  const auto N = static_cast<size_t>(plan.ranks);
  std::vector<std::vector<Interval>> compute(N), a2a(N), a2a_fwd(N), a2a_bwd(N), ar(N), loads(N), comm(N);
  std::vector<int64_t> fwd_moe(N, 0), bwd_moe(N, 0);
  std::vector<std::map<int, Interval>> moe_fwd_span(N), moe_bwd_span(N);
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  for (const auto& r : tl.records) {
    if (r.task < 0) continue;
    const Task& t = plan.tasks[static_cast<size_t>(r.task)];
    if (t.step != last_step) continue;
    const auto rank = static_cast<size_t>(t.rank);
    Interval iv{r.start.ticks(), r.end.ticks()};
    lo = std::min(lo, iv.first);
    hi = std::max(hi, iv.second);
    if (t.kind == TaskKind::kCompute) compute[rank].push_back(iv);
    if (t.kind == TaskKind::kComm) {
      comm[rank].push_back(iv);
      CommKind k = plan.collectives[static_cast<size_t>(t.collective)].kind;
      if (k == CommKind::kAllToAll) {
        a2a[rank].push_back(iv);
        (t.phase == Phase::kForward ? a2a_fwd : a2a_bwd)[rank].push_back(iv);
      } else if (k == CommKind::kHostLoad) {
        loads[rank].push_back(iv);  // offloaded expert weights over PCIe: not gradient synchronisation
      } else {
        ar[rank].push_back(iv);
      }
    }
    // A MoE layer's span: from its gate (forward) or combine computation (backward) to its last all-to-all.
    bool moe_part =
        t.layer >= 0 && (t.role == Role::kExpert || t.role == Role::kDispatch || t.role == Role::kCombine ||
                         t.role == Role::kPreAllToAll || (t.kind == TaskKind::kCompute && t.op == OpKind::kGate));
    if (moe_part) {
      auto& spans = (t.phase == Phase::kForward ? moe_fwd_span : moe_bwd_span)[rank];
      auto [it, inserted] = spans.emplace(t.layer, iv);
      if (!inserted) {
        it->second.first = std::min(it->second.first, iv.first);
        it->second.second = std::max(it->second.second, iv.second);
      }
    }
  }
  double sum_compute = 0, sum_a2a = 0, sum_fwd = 0, sum_bwd = 0, sum_ar = 0, sum_loads = 0, sum_exposed = 0,
         sum_pipe_num = 0, sum_pipe_den = 0, sum_fwd_moe = 0, sum_bwd_moe = 0;
  for (size_t r = 0; r < N; ++r) {
    sum_compute += static_cast<double>(merge(compute[r]));
    sum_a2a += static_cast<double>(merge(a2a[r]));
    sum_fwd += static_cast<double>(merge(a2a_fwd[r]));
    sum_bwd += static_cast<double>(merge(a2a_bwd[r]));
    sum_ar += static_cast<double>(merge(ar[r]));
    sum_loads += static_cast<double>(merge(loads[r]));
    int64_t c = merge(comm[r]);
    sum_exposed += static_cast<double>(c - overlap(comm[r], compute[r]));
    sum_pipe_num += static_cast<double>(overlap(a2a[r], compute[r]));
    for (const auto& [layer, iv] : moe_fwd_span[r]) sum_fwd_moe += static_cast<double>(iv.second - iv.first);
    for (const auto& [layer, iv] : moe_bwd_span[r]) sum_bwd_moe += static_cast<double>(iv.second - iv.first);
  }
  sum_pipe_den = sum_a2a;
  const double ticks = static_cast<double>(Time::kTicksPerSecond) * static_cast<double>(N);
  const double step = lo <= hi ? static_cast<double>(hi - lo) / Time::kTicksPerSecond : 0;
  std::map<std::string, double> out = {
      {"step_time_s", step},
      {"fwd_moe_time_s", sum_fwd_moe / ticks},
      {"bwd_moe_time_s", sum_bwd_moe / ticks},
      {"a2a_time_s", sum_a2a / ticks},
      {"a2a_share", step > 0 ? sum_a2a / ticks / step : 0},
      {"a2a_fwd_time_s", sum_fwd / ticks},
      {"a2a_bwd_time_s", sum_bwd / ticks},
      {"allreduce_time_s", sum_ar / ticks},
      {"exposed_comm_s", sum_exposed / ticks},
      {"compute_util", step > 0 ? sum_compute / ticks / step : 0},
      {"pipeline_efficiency", sum_pipe_den > 0 ? sum_pipe_num / sum_pipe_den : 0},
  };
  // Only where expert weights are offloaded: time with a weight load running on the rank.
  if (sum_loads > 0) out["host_load_time_s"] = sum_loads / ticks;
  return out;
}

void add_throughput_metrics(std::map<std::string, double>& metrics, const ModelSpec& model,
                            const WorkloadSpec& workload, const ClusterSpec& cluster) {
  const double step = metrics.at("step_time_s");
  const double ranks = cluster.gpu_count();
  const double tokens_per_s = step > 0 ? static_cast<double>(workload.tokens_per_gpu()) * ranks / step : 0;
  const double model_flops_per_token = 3 * model_forward_flops_per_token(model, static_cast<double>(workload.seq_len));
  metrics["tokens_per_s"] = tokens_per_s;
  metrics["mfu"] = model_flops_per_token * tokens_per_s / (cluster.gpu.peak_flops(model.compute_dtype) * ranks);
  if (auto usd = usd_per_million_tokens(cluster, tokens_per_s)) metrics["usd_per_million_tokens"] = *usd;
}

A2aSlowdowns a2a_bwd_slowdowns(const RunResult& run, const RunResult& reference) {
  const Plan &a = run.plan, &b = reference.plan;
  A2aSlowdowns out;
  if (a.tasks.size() != b.tasks.size() || a.collectives.size() != b.collectives.size()) return out;
  int last_step = 0;
  for (const auto& t : a.tasks) last_step = std::max(last_step, t.step);
  // Gradient synchronisation intervals per rank in `run` (allreduce, or its reduce-scatter / all-gather parts).
  std::vector<std::vector<std::pair<Time, Time>>> syncs(static_cast<size_t>(a.ranks));
  for (size_t i = 0; i < a.tasks.size(); ++i) {
    const Task& t = a.tasks[i];
    if (t.kind != TaskKind::kComm || t.role != Role::kGradSync) continue;
    const TaskRecord& r = run.timeline.records[i];
    syncs[static_cast<size_t>(t.rank)].emplace_back(r.start, r.end);
  }
  auto contended = [&](const Task& t, const TaskRecord& r) {
    for (const auto& [start, end] : syncs[static_cast<size_t>(t.rank)]) {
      if (start < r.end && r.start < end) return true;
    }
    return false;
  };
  for (size_t i = 0; i < a.tasks.size(); ++i) {
    const Task &x = a.tasks[i], &y = b.tasks[i];
    if (x.rank != y.rank || x.kind != y.kind || x.role != y.role || x.layer != y.layer || x.phase != y.phase) {
      return {};
    }
    if (x.kind != TaskKind::kComm || x.phase != Phase::kBackward || x.step != last_step) continue;
    if (a.collectives[static_cast<size_t>(x.collective)].kind != CommKind::kAllToAll) continue;
    const TaskRecord &ra = run.timeline.records[i], &rb = reference.timeline.records[i];
    double da = (ra.end - ra.start).seconds(), db = (rb.end - rb.start).seconds();
    if (db <= 0) continue;
    out.all.push_back(da / db);
    if (contended(x, ra)) out.contended.push_back(da / db);
  }
  std::sort(out.all.begin(), out.all.end());
  std::sort(out.contended.begin(), out.contended.end());
  return out;
}

RunResult run_training(const TrainingInput& in) {
  const std::string& name = in.policy.name;
  int degree = in.policy.pipeline_degree;
  RunResult out;
  // The routing is drawn once: every layout the controllers try runs the same tokens.
  const std::vector<LayerRouting> routing = training_routing(in);
  auto run = [&](const TrainingLayout& l) { return simulate(in, l, routing); };
  auto layout = [&](int k, int d) { return make_layout(in.model, in.cluster, k, d, in.policy.zero_stage); };
  auto finish = [&](Simulated s, const TrainingLayout& l) {
    out.metrics = std::move(s.metrics);
    add_throughput_metrics(out.metrics, in.model, in.workload, in.cluster);
    out.metrics["experts_per_gpu"] = l.experts_per_device;
    out.metrics["pipeline_degree"] = l.pipeline_degree;
    out.metrics["offloaded_expert_share"] = l.offloaded_share;
    if (std::string note = memory_note(in.model, in.cluster, l.experts_per_device, in.policy.zero_stage);
        !note.empty()) {
      out.notes["memory"] = std::move(note);
    }
    // The smallest valid layout may already pack experts (60 experts on 32 GPUs: groups of 4, 15 experts each).
    if (const TrainingLayout base = layout(0, 1); base.experts_per_device > 1) {
      out.notes["layout"] = fmt::format(
          "{} experts on {} GPUs: the largest expert-parallel group that divides both is {} GPUs, so every layout "
          "holds at least {} experts per GPU",
          in.model.experts, base.ranks, base.group_size, base.experts_per_device);
    }
    out.plan = std::move(s.plan);
    out.timeline = std::move(s.timeline);
    return out;
  };
  if (name == "tutel" && degree == 0) {
    // Tutel's adaptive pipelining: measure the step at each degree and keep the fastest.
    std::optional<Simulated> best;
    TrainingLayout best_layout;
    for (int d : {1, 2, 4, 8}) {
      TrainingLayout l = layout(0, d);
      Simulated s = run(l);
      if (!best || s.metrics["step_time_s"] < best->metrics["step_time_s"]) {
        best = std::move(s);
        best_layout = l;
      }
    }
    return finish(std::move(*best), best_layout);
  }
  if (name == "lina") {
    if (degree == 0) degree = lina_pipeline_degree(in.model, in.workload, in.policy.micro_op_bytes);
    if (in.policy.packing == "off") {
      TrainingLayout l = layout(0, degree);
      return finish(run(l), l);
    }
    if (in.policy.packing != "auto") {
      TrainingLayout l = layout(std::stoi(in.policy.packing), degree);
      return finish(run(l), l);
    }
    // The packing controller (paper 4.2): start at the smallest packing and double the experts per GPU while the
    // expert computation of a micro-op is shorter than its all-to-all, as long as the experts fit in memory. It
    // measures each packing it tries (the paper's controller re-checks every 4 steps) and keeps a doubling only if
    // the step got faster: packing also multiplies the expert gradients each GPU must allreduce, which can cost
    // more than the smaller all-to-all saves.
    TrainingLayout l = layout(0, degree);
    Simulated s = run(l);
    std::string why;  // why the controller stopped where it did (the results' "packing" note)
    while (true) {
      auto [ffn, a2a] = ffn_and_a2a_chunk_seconds(s);
      const int k = l.experts_per_device, next = k * 2;
      if (!(ffn < a2a)) {
        why = fmt::format("expert compute of a micro-op ({:.3f} ms) is no shorter than its all-to-all ({:.3f} ms)",
                          ffn * 1e3, a2a * 1e3);
        break;
      }
      if (in.model.experts % next != 0 || l.ranks % (in.model.experts / next) != 0) {
        why =
            fmt::format("{} experts per GPU is not a layout of {} experts on {} GPUs", next, in.model.experts, l.ranks);
        break;
      }
      // The controller packs only as far as the experts fit in GPU memory (an explicit packing may offload).
      if (const double off = offloaded_expert_share(in.model, in.cluster, next, in.policy.zero_stage); off > 0) {
        why = fmt::format(
            "{} experts per GPU would not fit in GPU memory with {} ({:.0f}% of the GPU's expert parameters would "
            "have to live in host memory)",
            next, optimizer_state_name(in.policy.zero_stage), 100 * off);
        break;
      }
      TrainingLayout nl = layout(next, degree);
      Simulated ns = run(nl);
      if (!(ns.metrics["step_time_s"] < s.metrics["step_time_s"])) {
        why = fmt::format("{} experts per GPU measured a slower step ({:.3f} ms against {:.3f} ms)", next,
                          ns.metrics["step_time_s"] * 1e3, s.metrics["step_time_s"] * 1e3);
        break;
      }
      l = nl;
      s = std::move(ns);
    }
    out.notes["packing"] = fmt::format("stopped at {} experts per GPU: {}", l.experts_per_device, why);
    return finish(std::move(s), l);
  }
  TrainingLayout l = layout(0, degree);
  return finish(run(l), l);
}

}  // namespace lina::sim

#include "sim/inference_sim.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <random>
#include <stop_token>
#include <thread>

#include "sched/error.hpp"
#include "sched/inference_estimator.hpp"
#include "sched/inference_plan.hpp"
#include "sched/inference_scheduler.hpp"
#include "sched/random.hpp"
#include "sim/collective_backend.hpp"
#include "sim/compute.hpp"
#include "sim/executor.hpp"
#include "sim/recent_cache.hpp"
#include "traces/reader.hpp"
#include "traces/synth.hpp"

namespace lina::sim {
namespace {

// ---- the batch pipeline ----

// A batch ready to simulate: its plan and, when the per-layer CSV is written, the scheduler's decision at every MoE
// layer.
struct PreparedBatch {
  uint64_t tokens = 0;  // the batch's tokens, all ranks together
  Plan plan;
  std::vector<LayerDecision> decisions;
  std::vector<Time> durations;  // simulator: every compute and host task's duration, by task id
  PlanIndex index;              // simulator: the executor's rows of the plan (index_plan)
};

// Every task's duration (ComputeModel::task_duration), for the executor ahead of the run. The ranks and batches
// repeat the same compute operators, so recently timed ones are kept, direct-mapped by a hash of (kind, FLOPs, bytes):
// a slot holds one operator, and another that hashes there replaces it (and is timed again).
class TaskDurations {
 public:
  TaskDurations(const ComputeModel& compute, std::string dtype) : compute_(compute), dtype_(std::move(dtype)) {}
  void of(const Plan& plan, std::vector<Time>& out) {
    out.resize(plan.tasks.size());
    for (size_t i = 0; i < plan.tasks.size(); ++i) {
      const Task& t = plan.tasks[i];
      out[i] = t.kind == TaskKind::kCompute ? compute(t) : compute_.task_duration(t, dtype_);
    }
  }

 private:
  struct Timed {
    OpKind op = OpKind::kElementwise;
    double flops = -1, bytes = -1;  // no task has negative sizes (validate_plan): an empty slot
    Time duration;
  };
  Time compute(const Task& t) {
    const uint64_t h = (std::bit_cast<uint64_t>(t.flops) * 0x9E3779B97F4A7C15ull) ^
                       (std::bit_cast<uint64_t>(t.bytes) * 0xC2B2AE3D27D4EB4Full) ^ static_cast<uint64_t>(t.op);
    Timed& slot = slots_[static_cast<size_t>((h ^ (h >> 29)) % slots_.size())];
    if (slot.op != t.op || slot.flops != t.flops || slot.bytes != t.bytes) {
      slot = Timed{t.op, t.flops, t.bytes, compute_.task_duration(t, dtype_)};
    }
    return slot.duration;
  }
  const ComputeModel& compute_;
  std::string dtype_;
  std::vector<Timed> slots_ = std::vector<Timed>(4096);
};

// Calls `prepare` (fills the next batch; false at the end) on a second thread, at most kAhead batches ahead of the
// consumer, or in next() itself when `threaded` is false. Batches come out in order either way. An exception thrown
// by `prepare` reaches the consumer after the batches prepared before it, as it would without the thread.
class BatchPipeline {
 public:
  using Prepare = std::function<bool(PreparedBatch&)>;

  BatchPipeline(Prepare prepare, bool threaded) : prepare_(std::move(prepare)) {
    if (threaded) worker_ = std::jthread([this](std::stop_token stop) { produce(stop); });
  }

  bool next(PreparedBatch& out) {
    if (!worker_.joinable()) return prepare_(out);
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !queue_.empty() || finished_; });
    if (queue_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return false;
    }
    // The batch `out` held is freed by the preparing thread, which allocated it: a free from another thread goes
    // through that thread's arena lock, while it allocates the next batch.
    spent_.push_back(std::move(out));
    out = std::move(queue_.front());
    queue_.pop_front();
    space_.notify_one();
    return true;
  }

 private:
  static constexpr size_t kAhead = 2;

  void produce(std::stop_token stop) {
    try {
      for (;;) {
        PreparedBatch job;
        if (!prepare_(job)) break;
        std::vector<PreparedBatch> spent;
        {
          std::unique_lock lock(mutex_);
          // Stopped (the consumer gave up, e.g. on an exception): return; the destructor joins.
          if (!space_.wait(lock, stop, [&] { return queue_.size() < kAhead; })) return;
          queue_.push_back(std::move(job));
          ready_.notify_one();
          spent.swap(spent_);
        }
      }
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
    }
    std::lock_guard lock(mutex_);
    finished_ = true;
    ready_.notify_one();
  }

  Prepare prepare_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable_any space_;
  std::deque<PreparedBatch> queue_;
  std::vector<PreparedBatch> spent_;  // consumed batches, for the preparing thread to free
  bool finished_ = false;
  std::exception_ptr error_;
  std::jthread worker_;  // declared last: stopped and joined before the members it uses go away
};

// Estimators built from the same profiling batches.
RecentCache<PathEstimator> g_estimators;

double percentile(std::vector<double> v, double p) {
  // Nearest rank: the smallest value with at least p of the samples at or below it.
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, i > 0 ? i - 1 : 0)];
}

}  // namespace

RunResult run_inference(const InferenceInput& in) {
  const ModelSpec& m = in.model;
  if (m.experts <= 0 || m.moe_layer_count() == 0) throw InputError("inference needs an MoE model (model.experts > 0)");
  const int N = in.cluster.gpu_count(), E = m.experts, ML = m.moe_layer_count();
  RoutingSources src = in.sources ? in.sources() : make_routing_sources(in.workload, m, in.seed, in.share_batches);
  const InferencePolicyKind kind = inference_policy_kind(in.policy.name);

  // Profiling: Lina's lookup tables and the mean popularity.
  std::shared_ptr<PathEstimator> est;
  const bool profile = kind == InferencePolicyKind::kLina || kind == InferencePolicyKind::kLinaNoFinetune ||
                       kind == InferencePolicyKind::kReplicateHistory;
  BatchRouting b;
  std::vector<double> popularity(static_cast<size_t>(ML) * E, 0.0);
  if (profile) {
    if (!src.profile) throw InputError(fmt::format("policy '{}' needs profiling batches", in.policy.name));
    const int max_path = kind == InferencePolicyKind::kReplicateHistory ? 0 : std::max(1, in.policy.path_length);
    // The lookup tables depend only on the profiling batches and the path length: policies of one point share them.
    const std::string key = in.sources
                                ? std::string()
                                : fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}|{}", src.description, E, ML, m.top_k, in.seed,
                                              max_path, in.workload.batch_size, in.workload.seq_len,
                                              in.workload.routing.profile_batches, in.workload.routing.profile_trace);
    est = key.empty() ? nullptr : g_estimators.get(key);
    if (!est) {
      bool first = true;
      while (src.profile->next(b)) {
        if (first) est = std::make_shared<PathEstimator>(b.layers, E, b.top_k, max_path);
        first = false;
        est->add(b);
      }
      if (est) est->freeze();
      if (est && !key.empty()) g_estimators.put(key, est);
    }
  }
  const double expert_bytes = static_cast<double>(count_params(m).per_expert) * m.dtype_bytes();
  InferenceScheduler sched(in.policy, E, N, ML, est, in.seed, in.cluster.gpus_per_node, expert_bytes);

  // A calibration file named by the cluster replaces datasheet links and efficiencies (docs/calibration.md).
  const auto [cluster, calibration] = calibrate_cluster(in.cluster);
  Topology topology(cluster);
  ComputeModel compute(cluster.gpu, calibration);

  RunResult out;
  if (in.record_links) {
    out.layers_csv =
        "batch,layer,moe_layer_s,dispatch_s,combine_s,expert_busiest_s,expert_least_s,idle_share,blocking_s,"
        "estimated,estimate_hit,phase2_rescheduled,weight_loads\n";
  }
  std::vector<double> service, a2a_layer, moe_layer, idle;
  std::vector<std::vector<double>> a2a_per_layer(static_cast<size_t>(ML));
  int scheduled = 0, hits = 0, hits_ordered = 0, checked = 0, resched = 0;
  double loads = 0, dropped = 0, routed = 0, served_tokens = 0;
  int64_t batches = 0, prepared = 0;
  double cached_tokens = -1;
  ModelCost cost;
  TaskDurations durations(compute, m.compute_dtype);
  // Preparing a batch (its routing, the scheduler's decisions at every gate, the plan) does not depend on how earlier
  // batches ran: the decisions depend only on routing and residency. So a second thread prepares batch n+1 while
  // this one simulates batch n (BatchPipeline); the batches are still simulated one by one, in order, and the results
  // are the same with or without it.
  auto prepare = [&](PreparedBatch& job) -> bool {
    if (!src.eval->next(b)) return false;
    if (b.layers != ML)
      throw InputError(fmt::format("batch {} has {} MoE layers, the model {}", prepared, b.layers, ML));
    ++prepared;
    job.tokens = b.tokens;
    const double tokens_per_rank = static_cast<double>(b.tokens) / N;
    if (tokens_per_rank != cached_tokens) {
      cost = model_cost(m, tokens_per_rank, static_cast<double>(in.workload.seq_len));
      cached_tokens = tokens_per_rank;
    }
    InferenceBatchInput bi;
    bi.model = &m;
    bi.cost = &cost;
    bi.ranks = N;
    bi.hierarchical_a2a = in.policy.hierarchical_a2a;
    bi.expert_param_bytes = expert_bytes;
    sched.begin_batch(b);
    std::vector<double> actual(static_cast<size_t>(E));
    for (int l = 0; l < ML; ++l) {
      bi.counts.push_back(rank_expert_counts(b, l, E, N));
      routed += std::accumulate(bi.counts.back().begin(), bi.counts.back().end(), 0.0);
      if (std::vector<double> d = drop_over_capacity(bi.counts.back(), m, N); !d.empty()) {
        dropped += std::accumulate(d.begin(), d.end(), 0.0);
        bi.dropped.push_back(std::move(d));
      }
      std::fill(actual.begin(), actual.end(), 0.0);
      const auto& c = bi.counts.back();
      for (int r = 0; r < N; ++r) {
        for (int e = 0; e < E; ++e) actual[static_cast<size_t>(e)] += c[static_cast<size_t>(r) * E + e];
      }
      for (int e = 0; e < E; ++e) popularity[static_cast<size_t>(l) * E + e] += actual[static_cast<size_t>(e)];
      LayerDecision d = sched.on_gate(l, actual);
      scheduled += d.scheduled;
      hits += d.scheduled && d.estimate_hit;
      hits_ordered += d.scheduled && d.estimate_hit_ordered;
      checked += d.phase2_checked;
      resched += d.rescheduled;
      loads += static_cast<double>(d.blocking_loads.size() + d.next_phase1_loads.size());
      bi.decisions.push_back(std::move(d));
    }
    job.plan = build_inference_plan(bi);
    // The simulating thread reads the decisions only for the per-layer CSV. Otherwise they die here, on the thread
    // that made them: memory freed by another thread goes back through a lock on this one's arena, and a batch's
    // placements are hundreds of small vectors.
    if (in.record_links) job.decisions = std::move(bi.decisions);
    if (!in.execute) {
      // What the simulator's executor would do first, done here, ahead: check the plan and time its compute.
      validate_plan(job.plan);
      durations.of(job.plan, job.durations);
      index_plan(job.plan, job.index);
    }
    return true;
  };
  // The hardware backend runs the plan while the scheduler object is in use: no second thread there.
  BatchPipeline pipeline(prepare, in.pipeline && !in.execute);
  PreparedBatch job;
  while (pipeline.next(job)) {
    Plan& plan = job.plan;
    const std::vector<LayerDecision>& decisions = job.decisions;
    Timeline tl;
    if (in.execute) {
      tl = in.execute(plan, sched);
    } else {
      Engine engine;
      Network network(engine, topology);
      NetworkCollectives backend(engine, network, topology, cluster);  // collectives and host loads
      ExecutorOptions opts;
      opts.durations = &job.durations;
      opts.index = &job.index;
      opts.plan_validated = true;
      Executor exec(engine, backend, opts);
      tl = exec.run(plan, sched);
    }
    service.push_back(tl.makespan.seconds());
    served_tokens += static_cast<double>(job.tokens);

    // Per MoE layer: all-to-all spans, MoE layer span, expert compute per device. Indexed by layer; a layer without
    // an MoE part keeps its empty span and is skipped.
    const size_t L = static_cast<size_t>(m.total_layers());  // the plan's layer indices (encoder layers first)
    std::vector<int64_t> lo(plan.collectives.size(), INT64_MAX), hi(plan.collectives.size(), INT64_MIN);
    std::vector<std::pair<int64_t, int64_t>> span(L, {INT64_MAX, INT64_MIN});
    std::vector<int64_t> busy(L * static_cast<size_t>(N), 0);  // [layer][rank] expert compute
    for (const auto& r : tl.records) {
      if (r.task < 0) continue;
      const Task& t = plan.tasks[static_cast<size_t>(r.task)];
      if (t.layer < 0) continue;
      const auto layer = static_cast<size_t>(t.layer);
      if (t.kind == TaskKind::kComm && (t.role == Role::kDispatch || t.role == Role::kCombine)) {
        auto c = static_cast<size_t>(t.collective);
        lo[c] = std::min(lo[c], r.start.ticks());
        hi[c] = std::max(hi[c], r.end.ticks());
      }
      const bool part = t.role == Role::kExpert || t.role == Role::kDispatch || t.role == Role::kCombine ||
                        (t.kind == TaskKind::kCompute && t.op == OpKind::kGate);
      if (part) {
        span[layer].first = std::min(span[layer].first, r.start.ticks());
        span[layer].second = std::max(span[layer].second, r.end.ticks());
      }
      if (t.role == Role::kExpert)
        busy[layer * static_cast<size_t>(N) + static_cast<size_t>(t.rank)] += (r.end - r.start).ticks();
    }
    std::vector<double> a2a(L, 0.0), dispatch_s(L, 0.0);
    std::vector<uint8_t> has_a2a(L, 0);
    for (size_t c = 0; c < plan.collectives.size(); ++c) {
      const Collective& col = plan.collectives[c];
      if (col.kind != CommKind::kAllToAll || lo[c] > hi[c]) continue;
      const double t = static_cast<double>(hi[c] - lo[c]) / Time::kTicksPerSecond;
      const auto layer = static_cast<size_t>(col.layer);
      a2a[layer] += t;
      has_a2a[layer] = 1;
      if (col.role == Role::kDispatch) dispatch_s[layer] += t;
    }
    int mi = 0;
    for (size_t layer = 0; layer < L; ++layer) {
      if (!has_a2a[layer]) continue;
      a2a_layer.push_back(a2a[layer]);
      if (mi < ML) a2a_per_layer[static_cast<size_t>(mi++)].push_back(a2a[layer]);
    }
    size_t moe_index = 0;
    for (size_t layer = 0; layer < L; ++layer) {
      const auto [first, last] = span[layer];
      if (first > last) continue;  // no MoE part in this layer
      const double len = static_cast<double>(last - first);
      moe_layer.push_back(len / Time::kTicksPerSecond);
      const auto row = busy.begin() + static_cast<std::ptrdiff_t>(layer * static_cast<size_t>(N));
      auto [mn, mx] = std::minmax_element(row, row + N);
      idle.push_back(len > 0 ? static_cast<double>(*mx - *mn) / len : 0.0);
      if (in.record_links && moe_index < decisions.size()) {
        const LayerDecision& d = decisions[moe_index];
        const double disp = dispatch_s[layer], all = a2a[layer];
        auto flag = [&](bool known, bool v) { return known ? (v ? "1" : "0") : ""; };
        out.layers_csv +=
            fmt::format("{},{},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g},{:.6g},{:.9g},{},{},{},{}\n", batches, layer,
                        len / Time::kTicksPerSecond, disp, all - disp, static_cast<double>(*mx) / Time::kTicksPerSecond,
                        static_cast<double>(*mn) / Time::kTicksPerSecond, idle.back(), d.blocking_seconds,
                        flag(true, d.scheduled), flag(d.scheduled, d.estimate_hit),
                        flag(d.phase2_checked, d.rescheduled), d.blocking_loads.size() + d.next_phase1_loads.size());
      }
      ++moe_index;
    }
    if (batches == 0) {
      if (in.record_links) {
        for (size_t l = 0; l < topology.link_count(); ++l) {
          tl.link_names.push_back(topology.link_name(static_cast<LinkId>(l)));
          tl.link_capacity_bytes_per_s.push_back(topology.link_capacity(static_cast<LinkId>(l)));
        }
      }
      out.plan = std::move(plan);
      out.timeline = std::move(tl);
    }
    ++batches;
  }
  if (batches == 0) throw InputError("inference: no batch to evaluate");

  // Arrivals: closed loop (latency = service) or Poisson (queueing in front of the cluster).
  std::vector<double> latency = service;
  if (in.workload.arrival == "poisson") {
    std::mt19937_64 rng(derive_seed(in.seed, 7));
    double arrival = 0, free_at = 0;
    for (size_t i = 0; i < service.size(); ++i) {
      arrival += exponential(rng, in.workload.arrival_rate_per_s);  // portable, unlike std::exponential_distribution
      const double start = std::max(arrival, free_at);
      free_at = start + service[i];
      latency[i] = free_at - arrival;
    }
  }
  double mean = 0, smean = 0;
  for (size_t i = 0; i < latency.size(); ++i) {
    mean += latency[i];
    smean += service[i];
  }
  auto avg = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  const auto n = static_cast<double>(batches);
  out.metrics = {
      {"latency_p50_s", percentile(latency, 0.50)},
      {"latency_p95_s", percentile(latency, 0.95)},
      {"latency_p99_s", percentile(latency, 0.99)},
      {"latency_mean_s", mean / n},
      {"service_mean_s", smean / n},
      // Tokens served per second of service, batches back to back (the cluster's capacity, not an arrival rate).
      {"tokens_per_s", smean > 0 ? served_tokens / smean : 0.0},
      {"a2a_tail_time_s", percentile(a2a_layer, 0.95)},
      {"a2a_mean_time_s", avg(a2a_layer)},
      // All-to-all time over service time, as the paper's Table 1 inference row (102 ms = 32.5% of a batch).
      {"a2a_share", smean > 0 ? std::accumulate(a2a_layer.begin(), a2a_layer.end(), 0.0) / smean : 0.0},
      {"moe_layer_mean_s", avg(moe_layer)},
      {"idle_share_mean", avg(idle)},
      {"weight_loads_per_batch", loads / n},
      {"batches", n},
  };
  if (scheduled > 0) {
    out.metrics["estimate_accuracy"] = static_cast<double>(hits) / scheduled;
    out.metrics["estimate_accuracy_ordered"] = static_cast<double>(hits_ordered) / scheduled;
  }
  if (auto usd = usd_per_million_tokens(cluster, out.metrics["tokens_per_s"])) {
    out.metrics["usd_per_million_tokens"] = *usd;
  }
  if (checked > 0) out.metrics["phase2_rate"] = static_cast<double>(resched) / checked;
  // With a capacity factor the gate drops what exceeds an expert's capacity: the share of routed tokens it dropped.
  if (m.capacity_factor > 0) out.metrics["dropped_token_share"] = routed > 0 ? dropped / routed : 0.0;
  nlohmann::json tail = nlohmann::json::array(), pop = nlohmann::json::array();
  for (const auto& v : a2a_per_layer) tail.push_back(percentile(v, 0.95));
  for (int l = 0; l < ML; ++l) {
    nlohmann::json row = nlohmann::json::array();
    for (int e = 0; e < E; ++e) row.push_back(popularity[static_cast<size_t>(l) * E + e] / n);
    pop.push_back(std::move(row));
  }
  out.notes["routing"] = src.description;
  out.notes["a2a_tail_per_layer_s"] = tail.dump();
  out.notes["popularity"] = pop.dump();
  if (latency.size() <= 5000) out.notes["latency_s"] = nlohmann::json(latency).dump();
  return out;
}

}  // namespace lina::sim

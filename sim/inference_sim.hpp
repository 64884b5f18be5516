// Simulates MoE inference (DESIGN.md 2.6, 3.2): a stream of batches, each replayed from a trace or generated, goes
// through the model's layers on the cluster under one inference policy; every batch is one Plan run by the executor
// on the flow-level network. Reports latency percentiles over the evaluated batches and Lina's statistics.
//
// Batches run one at a time (the cluster serves one batch at once). Closed loop (default): the next batch starts
// when the previous one is done, so a batch's latency is its own service time, the sum over its layers. Poisson
// arrivals (workload.arrival = poisson, arrival_rate batches/s): a batch waits for the previous one, and its latency
// counts the wait.
//
// Routing sources (workload.routing.kind): balanced (token t picks experts (t*k + s) mod E: exactly even), uniform
// and zipf (traces/synth: per-layer hot sets and inter-layer correlation rho; with `topics` > 1 each sequence of a
// batch comes from one of that many generators with their own hot sets, seeds derived from the experiment's), or a
// trace replayed exactly. Profiling batches (Lina's lookup tables, replicate-history's popularity) never overlap the
// evaluated ones: generated before them, or `profile_trace`, or the first half of the trace (then the evaluation
// replays the second half).
//
// Capacity: with model.capacity_factor > 0 the gate keeps at most ceil(cf * k * S / E) tokens per expert from each
// rank of S tokens and drops the rest (DeepSpeed-MoE's inference default, drop_over_capacity in
// sched/inference_plan.hpp); 0 is dropless: every routed token is served.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/policy_spec.hpp"
#include "sched/routing.hpp"
#include "sched/runtime_scheduler.hpp"
#include "sched/workload_spec.hpp"
#include "sim/routing_source.hpp"
#include "sim/training_sim.hpp"

namespace lina::sim {

struct InferenceInput {
  ClusterSpec cluster;
  ModelSpec model;
  WorkloadSpec workload;
  PolicySpec policy;
  uint64_t seed = 1;
  bool record_links = false;
  // Optional: batches supplied by the caller instead of make_routing_sources (tests, benchmarks).
  std::function<RoutingSources()> sources;
  // Optional: runs each batch's plan, driving the given runtime scheduler, instead of the simulator (the hardware
  // backend: `lina hw run` on an inference spec). The same scheduler object decides placements either way.
  std::function<Timeline(const Plan&, RuntimeScheduler&)> execute;
  // Prepare the next batch (routing, the scheduler's decisions, the plan) on a second thread while this one simulates
  // the current batch. Same results either way; off with `execute`.
  bool pipeline = true;
  // Keep the synthetic evaluated batches for the other policies of the point (make_routing_sources); `lina run`
  // sets it when a point has more than one policy. Off, a single run does not hold its batches in memory.
  bool share_batches = false;
};

// Metrics (names carry their unit): latency_p50_s, latency_p95_s, latency_p99_s, latency_mean_s, service_mean_s,
// a2a_tail_time_s (p95 over batches and MoE layers of a layer's dispatch + combine time), a2a_mean_time_s,
// moe_layer_mean_s, idle_share_mean (per MoE layer: (busiest - least busy device's expert compute) / layer time),
// estimate_accuracy (share of Lina-scheduled layers whose estimated top-2 experts were the actual ones),
// estimate_accuracy_ordered, phase2_rate (share of Phase 2 checks that rescheduled), weight_loads_per_batch,
// batches. Notes: per-layer tail all-to-all and mean popularity (JSON) for the plots. The plan and timeline are the
// first evaluated batch's.
RunResult run_inference(const InferenceInput& in);

}  // namespace lina::sim

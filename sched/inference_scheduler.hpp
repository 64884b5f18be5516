// Inference policies (DESIGN.md 3.2) as a runtime scheduler: the executor (sim/ or hw/) reports each MoE layer's
// gate output through on_gate(), and the scheduler answers with the layer's expert placement and the work it
// costs (host scheduling time, expert weights loaded from host memory), split into what blocks the layer's
// dispatch and what overlaps with it (Lina's Phase 1 for the next layer). Communication tasks are launched as soon
// as they are ready, as in training's DeepSpeed.
//
// Policies:
//   deepspeed          expert e on device e mod N, always.
//   lina               from MoE layer l on (0-based; path length l, so every scheduled layer has a full path):
//                      Phase 1 runs when layer j-1's gate is out: it estimates layer j's popularity from the
//                      tokens' paths (PathEstimator), places experts (popularity_placement) and starts loading the
//                      weights not resident; both overlap with layer j-1 (schedule_cost on the host). Phase 2 runs
//                      at layer j's gate: when the estimated top-2 experts are the actual ones it costs
//                      finetune_cost; otherwise it reruns the placement on the actual counts (schedule_cost) and the
//                      dispatch waits for it and for the weights it needs. Layers before l keep the static placement.
//   lina-no-estimate   every layer scheduled at its gate from the actual counts: schedule_cost and loads block.
//   lina-no-finetune   Phase 1 only.
//   ideal              the gate spreads every rank's tokens evenly over all devices (no placement).
//   oracle-placement   Lina's placement from the actual counts at every layer, free and with the weights resident.
//   replicate-history  a static placement per layer from the mean popularity over the profiling batches.
//
// Weight residency (what is loaded over PCIe): a device keeps its home experts (e mod N) of every layer, plus the
// experts the latest placement of that layer gave it; placing an expert elsewhere loads its weights from host
// memory. With policy.expert_cache, copies a placement stops using (and Phase 1 loads that Phase 2 did not keep)
// stay resident in that much memory per device, least recently released evicted first. The simulator knows every gate
// output ahead of time (the trace), so it calls on_gate() while building a batch's plan; the costs it returns are tasks
// of that plan, so their timing is simulated.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sched/inference_estimator.hpp"
#include "sched/inference_placement.hpp"
#include "sched/policy_spec.hpp"
#include "sched/routing.hpp"
#include "sched/runtime_scheduler.hpp"

namespace lina {

enum class InferencePolicyKind {
  kDeepSpeed,
  kLina,
  kLinaNoEstimate,
  kLinaNoFinetune,
  kIdeal,
  kOracle,
  kReplicateHistory
};
// Throws InputError for an unknown name.
InferencePolicyKind inference_policy_kind(const std::string& name);

struct LayerDecision {
  Placement placement;
  bool even_split = false;  // ideal: every rank sends 1/N of its tokens to every device
  // At this layer's gate, before the dispatch may start.
  double blocking_seconds = 0;
  std::vector<std::pair<int, int>> blocking_loads;  // (device, expert)
  // Started at this layer's gate for the NEXT layer (Lina's Phase 1): overlapped with this layer; the next layer's
  // dispatch waits for it.
  double next_phase1_seconds = 0;
  std::vector<std::pair<int, int>> next_phase1_loads;
  // Statistics.
  bool scheduled = false;  // Lina estimated this layer (Phase 1 ran) and Phase 2 checked it (lina)
  bool phase2_checked = false;
  bool rescheduled = false;           // Phase 2 reran the placement
  bool estimate_hit = false;          // estimated top-2 = actual top-2 (as a set, ties accepted)
  bool estimate_hit_ordered = false;  // and in the same order
};

class InferenceScheduler : public RuntimeScheduler {
 public:
  // `estimator` (lina policies) and the profiling popularity (replicate-history) come from the profiling batches;
  // it may be null for the other policies.
  // `devices_per_node` > 0 makes placements spread the copies of hot experts over nodes (see popularity_placement).
  // `expert_bytes`: one expert's weights, which sizes policy.expert_cache in copies.
  InferenceScheduler(const PolicySpec& policy, int experts, int devices, int layers,
                     std::shared_ptr<const PathEstimator> estimator, uint64_t seed, int devices_per_node = 0,
                     double expert_bytes = 0);

  // A new batch enters layer 0; its routing is what the gates will produce.
  void begin_batch(const BatchRouting& batch);
  // The gate hook: MoE layer `layer` of the current batch produced `actual` tokens per expert (all top_k slots).
  // Called for layers 0, 1, ... in order.
  LayerDecision on_gate(int layer, std::span<const double> actual);

  InferencePolicyKind kind() const { return kind_; }

  // RuntimeScheduler: communication launches as soon as it is ready.
  void attach(const Plan&, Launcher& launcher) override { launcher_ = &launcher; }
  void on_comm_ready(int task, Time) override { launcher_->launch(task); }
  void on_task_start(int, Time) override {}
  void on_task_finish(int, Time) override {}

 private:
  Placement place(std::span<const double> load, int layer, const Residency* res);
  // Layer j's placement is final: its copies become resident; the copies of the layer's previous placement that it
  // does not use, and `also_loaded` (Phase 1 loads), go to the cache or are dropped.
  void settle(int j, const Placement& p, std::span<const std::pair<int, int>> also_loaded);
  void release(int j, int device, int expert);
  Residency no_copies() const {
    return {experts_, devices_, std::vector<uint8_t>(static_cast<size_t>(experts_) * static_cast<size_t>(devices_))};
  }
  uint64_t sub_seed(int layer) const;

  PolicySpec policy_;
  InferencePolicyKind kind_;
  int experts_, devices_, layers_, devices_per_node_;
  std::shared_ptr<const PathEstimator> estimator_;
  uint64_t seed_;
  Launcher* launcher_ = nullptr;

  const BatchRouting* batch_ = nullptr;
  uint64_t batch_index_ = 0;
  std::vector<uint16_t> top1_;
  std::vector<Residency> residency_;  // per layer: home experts, placed_ and cached copies
  Residency home_;
  std::vector<Residency> placed_;  // per layer: non-home copies of the latest placement (never evicted)
  struct CachedCopy {
    uint64_t stamp;  // when released (increasing, so a device's list is ordered oldest first)
    int layer, expert;
  };
  std::vector<std::vector<CachedCopy>> cache_;  // per device
  size_t cache_copies_ = 0;                     // per device: policy.expert_cache / expert_bytes
  uint64_t stamp_ = 0;
  std::vector<Placement> history_;  // replicate-history: per layer
  bool have_pending_ = false;       // Phase 1 result for the next layer
  Placement pending_;
  std::vector<double> pending_estimate_;
};

}  // namespace lina

#include "sched/inference_scheduler.hpp"

#include <fmt/format.h>

#include "sched/error.hpp"

namespace lina {

InferencePolicyKind inference_policy_kind(const std::string& name) {
  if (name == "deepspeed") return InferencePolicyKind::kDeepSpeed;
  if (name == "lina") return InferencePolicyKind::kLina;
  if (name == "lina-no-estimate") return InferencePolicyKind::kLinaNoEstimate;
  if (name == "lina-no-finetune") return InferencePolicyKind::kLinaNoFinetune;
  if (name == "ideal") return InferencePolicyKind::kIdeal;
  if (name == "oracle-placement") return InferencePolicyKind::kOracle;
  if (name == "replicate-history") return InferencePolicyKind::kReplicateHistory;
  throw InputError(fmt::format("unknown inference policy '{}'", name));
}

InferenceScheduler::InferenceScheduler(const PolicySpec& policy, int experts, int devices, int layers,
                                       std::shared_ptr<const PathEstimator> estimator, uint64_t seed,
                                       int devices_per_node)
    : policy_(policy),
      kind_(inference_policy_kind(policy.name)),
      experts_(experts),
      devices_(devices),
      layers_(layers),
      devices_per_node_(devices_per_node),
      estimator_(std::move(estimator)),
      seed_(seed) {
  residency_.assign(static_cast<size_t>(layers_), home_residency(experts_, devices_));
  const bool needs_profile = kind_ == InferencePolicyKind::kLina || kind_ == InferencePolicyKind::kLinaNoFinetune ||
                             kind_ == InferencePolicyKind::kReplicateHistory;
  if (needs_profile && (!estimator_ || estimator_->profiled_batches() == 0)) {
    throw InputError(fmt::format("policy '{}' needs profiling batches", policy.name));
  }
  if (kind_ == InferencePolicyKind::kReplicateHistory) {
    for (int l = 0; l < layers_; ++l) {
      std::vector<double> mean = estimator_->mean_counts(l);
      Residency home = home_residency(experts_, devices_);
      history_.push_back(
          popularity_placement(mean, devices_, policy_.max_experts_per_device, sub_seed(l), &home, devices_per_node_));
    }
  }
}

uint64_t InferenceScheduler::sub_seed(int layer) const {
  // SplitMix64 of (seed, batch, layer): independent, reproducible streams for the random choices.
  uint64_t z = seed_ ^ (batch_index_ * 0x9E3779B97F4A7C15ull) ^ (static_cast<uint64_t>(layer) << 48);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Placement InferenceScheduler::place(std::span<const double> load, int layer, const Residency* res) {
  return popularity_placement(load, devices_, policy_.max_experts_per_device, sub_seed(layer), res, devices_per_node_);
}

void InferenceScheduler::begin_batch(const BatchRouting& batch) {
  if (batch_) ++batch_index_;
  batch_ = &batch;
  have_pending_ = false;
  if (kind_ == InferencePolicyKind::kLina || kind_ == InferencePolicyKind::kLinaNoFinetune) {
    PathEstimator::top1_choices(batch, top1_);
  }
}

LayerDecision InferenceScheduler::on_gate(int j, std::span<const double> actual) {
  LayerDecision d;
  const double schedule_s = policy_.schedule_cost.seconds(), finetune_s = policy_.finetune_cost.seconds();
  Residency& res = residency_[static_cast<size_t>(j)];
  auto settle = [&](const Placement& p) {
    // The device keeps its home experts and the ones this placement gave it.
    res = home_residency(experts_, devices_);
    for (int e = 0; e < experts_; ++e) {
      for (int dev : p.replicas[static_cast<size_t>(e)]) res.set(dev, e);
    }
  };
  switch (kind_) {
    case InferencePolicyKind::kDeepSpeed:
      d.placement = static_placement(experts_, devices_);
      break;
    case InferencePolicyKind::kIdeal:
      d.placement = static_placement(experts_, devices_);
      d.even_split = true;
      break;
    case InferencePolicyKind::kOracle:
      d.placement = place(actual, j, &res);
      break;
    case InferencePolicyKind::kReplicateHistory:
      d.placement = history_[static_cast<size_t>(j)];
      break;
    case InferencePolicyKind::kLinaNoEstimate:
      d.placement = place(actual, j, &res);
      d.blocking_seconds = schedule_s;
      d.blocking_loads = missing_weights(d.placement, res);
      settle(d.placement);
      break;
    case InferencePolicyKind::kLina:
    case InferencePolicyKind::kLinaNoFinetune: {
      if (!have_pending_) {
        // No Phase 1 for this layer (no path of l choices yet, DESIGN.md 3.2: two-phase scheduling from layer l+1
        // on). Lina's Phase 2 is there after the gate, and with no estimate to confirm it reschedules on the actual
        // counts, blocking; Phase 1 alone (no-finetune) has nothing and keeps the static placement.
        if (kind_ == InferencePolicyKind::kLinaNoFinetune || policy_.before_path_static) {
          d.placement = static_placement(experts_, devices_);
          break;
        }
        d.placement = place(actual, j, &res);
        d.blocking_seconds = schedule_s;
        d.blocking_loads = missing_weights(d.placement, res);
        settle(d.placement);
        break;
      }
      d.scheduled = true;
      d.estimate_hit = top2_hit(pending_estimate_, actual, false);
      d.estimate_hit_ordered = top2_hit(pending_estimate_, actual, true);
      if (kind_ == InferencePolicyKind::kLinaNoFinetune) {
        d.placement = pending_;
      } else if (d.estimate_hit) {
        d.phase2_checked = true;
        d.placement = pending_;
        d.blocking_seconds = finetune_s;
      } else {
        // Phase 2: the estimate missed the top-2; reschedule on the actual counts and wait for the new mapping.
        d.phase2_checked = true;
        d.rescheduled = true;
        Residency after = res;  // the Phase 1 loads were issued
        for (const auto& [dev, e] : missing_weights(pending_, res)) after.set(dev, e);
        d.placement = place(actual, j, &after);
        d.blocking_seconds = schedule_s;
        d.blocking_loads = missing_weights(d.placement, after);
      }
      settle(d.placement);
      break;
    }
  }
  have_pending_ = false;
  // Phase 1 for the next layer, once the paths up to this layer are known.
  const int next = j + 1;
  if ((kind_ == InferencePolicyKind::kLina || kind_ == InferencePolicyKind::kLinaNoFinetune) && next < layers_ &&
      next >= policy_.path_length) {
    pending_estimate_.assign(static_cast<size_t>(experts_), 0.0);
    estimator_->estimate(*batch_, top1_, next, policy_.path_length, pending_estimate_);
    Residency& nres = residency_[static_cast<size_t>(next)];
    pending_ = place(pending_estimate_, next, &nres);
    have_pending_ = true;
    d.next_phase1_seconds = schedule_s;
    d.next_phase1_loads = missing_weights(pending_, nres);
  }
  return d;
}

}  // namespace lina

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
                                       int devices_per_node, double expert_bytes)
    : policy_(policy),
      kind_(inference_policy_kind(policy.name)),
      experts_(experts),
      devices_(devices),
      layers_(layers),
      devices_per_node_(devices_per_node),
      estimator_(std::move(estimator)),
      seed_(seed) {
  home_ = home_residency(experts_, devices_);
  residency_.assign(static_cast<size_t>(layers_), home_);
  placed_.assign(static_cast<size_t>(layers_), no_copies());
  if (policy_.expert_cache_bytes > 0 && expert_bytes > 0) {
    cache_copies_ = static_cast<size_t>(policy_.expert_cache_bytes / expert_bytes);
  }
  cache_.resize(static_cast<size_t>(devices_));
  const bool needs_profile = kind_ == InferencePolicyKind::kLina || kind_ == InferencePolicyKind::kLinaNoFinetune ||
                             kind_ == InferencePolicyKind::kReplicateHistory;
  if (needs_profile && (!estimator_ || estimator_->profiled_batches() == 0)) {
    throw InputError(fmt::format("policy '{}' needs profiling batches", policy.name));
  }
  if (kind_ == InferencePolicyKind::kReplicateHistory) {
    for (int l = 0; l < layers_; ++l) {
      std::vector<double> mean = estimator_->mean_counts(l);
      history_.push_back(
          popularity_placement(mean, devices_, policy_.max_experts_per_device, sub_seed(l), &home_, devices_per_node_));
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
      settle(j, d.placement, {});
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
        settle(j, d.placement, {});
        break;
      }
      d.scheduled = true;
      d.estimate_hit = top2_hit(pending_estimate_, actual, false);
      d.estimate_hit_ordered = top2_hit(pending_estimate_, actual, true);
      std::vector<std::pair<int, int>> phase1_loads;
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
        phase1_loads = missing_weights(pending_, res);
        for (const auto& [dev, e] : phase1_loads) after.set(dev, e);
        d.placement = place(actual, j, &after);
        d.blocking_seconds = schedule_s;
        d.blocking_loads = missing_weights(d.placement, after);
      }
      settle(j, d.placement, phase1_loads);
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

void InferenceScheduler::release(int j, int device, int expert) {
  if (cache_copies_ == 0) {
    residency_[static_cast<size_t>(j)].clear(device, expert);
    return;
  }
  // Resident from now on (a Phase 1 load that Phase 2 replaced was not marked yet), until evicted.
  residency_[static_cast<size_t>(j)].set(device, expert);
  cache_[static_cast<size_t>(device)].push_back({++stamp_, j, expert});
}

void InferenceScheduler::settle(int j, const Placement& p, std::span<const std::pair<int, int>> also_loaded) {
  Residency& res = residency_[static_cast<size_t>(j)];
  Residency& placed = placed_[static_cast<size_t>(j)];
  Residency now = no_copies();
  for (int e = 0; e < experts_; ++e) {
    for (int dev : p.replicas[static_cast<size_t>(e)]) {
      if (!home_.has(dev, e)) now.set(dev, e);
    }
  }
  for (int dev = 0; dev < devices_; ++dev) {
    for (int e = 0; e < experts_; ++e) {
      if (placed.has(dev, e) && !now.has(dev, e)) release(j, dev, e);
    }
  }
  for (const auto& [dev, e] : also_loaded) {
    if (!home_.has(dev, e) && !now.has(dev, e)) release(j, dev, e);
  }
  for (int dev = 0; dev < devices_; ++dev) {
    auto& cached = cache_[static_cast<size_t>(dev)];
    for (int e = 0; e < experts_; ++e) {
      if (!now.has(dev, e)) continue;
      if (!placed.has(dev, e) && res.has(dev, e) && !cached.empty()) {  // back from the cache: in use again
        std::erase_if(cached, [&](const CachedCopy& c) { return c.layer == j && c.expert == e; });
      }
      res.set(dev, e);
    }
    if (cached.size() > cache_copies_) {  // least recently released first
      const auto excess = static_cast<std::ptrdiff_t>(cached.size() - cache_copies_);
      for (auto it = cached.begin(); it != cached.begin() + excess; ++it) {
        residency_[static_cast<size_t>(it->layer)].clear(dev, it->expert);
      }
      cached.erase(cached.begin(), cached.begin() + excess);
    }
  }
  placed = std::move(now);
}

}  // namespace lina

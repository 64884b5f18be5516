// Which runtime scheduler drives each training policy (DESIGN.md 3.1). The simulator (sim/training_sim) and the
// hardware backend (lina hw) both take it from here, so a policy runs the same scheduler code on either.
#pragma once

#include <memory>

#include "sched/policy_spec.hpp"
#include "sched/runtime_scheduler.hpp"

namespace lina {

// deepspeed, tutel, ideal: launch when ready; naive-priority: all-to-all first in launch order; lina and its
// ablations: Lina's priority queue (lina-fixed: fixed windows). The plan carries the rest (buckets, micro-ops,
// pipelining, packing).
std::unique_ptr<RuntimeScheduler> make_training_scheduler(const PolicySpec& policy);

}  // namespace lina

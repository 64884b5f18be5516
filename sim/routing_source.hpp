// Where an inference run's batches come from (DESIGN.md 2.6): balanced routing, the synthetic generator of
// traces/synth with its topics, or a recorded trace replayed exactly; each as a profiling source (Lina's lookup
// tables, replicate-history) and an evaluation source that never share a batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sched/model_spec.hpp"
#include "sched/routing.hpp"
#include "sched/workload_spec.hpp"

namespace lina::sim {

// A sequence of batches; next() returns false at the end.
class RoutingSource {
 public:
  virtual ~RoutingSource() = default;
  virtual bool next(BatchRouting& out) = 0;
};

struct RoutingSources {
  std::unique_ptr<RoutingSource> profile;  // may be null when no policy needs it
  std::unique_ptr<RoutingSource> eval;
  std::string description;
};

// Builds the profiling and evaluation sources of a workload for a model (MoE layers, experts, top_k). Throws
// InputError for a trace whose shape does not match the model.
// With `share_batches`, synthetic evaluated batches are kept (at most 1 GiB in all) for the other policies of the
// point, which replay the same batches: they copy them instead of generating them again. The results do not change.
RoutingSources make_routing_sources(const WorkloadSpec& w, const ModelSpec& m, uint64_t seed,
                                    bool share_batches = false);

}  // namespace lina::sim

#include "sched/workload_spec.hpp"

#include <nlohmann/json.hpp>

namespace lina {
namespace {
using nlohmann::json;
using D = Dimension;
using T = ParamType;
constexpr double kNoMax = 1e308;
}  // namespace

const std::vector<ParamDef>& workload_params() {
  static const std::vector<ParamDef> t = {
      {"workload.batch_size",
       T::kInteger,
       D::kNumber,
       16,
       "sequences per GPU per training step, or per inference batch (the paper does not state it: DESIGN.md 4)",
       1,
       1 << 20,
       {}},
      {"workload.seq_len", T::kInteger, D::kNumber, 512, "tokens per sequence", 1, 1 << 24, {}},
      {"workload.steps",
       T::kInteger,
       D::kNumber,
       2,
       "training steps simulated; metrics come from the last one",
       1,
       10000,
       {}},
      {"workload.batches", T::kInteger, D::kNumber, 50, "inference batches simulated", 1, 1e7, {}},
      {"workload.routing",
       T::kObject,
       D::kNumber,
       json::object(),
       "where each token's experts come from",
       -1e308,
       kNoMax,
       {}},
      {"workload.routing.kind",
       T::kChoice,
       D::kNumber,
       "balanced",
       "balanced (equal tokens per expert), uniform (random), zipf (skewed, per-layer hot sets), trace (replay)",
       -1e308,
       kNoMax,
       {"balanced", "uniform", "zipf", "trace"}},
      {"workload.routing.zipf_s", T::kNumber, D::kNumber, 1.2, "zipf: popularity exponent s (rank^-s)", 0, 10, {}},
      {"workload.routing.rho",
       T::kNumber,
       D::kNumber,
       0.0,
       "zipf: probability that a token follows its group's most common next expert (inter-layer correlation)",
       0,
       1,
       {}},
      {"workload.routing.topics",
       T::kInteger,
       D::kNumber,
       1,
       "zipf/uniform, inference: topics (generators with their own per-layer hot sets); each sequence of a batch "
       "draws one, so popularity varies from batch to batch with the batch's mix",
       1,
       4096,
       {}},
      {"workload.routing.topic_per",
       T::kChoice,
       D::kNumber,
       "sequence",
       "zipf/uniform with topics > 1: draw a topic per sequence (a batch mixes topics evenly; its popularity is close "
       "to their average), per batch (the batch has one topic's full skew; hot sets change between batches), or from "
       "a mixture (each batch draws topic weights from a Dirichlet distribution of concentration topic_alpha and each "
       "sequence its topic from them: batches range from one topic's full skew to an even mix)",
       -1e308,
       kNoMax,
       {"sequence", "batch", "mixture"}},
      {"workload.routing.topic_alpha",
       T::kNumber,
       D::kNumber,
       1.0,
       "topic_per mixture: concentration of the symmetric Dirichlet distribution of a batch's topic weights (towards "
       "0: one topic per batch; 1: weights uniform on the simplex; large: every batch an even mix)",
       1e-3,
       1e6,
       {}},
      {"workload.routing.profile_batches",
       T::kInteger,
       D::kNumber,
       100,
       "zipf/uniform, inference: profiling batches (Lina's lookup tables, replicate-history) generated before and "
       "apart from the evaluated ones",
       1,
       1e7,
       {}},
      {"workload.routing.trace", T::kString, D::kNumber, "", "trace: path of the trace to replay", -1e308, kNoMax, {}},
      {"workload.routing.profile_trace",
       T::kString,
       D::kNumber,
       "",
       "trace: profiling trace for Lina's lookup tables (default: the first half of the trace's batches; evaluation "
       "uses the rest)",
       -1e308,
       kNoMax,
       {}},
      {"workload.arrival",
       T::kChoice,
       D::kNumber,
       "closed",
       "inference: closed loop, or Poisson arrivals",
       -1e308,
       kNoMax,
       {"closed", "poisson"}},
      {"workload.arrival_rate", T::kNumber, D::kNumber, 0.0, "inference, poisson: batches per second", 0, 1e9, {}},
  };
  return t;
}

WorkloadSpec workload_from_json(const json& j, const std::string& file, const std::string& pointer) {
  SpecReader r(j, file, pointer, workload_params(), "workload");
  WorkloadSpec w;
  w.batch_size = r.integer("batch_size");
  w.seq_len = r.integer("seq_len");
  w.steps = r.integer("steps");
  w.batches = r.integer("batches");
  {
    SpecReader s = r.child("routing");
    w.routing.kind = s.choice("kind");
    w.routing.zipf_s = s.quantity("zipf_s");
    w.routing.rho = s.quantity("rho");
    w.routing.topics = s.integer("topics");
    w.routing.topic_per = s.choice("topic_per");
    w.routing.topic_alpha = s.quantity("topic_alpha");
    w.routing.profile_batches = s.integer("profile_batches");
    w.routing.trace = s.string("trace");
    w.routing.profile_trace = s.string("profile_trace");
    if (w.routing.kind == "trace" && w.routing.trace.empty()) {
      s.fail("trace", "routing kind 'trace' needs a trace path");
    }
    s.finish();
  }
  w.arrival = r.choice("arrival");
  w.arrival_rate_per_s = r.quantity("arrival_rate");
  if (w.arrival == "poisson" && w.arrival_rate_per_s <= 0) r.fail("arrival_rate", "poisson arrivals need a rate > 0");
  r.finish();
  return w;
}

}  // namespace lina

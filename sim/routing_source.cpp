#include "sim/routing_source.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <random>
#include <vector>

#include "sched/error.hpp"
#include "sched/random.hpp"
#include "sim/recent_cache.hpp"
#include "traces/reader.hpp"
#include "traces/synth.hpp"

namespace lina::sim {
namespace {

// kind balanced: token t picks experts (t * k + s) mod E, so every expert receives the same tokens (training with a
// load-balancing loss).
class BalancedSource : public RoutingSource {
 public:
  BalancedSource(int tokens, int layers, int experts, int top_k, int64_t batches)
      : tokens_(tokens), layers_(layers), experts_(experts), k_(top_k), left_(batches) {}
  bool next(BatchRouting& out) override {
    if (left_-- <= 0) return false;
    out.resize(tokens_, layers_, k_, false);
    out.flags = 0;
    for (int l = 0; l < layers_; ++l) {
      for (int t = 0; t < tokens_; ++t) {
        for (int s = 0; s < k_; ++s) out.experts[out.index(l, t, s)] = uint16_t((t * k_ + s) % experts_);
      }
    }
    return true;
  }

 private:
  int tokens_, layers_, experts_, k_;
  int64_t left_;
};

// The synthetic stream's state after its profiling batches (SynthSource::follow).
struct StreamState {
  std::vector<traces::SynthGenerator> gens;
  std::mt19937_64 rng;
};
RecentCache<const StreamState> g_streams;

// The evaluated batches of a synthetic stream, kept for the other policies of the point, which replay the same
// batches: at the paper's sizes (131,072 tokens x 12 layers a batch) generating them was half of an inference spec's
// run. A prefix of the stream: its first batches and the stream's state after them, so that a source that read them
// from here can go on generating. All stores together hold at most kStoredBatchBytes; past it, sources generate their
// batches themselves (the same batches: the cache changes no result).
constexpr size_t kStoredBatchBytes = size_t{1} << 30;
std::atomic<size_t> g_stored_bytes{0};

struct BatchStore {
  std::mutex mutex;
  std::vector<std::shared_ptr<const BatchRouting>> batches;
  std::optional<StreamState> after;  // the stream after `batches`
  size_t bytes = 0;
  ~BatchStore() { g_stored_bytes -= bytes; }
};
RecentCache<BatchStore> g_batches;

// How a batch's sequences pick their topics (RoutingSpec::topic_per).
struct TopicDraw {
  enum Kind { kSequence, kBatch, kMixture } kind = kSequence;
  double alpha = 1.0;  // kMixture: Dirichlet concentration of the batch's topic weights
};

// Synthetic batches from traces/synth: with several topics, each sequence of a batch comes from one generator, whose
// hot sets differ from the others'; TopicDraw says which.
class SynthSource : public RoutingSource {
 public:
  SynthSource(std::shared_ptr<std::vector<traces::SynthGenerator>> gens, std::shared_ptr<std::mt19937_64> rng,
              int sequences, int seq_tokens, int64_t batches, TopicDraw draw)
      : gens_(std::move(gens)),
        rng_(std::move(rng)),
        sequences_(sequences),
        seq_tokens_(seq_tokens),
        left_(batches),
        draw_(draw) {}
  // The evaluated batches follow the profiling ones in one stream; `before` (the profiling source) is drained
  // first if nobody read it, so every policy of a point evaluates the same batches whether or not it profiled (or
  // found the lookup tables already built).
  //
  // Draining regenerates every profiling batch, which at the paper's sizes costs as much as the evaluation, so the
  // state of the stream after the profiling batches is kept under `stream_key` (same key: same stream) and the
  // next policy of the point starts from a copy of it: the same batches, generated once.
  void follow(RoutingSource* before, std::string stream_key, bool share_batches) {
    before_ = before;
    stream_key_ = std::move(stream_key);
    if (share_batches) store_ = g_batches.get_or_put(stream_key_, [] { return std::make_shared<BatchStore>(); });
  }
  bool next(BatchRouting& out) override {
    if (before_) {
      if (auto snap = g_streams.get(stream_key_)) {
        gens_ = std::make_shared<std::vector<traces::SynthGenerator>>(snap->gens);
        rng_ = std::make_shared<std::mt19937_64>(snap->rng);
      } else {
        BatchRouting skipped;
        while (before_->next(skipped)) {
        }
        g_streams.put(stream_key_, std::make_shared<const StreamState>(StreamState{*gens_, *rng_}));
      }
      before_ = nullptr;
    }
    if (left_-- <= 0) return false;
    if (!store_) {
      generate(out);
      return true;
    }
    std::lock_guard lock(store_->mutex);
    if (index_ < store_->batches.size()) {
      out = *store_->batches[index_++];
      behind_ = true;  // this source's own stream has not moved
      return true;
    }
    if (behind_) {
      *gens_ = store_->after->gens;
      *rng_ = store_->after->rng;
      behind_ = false;
    }
    // Generated under the lock: a policy that wants this batch too waits for it rather than making it again.
    generate(out);
    ++index_;
    const size_t bytes = out.experts.size() * sizeof(uint16_t) + out.weights.size() * sizeof(float);
    if (g_stored_bytes.fetch_add(bytes) + bytes > kStoredBatchBytes) {
      g_stored_bytes -= bytes;  // over the budget: not kept
    } else {
      store_->bytes += bytes;
      store_->batches.push_back(std::make_shared<const BatchRouting>(out));
      store_->after = StreamState{*gens_, *rng_};
    }
    return true;
  }

 private:
  void generate(BatchRouting& out) {
    if (gens_->size() == 1) {
      (*gens_)[0].next(out);
      return;
    }
    // Per batch: one draw for the whole batch. Per sequence: one draw per sequence and none for the batch, so the
    // stream is the one per-sequence runs always had. Mixture: the batch's weights, then one draw per sequence.
    const size_t n = gens_->size();
    const bool per_batch = draw_.kind == TopicDraw::kBatch;
    const size_t batch_topic = per_batch ? static_cast<size_t>((*rng_)() % n) : 0;
    if (draw_.kind == TopicDraw::kMixture) {
      mix_.resize(n);
      dirichlet(*rng_, draw_.alpha, mix_);
      for (size_t t = 1; t < n; ++t) mix_[t] += mix_[t - 1];  // cumulative
    }
    for (int s = 0; s < sequences_; ++s) {
      size_t topic = batch_topic;
      if (draw_.kind == TopicDraw::kSequence) {
        topic = static_cast<size_t>((*rng_)() % n);
      } else if (draw_.kind == TopicDraw::kMixture) {
        const double u = uniform01(*rng_) * mix_[n - 1];
        topic = static_cast<size_t>(std::upper_bound(mix_.begin(), mix_.end() - 1, u) - mix_.begin());
      }
      (*gens_)[topic].next(part_);
      if (s == 0) out.resize(sequences_ * seq_tokens_, part_.layers, part_.top_k, false);
      out.flags = 0;
      for (int l = 0; l < part_.layers; ++l) {
        std::copy(
            part_.experts.begin() + static_cast<std::ptrdiff_t>(part_.index(l, 0)),
            part_.experts.begin() + static_cast<std::ptrdiff_t>(part_.index(l, 0) + size_t(seq_tokens_) * part_.top_k),
            out.experts.begin() + static_cast<std::ptrdiff_t>(out.index(l, s * seq_tokens_)));
      }
    }
  }

  std::shared_ptr<std::vector<traces::SynthGenerator>> gens_;
  std::shared_ptr<std::mt19937_64> rng_;
  int sequences_, seq_tokens_;
  int64_t left_;
  TopicDraw draw_;
  std::vector<double> mix_;  // kMixture: the current batch's cumulative topic weights
  BatchRouting part_;
  RoutingSource* before_ = nullptr;  // owned by the same RoutingSources, which outlives both
  std::string stream_key_;
  std::shared_ptr<BatchStore> store_;  // evaluated sources: the batches shared with the point's other policies
  size_t index_ = 0;                   // the next batch of the evaluation
  bool behind_ = false;                // batches were read from store_: gens_ and rng_ are at an earlier batch
};

// Batches [first, last) of a trace file.
class TraceSource : public RoutingSource {
 public:
  TraceSource(const std::string& path, uint64_t first, uint64_t last) : reader_(path), i_(first), last_(last) {}
  bool next(BatchRouting& out) override {
    if (i_ >= last_) return false;
    reader_.read(i_++, out);
    return true;
  }
  const traces::TraceHeader& header() const { return reader_.header(); }

 private:
  traces::TraceReader reader_;
  uint64_t i_, last_;
};

void check_trace(const std::string& path, const traces::TraceHeader& h, const ModelSpec& m) {
  if (h.kind != traces::TraceKind::kRouting) {
    throw InputError(format_location(path, "", "inference replays routing traces (token-level); this one is counts"));
  }
  if (h.n_layers() != m.moe_layer_count() || h.experts != m.experts) {
    throw InputError(format_location(
        path, "",
        fmt::format("the trace has {} MoE layers of {} experts; the model has {} MoE layers of {} experts (set "
                    "model.layers / model.experts to match)",
                    h.n_layers(), h.experts, m.moe_layer_count(), m.experts)));
  }
}

}  // namespace

RoutingSources make_routing_sources(const WorkloadSpec& w, const ModelSpec& m, uint64_t seed, bool share_batches) {
  RoutingSources s;
  const int layers = m.moe_layer_count(), E = m.experts, k = m.top_k;
  const auto tokens = static_cast<int>(w.tokens_per_gpu());
  const std::string& kind = w.routing.kind;
  if (kind == "balanced") {
    s.profile = std::make_unique<BalancedSource>(tokens, layers, E, k, w.routing.profile_batches);
    s.eval = std::make_unique<BalancedSource>(tokens, layers, E, k, w.batches);
    s.description = "balanced";
    return s;
  }
  if (kind == "uniform" || kind == "zipf") {
    auto gens = std::make_shared<std::vector<traces::SynthGenerator>>();
    const auto topics = static_cast<int>(w.routing.topics);
    for (int t = 0; t < topics; ++t) {
      traces::SynthParams p;
      p.experts = E;
      p.top_k = k;
      p.layers = layers;
      p.tokens = topics == 1 ? tokens : static_cast<int>(w.seq_len);
      p.zipf = kind == "uniform" ? 0.0 : w.routing.zipf_s;
      p.rho = w.routing.rho;
      p.seed = topics == 1 ? seed : derive_seed(seed, 1000 + static_cast<uint64_t>(t));
      gens->emplace_back(p);
    }
    auto rng = std::make_shared<std::mt19937_64>(derive_seed(seed, 999));
    // One stream of batches: the profiling ones first, then the evaluated ones (never the same batches).
    TopicDraw draw;
    if (w.routing.topic_per == "batch") draw.kind = TopicDraw::kBatch;
    if (w.routing.topic_per == "mixture") draw = {TopicDraw::kMixture, w.routing.topic_alpha};
    s.profile = std::make_unique<SynthSource>(gens, rng, static_cast<int>(w.batch_size), static_cast<int>(w.seq_len),
                                              w.routing.profile_batches, draw);
    auto eval = std::make_unique<SynthSource>(gens, rng, static_cast<int>(w.batch_size), static_cast<int>(w.seq_len),
                                              w.batches, draw);
    s.description = fmt::format("{} (s = {}, rho = {}, topics = {} per {}{})", kind,
                                kind == "uniform" ? 0.0 : w.routing.zipf_s, w.routing.rho, topics, w.routing.topic_per,
                                draw.kind == TopicDraw::kMixture ? fmt::format(", alpha {}", draw.alpha) : "");
    eval->follow(s.profile.get(),
                 fmt::format("{}|{}|{}|{}|{}|{}|{}|{}|{}", s.description, E, layers, k, seed, tokens, w.batch_size,
                             w.seq_len, w.routing.profile_batches),
                 share_batches);
    s.eval = std::move(eval);
    return s;
  }
  // trace
  auto eval = std::make_unique<TraceSource>(w.routing.trace, 0, 0);
  const traces::TraceHeader h = eval->header();
  check_trace(w.routing.trace, h, m);
  uint64_t first = 0;
  if (!w.routing.profile_trace.empty()) {
    auto prof = std::make_unique<TraceSource>(w.routing.profile_trace, 0, 0);
    check_trace(w.routing.profile_trace, prof->header(), m);
    const uint64_t pb = prof->header().batches;
    s.profile = std::make_unique<TraceSource>(w.routing.profile_trace, 0, pb);
  } else {
    if (h.batches < 2) throw InputError(format_location(w.routing.trace, "", "needs at least 2 batches to split"));
    first = h.batches / 2;
    s.profile = std::make_unique<TraceSource>(w.routing.trace, 0, first);
  }
  const uint64_t last = std::min<uint64_t>(h.batches, first + static_cast<uint64_t>(w.batches));
  s.eval = std::make_unique<TraceSource>(w.routing.trace, first, last);
  s.description = fmt::format("trace {} batches [{}, {})", w.routing.trace, first, last);
  return s;
}

}  // namespace lina::sim

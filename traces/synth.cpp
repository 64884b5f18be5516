#include "traces/synth.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "sched/error.hpp"
#include "sched/random.hpp"
#include "traces/writer.hpp"

namespace lina::traces {

void SynthParams::validate() const {
  auto bad = [](const std::string& m) { throw InputError("synth: " + m); };
  if (experts < 1 || experts > 65535) bad(fmt::format("--experts {} is outside 1..65535", experts));
  if (top_k < 1 || top_k > experts) bad(fmt::format("--top-k {} is outside 1..experts ({})", top_k, experts));
  if (layers < 1 || layers > kMaxLayers) bad(fmt::format("--layers {} is outside 1..{}", layers, kMaxLayers));
  if (batches < 1) bad("--batches must be at least 1");
  if (tokens < 1) bad("--tokens must be at least 1");
  if (!(zipf >= 0 && zipf <= 100)) bad(fmt::format("--zipf {} is outside 0..100", zipf));
  if (!(rho >= 0 && rho <= 1)) bad(fmt::format("--rho {} is outside 0..1", rho));
}

nlohmann::ordered_json SynthParams::to_json() const {
  nlohmann::ordered_json j;
  j["experts"] = experts;
  j["top_k"] = top_k;
  j["layers"] = layers;
  j["batches"] = batches;
  j["tokens"] = tokens;
  j["zipf"] = zipf;
  j["rho"] = rho;
  j["seed"] = seed;
  j["weights"] = weights;
  return j;
}

std::string SynthParams::command_line() const {
  return fmt::format(
      "lina trace synth --experts {} --top-k {} --layers {} --batches {} --tokens {} --zipf {:.4g} "
      "--rho {:.4g} --seed {}{}",
      experts, top_k, layers, batches, tokens, zipf, rho, seed, weights ? " --weights" : "");
}

SynthGenerator::SynthGenerator(const SynthParams& p) : p_(p), rng_(derive_seed(p.seed, 0)) {
  p_.validate();
  const size_t E = size_t(p_.experts);
  for (int l = 0; l < p_.layers; ++l) {
    std::mt19937_64 r(derive_seed(p_.seed, 1 + uint64_t(l)));
    std::vector<uint16_t> perm(E);
    for (size_t e = 0; e < E; ++e) perm[e] = uint16_t(e);
    shuffle(perm, r);
    std::vector<uint16_t> inv(E);
    for (size_t rank = 0; rank < E; ++rank) inv[perm[rank]] = uint16_t(rank);
    rank_to_expert_.push_back(std::move(perm));
    expert_to_rank_.push_back(std::move(inv));
  }
  double acc = 0;
  std::vector<double> cdf;
  for (size_t r = 0; r < E; ++r) {
    acc += std::pow(double(r + 1), -p_.zipf);
    cdf.push_back(acc);
  }
  ranks_ = RankSampler(std::move(cdf));
}

RankSampler::RankSampler(std::vector<double> cdf) : cdf_(std::move(cdf)) {
  if (cdf_.empty() || !(cdf_.back() > 0)) return;
  const size_t buckets = 64 * cdf_.size();
  scale_ = static_cast<double>(buckets) / cdf_.back();
  // bucket_[i] counts the weights in the buckets before i (a prefix sum); a bucket that holds a weight is mixed.
  bucket_.assign(buckets, 0);
  std::vector<uint8_t> mixed(buckets, 0);
  for (double c : cdf_) {
    const double x = c * scale_;
    if (x < static_cast<double>(buckets)) {
      const auto i = static_cast<size_t>(x);
      mixed[i] = 1;
      if (i + 1 < buckets) ++bucket_[i + 1];
    }
  }
  for (size_t i = 1; i < buckets; ++i) bucket_[i] += bucket_[i - 1];
  for (size_t i = 0; i < buckets; ++i) {
    if (mixed[i]) bucket_[i] = kMixed;
  }
}

TraceHeader SynthGenerator::header() const {
  TraceHeader h;
  h.model = p_.model;
  for (int l = 0; l < p_.layers; ++l) h.layers.push_back(l);
  h.experts = p_.experts;
  h.top_k = p_.top_k;
  h.has_weights = p_.weights;
  h.ordered = true;
  h.source = "lina trace synth";
  h.dataset = "synthetic";
  h.licence = "CC0-1.0";
  h.notes = nlohmann::json::parse(p_.to_json().dump());
  return h;
}

size_t RankSampler::count_at(double u) const {
  // The first rank whose cumulative weight exceeds u (std::upper_bound). With few experts, counting the weights at
  // or below u gives the same index without the binary search's unpredictable branches.
  if (cdf_.size() > 64) return size_t(std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  size_t r = 0;
  for (double c : cdf_) r += c <= u;
  return r;
}

uint16_t SynthGenerator::draw_rank_excluding(const uint16_t* chosen, int n) {
  const std::vector<double>& cdf = ranks_.cdf();
  const double total = cdf.back();
  // Rejection is fast while the chosen ranks hold little of the mass; a deterministic fallback bounds the work.
  for (int attempt = 0; attempt < 64; ++attempt) {
    const double u = uniform01(rng_) * total;
    size_t r = ranks_.rank_at(u);
    if (r >= cdf.size()) r = cdf.size() - 1;
    if (std::find(chosen, chosen + n, uint16_t(r)) == chosen + n) return uint16_t(r);
  }
  double rest = 0;
  for (size_t r = 0; r < cdf.size(); ++r) {
    if (std::find(chosen, chosen + n, uint16_t(r)) == chosen + n) rest += cdf[r] - (r ? cdf[r - 1] : 0.0);
  }
  double u = uniform01(rng_) * rest;
  size_t last = 0;
  for (size_t r = 0; r < cdf.size(); ++r) {
    if (std::find(chosen, chosen + n, uint16_t(r)) != chosen + n) continue;
    last = r;
    u -= cdf[r] - (r ? cdf[r - 1] : 0.0);
    if (u < 0) return uint16_t(r);
  }
  return uint16_t(last);
}

void SynthGenerator::next(BatchRouting& out) {
  const int T = p_.tokens, L = p_.layers, k = p_.top_k;
  out.resize(T, L, k, p_.weights);
  out.flags = 0;
  std::vector<uint16_t> prev(static_cast<size_t>(k)), cur(static_cast<size_t>(k));
  std::vector<double> w(static_cast<size_t>(k));
  for (int t = 0; t < T; ++t) {
    for (int l = 0; l < L; ++l) {
      for (int j = 0; j < k; ++j) {
        bool follow = l > 0 && p_.rho > 0 && uniform01(rng_) < p_.rho;
        // Following keeps the rank: succ_l(e) = pi_{l+1}(rank_l(e)).
        if (follow && std::find(cur.begin(), cur.begin() + j, prev[size_t(j)]) != cur.begin() + j) follow = false;
        cur[size_t(j)] = follow ? prev[size_t(j)] : draw_rank_excluding(cur.data(), j);
        out.experts[out.index(l, t, j)] = rank_to_expert_[size_t(l)][cur[size_t(j)]];
      }
      if (p_.weights) {
        double sum = 0;
        for (auto& x : w) sum += (x = 0.05 + uniform01(rng_));
        std::sort(w.begin(), w.end(), std::greater<>());
        for (int j = 0; j < k; ++j) out.weights[out.index(l, t, j)] = float(w[size_t(j)] / sum);
      }
      std::swap(prev, cur);  // this layer's choices become the previous ones; cur is overwritten before it is read
    }
  }
}

uint64_t write_synth(const std::string& path, const SynthParams& p) {
  SynthGenerator g(p);
  TraceWriter w(path, g.header());
  BatchRouting b;
  for (uint64_t i = 0; i < p.batches; ++i) {
    g.next(b);
    w.write(b);
  }
  w.close();
  return w.header().tokens;
}

namespace {

struct Measured {
  double skew = 0;
  double same_path = 0;
};

// Skew (mean over layers of max/mean) and same-path mean of one synthetic sample.
Measured measure(SynthParams p, bool set_mode, int min_group) {
  SynthGenerator g(p);
  BatchRouting b;
  g.next(b);
  Measured m;
  const int L = p.layers, k = p.top_k, E = p.experts;
  std::vector<std::vector<uint16_t>> ids(static_cast<size_t>(L));
  for (int l = 0; l < L; ++l) {
    std::vector<uint64_t> c(static_cast<size_t>(E));
    auto& v = ids[size_t(l)];
    for (int t = 0; t < b.tokens; ++t) {
      for (int s = 0; s < k; ++s) ++c[b.expert(l, t, s)];
      if (set_mode) {
        for (int s = 0; s < k; ++s) v.push_back(b.expert(l, t, s));
      } else {
        v.push_back(b.expert(l, t, 0));
      }
    }
    const uint64_t mx = *std::max_element(c.begin(), c.end());
    m.skew += double(mx) * double(E) / (double(b.tokens) * double(k)) / double(L);
  }
  PairAccumulator acc;
  for (int l = 0; l + 1 < L; ++l) {
    acc.add(same_path_pair(ids[size_t(l)], ids[size_t(l + 1)], set_mode ? k : 1, E, set_mode, min_group, 1));
  }
  m.same_path = acc.result().mean;
  return m;
}

}  // namespace

FitResult fit_synth(const TraceStats& s) {
  const TraceHeader& h = s.header;
  FitResult f;
  SynthParams& p = f.params;
  p.experts = h.experts;
  p.top_k = h.top_k;
  p.layers = int(s.layers.size());
  p.batches = std::max<uint64_t>(1, s.batches);
  p.tokens = std::max(1, int(std::lround(std::isnan(s.batch_tokens_median) ? 1.0 : s.batch_tokens_median)));
  p.weights = h.has_weights;
  p.model = h.model + " (synthetic fit)";
  f.mode = s.overall.top1 ? "top1" : "set";
  const bool set_mode = !s.overall.top1;
  f.target_skew = s.overall.skew_max_over_mean;
  const std::optional<SamePath>& sp = set_mode ? s.overall.set : s.overall.top1;
  f.target_same_path = sp ? sp->mean : kNaN;
  if (!std::isfinite(f.target_skew)) throw InputError("fit: the trace has no recorded choices to fit");

  // Samples of the trace's size (the skew of a finite sample is biased upwards), at most 8 layers for speed.
  SynthParams q = p;
  q.batches = 1;
  q.tokens = int(std::clamp<uint64_t>(s.tokens, 200, 50000));
  q.layers = std::clamp(p.layers, 2, 8);
  q.seed = 12345;
  q.weights = false;
  const int min_group = s.options.min_group;

  q.rho = 0;
  double lo = 0, hi = 8;
  for (int i = 0; i < 24; ++i) {
    q.zipf = 0.5 * (lo + hi);
    (measure(q, set_mode, min_group).skew < f.target_skew ? lo : hi) = q.zipf;
  }
  q.zipf = p.zipf = 0.5 * (lo + hi);
  if (std::isfinite(f.target_same_path)) {
    lo = 0, hi = 1;
    for (int i = 0; i < 20; ++i) {
      q.rho = 0.5 * (lo + hi);
      (measure(q, set_mode, min_group).same_path < f.target_same_path ? lo : hi) = q.rho;
    }
    q.rho = p.rho = 0.5 * (lo + hi);
  }
  const Measured m = measure(q, set_mode, min_group);
  f.fitted_skew = m.skew;
  f.fitted_same_path = m.same_path;
  return f;
}

}  // namespace lina::traces

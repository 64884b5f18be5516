#include "traces/stats.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "sched/error.hpp"
#include "sched/random.hpp"

namespace lina::traces {
namespace {

bool keep_batch(BatchFilter f, uint32_t flags) {
  if (f == BatchFilter::kAll) return true;
  const bool prefill = (flags & kBatchPrefill) != 0;
  return f == BatchFilter::kPrefill ? prefill : !prefill;
}

// Accumulates one layer's popularity: whole trace and per batch.
struct SkewAcc {
  std::vector<uint64_t> total;
  double batch_mean_sum = 0;
  uint64_t batch_mean_n = 0;
  double batch_min_sum = 0;
  uint64_t batch_min_n = 0;

  void add_batch(std::span<const uint32_t> counts) {
    if (total.empty()) total.assign(counts.size(), 0);
    uint64_t sum = 0;
    uint32_t mx = 0, mn = UINT32_MAX;
    for (size_t e = 0; e < counts.size(); ++e) {
      total[e] += counts[e];
      sum += counts[e];
      mx = std::max(mx, counts[e]);
      mn = std::min(mn, counts[e]);
    }
    if (sum == 0) return;  // nothing recorded at this layer in this batch
    batch_mean_sum += double(mx) * double(counts.size()) / double(sum);
    ++batch_mean_n;
    if (mn > 0) {
      batch_min_sum += double(mx) / double(mn);
      ++batch_min_n;
    }
  }
  void fill(LayerStats& s) const {
    uint64_t sum = 0, mx = 0, mn = UINT64_MAX;
    for (uint64_t c : total) {
      sum += c;
      mx = std::max(mx, c);
      mn = std::min(mn, c);
    }
    if (sum > 0) {
      s.skew_max_over_mean = double(mx) * double(total.size()) / double(sum);
      s.skew_max_over_min = mn == 0 ? std::numeric_limits<double>::infinity() : double(mx) / double(mn);
    }
    if (batch_mean_n) s.batch_skew_max_over_mean = batch_mean_sum / double(batch_mean_n);
    if (batch_min_n) s.batch_skew_max_over_min = batch_min_sum / double(batch_min_n);
  }
};

// Counts of next experts per group, and the two most common (ties: the lower id).
struct GroupTable {
  int experts;
  std::vector<uint32_t> cnt, size;
  std::vector<uint16_t> m1, m2;
  explicit GroupTable(int e) : experts(e), cnt(size_t(e) * size_t(e)), size(size_t(e)), m1(size_t(e)), m2(size_t(e)) {}
  void finish() {
    for (int g = 0; g < experts; ++g) {
      const uint32_t* row = cnt.data() + size_t(g) * size_t(experts);
      int a = 0;
      for (int e = 1; e < experts; ++e) {
        if (row[e] > row[a]) a = e;
      }
      int b = a == 0 ? 1 : 0;
      for (int e = 0; e < experts; ++e) {
        if (e != a && row[e] > row[b]) b = e;
      }
      m1[size_t(g)] = uint16_t(a);
      m2[size_t(g)] = uint16_t(experts > 1 ? b : a);
    }
  }
};

bool contains(const uint16_t* set, int k, uint16_t e) {
  for (int s = 0; s < k; ++s) {
    if (set[s] == e) return true;
  }
  return false;
}

// One pass: groups by `cur`, next choices `next` of token perm[j] for the j-th valid token.
void pair_pass(const std::vector<uint16_t>& cur, const std::vector<uint16_t>& next, int k, int experts,
               const std::vector<uint32_t>& tokens, const std::vector<uint32_t>& next_of, int min_group,
               double& share_sum, uint64_t& hits_out, double& k2_share_sum, uint64_t& k2_hits_out, uint64_t& groups,
               uint64_t& members) {
  GroupTable t(experts);
  for (size_t j = 0; j < tokens.size(); ++j) {
    const uint16_t* c = cur.data() + size_t(tokens[j]) * size_t(k);
    const uint16_t* n = next.data() + size_t(next_of[j]) * size_t(k);
    for (int s = 0; s < k; ++s) {
      const size_t g = c[s];
      ++t.size[g];
      uint32_t* row = t.cnt.data() + g * size_t(experts);
      for (int r = 0; r < k; ++r) ++row[n[r]];
    }
  }
  t.finish();
  std::vector<uint32_t> hit(static_cast<size_t>(experts)), hit2(static_cast<size_t>(experts));
  for (size_t j = 0; j < tokens.size(); ++j) {
    const uint16_t* c = cur.data() + size_t(tokens[j]) * size_t(k);
    const uint16_t* n = next.data() + size_t(next_of[j]) * size_t(k);
    for (int s = 0; s < k; ++s) {
      const size_t g = c[s];
      const bool h1 = contains(n, k, t.m1[g]);
      hit[g] += h1;
      hit2[g] += h1 || contains(n, k, t.m2[g]);
    }
  }
  uint64_t gr = 0, mem = 0;
  for (size_t g = 0; g < size_t(experts); ++g) {
    if (t.size[g] == 0 || t.size[g] < uint32_t(min_group)) continue;
    ++gr;
    mem += t.size[g];
    share_sum += double(hit[g]) / double(t.size[g]);
    k2_share_sum += double(hit2[g]) / double(t.size[g]);
    hits_out += hit[g];
    k2_hits_out += hit2[g];
  }
  groups = gr;
  members = mem;
}

double ratio(double a, double b) { return b > 0 ? a / b : kNaN; }

}  // namespace

void PairAccumulator::add(const PairAccumulator& o) {
  share_sum += o.share_sum;
  shuffled_share_sum += o.shuffled_share_sum;
  k2_share_sum += o.k2_share_sum;
  shuffled_k2_share_sum += o.shuffled_k2_share_sum;
  hits += o.hits;
  shuffled_hits += o.shuffled_hits;
  k2_hits += o.k2_hits;
  shuffled_k2_hits += o.shuffled_k2_hits;
  groups += o.groups;
  members += o.members;
}

SamePath PairAccumulator::result() const {
  SamePath p;
  p.groups = groups;
  p.members = members;
  const double g = double(groups), m = double(members);
  p.mean = ratio(share_sum, g);
  p.weighted = ratio(double(hits), m);
  p.shuffled_mean = ratio(shuffled_share_sum, g);
  p.shuffled_weighted = ratio(double(shuffled_hits), m);
  p.k2_mean = ratio(k2_share_sum, g);
  p.k2_weighted = ratio(double(k2_hits), m);
  p.shuffled_k2_mean = ratio(shuffled_k2_share_sum, g);
  p.shuffled_k2_weighted = ratio(double(shuffled_k2_hits), m);
  return p;
}

PairAccumulator same_path_pair(const std::vector<uint16_t>& cur, const std::vector<uint16_t>& next, int top_k,
                               int experts, bool /*set_mode*/, int min_group, uint64_t seed) {
  // With one id per token the set-mode algorithm is exactly the top-1 definition, so both modes share it: the
  // caller passes top-1 ids (k = 1) for top1 mode and the whole sets for set mode.
  const size_t k = size_t(top_k);
  const size_t n = cur.size() / k;
  std::vector<uint32_t> tokens;
  tokens.reserve(n);
  for (size_t t = 0; t < n; ++t) {
    if (cur[t * k] != kNoExpert && next[t * k] != kNoExpert) tokens.push_back(uint32_t(t));
  }
  PairAccumulator a;
  uint64_t groups = 0, members = 0;
  pair_pass(cur, next, top_k, experts, tokens, tokens, min_group, a.share_sum, a.hits, a.k2_share_sum, a.k2_hits,
            a.groups, a.members);
  std::vector<uint32_t> perm = tokens;
  std::mt19937_64 rng(seed);
  shuffle(perm, rng);
  pair_pass(cur, next, top_k, experts, tokens, perm, min_group, a.shuffled_share_sum, a.shuffled_hits,
            a.shuffled_k2_share_sum, a.shuffled_k2_hits, groups, members);
  return a;
}

TraceStats compute_stats(const std::string& path, const StatsOptions& options) {
  TraceReader r(path);
  return compute_stats(r, options);
}

TraceStats compute_stats(TraceReader& reader, const StatsOptions& options) {
  TraceStats out;
  out.file = reader.path();
  out.header = reader.header();
  out.options = options;
  const TraceHeader& h = out.header;
  const int L = h.n_layers(), E = h.experts, k = h.top_k;
  for (int id : options.exclude_layers) {
    if (h.layer_index(id) < 0) {
      throw InputError(
          format_location(reader.path(), "", fmt::format("--exclude-layer {}: the trace has no such layer", id)));
    }
  }
  if (options.min_group < 1) throw InputError("--min-group must be at least 1");
  std::vector<bool> kept(size_t(L), true);
  for (int id : options.exclude_layers) kept[size_t(h.layer_index(id))] = false;

  const bool routing = h.kind == TraceKind::kRouting;
  const bool top1_mode = routing && (k == 1 || h.ordered || h.has_weights);
  const bool set_mode = routing && k > 1;
  // The same-path statistic needs every token's choices; they are kept per layer (2 bytes per id).
  std::vector<std::vector<uint16_t>> ids(routing ? size_t(L) : 0), top1(routing && k > 1 ? size_t(L) : 0);
  std::vector<SkewAcc> skew(static_cast<size_t>(L));
  std::vector<uint32_t> batch_tokens;

  auto add_counts = [&](const LayerCounts& c) {
    for (int l = 0; l < L; ++l) skew[size_t(l)].add_batch(c.layer(l));
  };
  if (routing) {
    BatchRouting b;
    while (reader.next(b)) {
      if (!keep_batch(options.batches, b.flags)) continue;
      batch_tokens.push_back(uint32_t(b.tokens));
      add_counts(count_experts(b, E));
      for (int l = 0; l < L; ++l) {
        const uint16_t* p = b.experts.data() + b.index(l, 0);
        ids[size_t(l)].insert(ids[size_t(l)].end(), p, p + size_t(b.tokens) * size_t(k));
        if (k > 1 && top1_mode) {
          auto& t1 = top1[size_t(l)];
          for (int t = 0; t < b.tokens; ++t) {
            int best = 0;
            if (b.has_weights()) {
              for (int s = 1; s < k; ++s) {
                if (b.weight(l, t, s) > b.weight(l, t, best)) best = s;
              }
            }
            t1.push_back(b.expert(l, t, best));
          }
        }
      }
    }
  } else {
    LayerCounts c;
    while (reader.next(c)) {
      if (!keep_batch(options.batches, c.flags)) continue;
      batch_tokens.push_back(uint32_t(c.tokens));
      add_counts(c);
    }
  }
  out.batches = batch_tokens.size();
  for (uint32_t t : batch_tokens) out.tokens += t;
  if (!batch_tokens.empty()) {
    std::sort(batch_tokens.begin(), batch_tokens.end());
    const size_t n = batch_tokens.size();
    out.batch_tokens_median =
        n % 2 ? double(batch_tokens[n / 2]) : 0.5 * (double(batch_tokens[n / 2 - 1]) + double(batch_tokens[n / 2]));
  }

  PairAccumulator all_top1, all_set;
  double sum_mean = 0, sum_min = 0, sum_bmean = 0, sum_bmin = 0;
  int n_mean = 0, n_min = 0, n_bmean = 0, n_bmin = 0;
  for (int l = 0; l < L; ++l) {
    if (!kept[size_t(l)]) continue;
    LayerStats s;
    s.layer = h.layers[size_t(l)];
    skew[size_t(l)].fill(s);
    if (l + 1 < L && kept[size_t(l + 1)] && routing) {
      s.next_layer = h.layers[size_t(l + 1)];
      const uint64_t seed = derive_seed(options.seed, uint64_t(l));
      if (top1_mode) {
        const auto& a = k > 1 ? top1[size_t(l)] : ids[size_t(l)];
        const auto& b = k > 1 ? top1[size_t(l + 1)] : ids[size_t(l + 1)];
        const PairAccumulator p = same_path_pair(a, b, 1, E, false, options.min_group, seed);
        all_top1.add(p);
        s.top1 = p.result();
      }
      if (set_mode) {
        const PairAccumulator p =
            same_path_pair(ids[size_t(l)], ids[size_t(l + 1)], k, E, true, options.min_group, seed);
        all_set.add(p);
        s.set = p.result();
      }
    }
    if (std::isfinite(s.skew_max_over_mean)) {
      sum_mean += s.skew_max_over_mean;
      ++n_mean;
      out.skew_max_over_mean_lo =
          n_mean == 1 ? s.skew_max_over_mean : std::min(out.skew_max_over_mean_lo, s.skew_max_over_mean);
      out.skew_max_over_mean_hi =
          n_mean == 1 ? s.skew_max_over_mean : std::max(out.skew_max_over_mean_hi, s.skew_max_over_mean);
    }
    if (std::isfinite(s.skew_max_over_min)) sum_min += s.skew_max_over_min, ++n_min;
    if (std::isfinite(s.batch_skew_max_over_mean)) sum_bmean += s.batch_skew_max_over_mean, ++n_bmean;
    if (std::isfinite(s.batch_skew_max_over_min)) sum_bmin += s.batch_skew_max_over_min, ++n_bmin;
    out.layers.push_back(std::move(s));
  }
  // Overall skew: the mean over layers of the per-layer values (max/min: over the layers where it is finite).
  out.overall.skew_max_over_mean = n_mean ? sum_mean / n_mean : kNaN;
  out.overall.skew_max_over_min = n_min ? sum_min / n_min : kNaN;
  out.overall.batch_skew_max_over_mean = n_bmean ? sum_bmean / n_bmean : kNaN;
  out.overall.batch_skew_max_over_min = n_bmin ? sum_bmin / n_bmin : kNaN;
  if (top1_mode) out.overall.top1 = all_top1.result();
  if (set_mode) out.overall.set = all_set.result();
  return out;
}

namespace {

nlohmann::ordered_json num(double v) {
  if (std::isnan(v) || std::isinf(v)) return nullptr;
  return v;
}

nlohmann::ordered_json same_path_json(const SamePath& p) {
  nlohmann::ordered_json j;
  j["same_path_mean"] = num(p.mean);
  j["same_path_weighted"] = num(p.weighted);
  j["same_path_shuffled_mean"] = num(p.shuffled_mean);
  j["same_path_shuffled_weighted"] = num(p.shuffled_weighted);
  j["same_path_k2_mean"] = num(p.k2_mean);
  j["same_path_k2_weighted"] = num(p.k2_weighted);
  j["same_path_shuffled_k2_mean"] = num(p.shuffled_k2_mean);
  j["same_path_shuffled_k2_weighted"] = num(p.shuffled_k2_weighted);
  j["groups"] = p.groups;
  j["members"] = p.members;
  return j;
}

nlohmann::ordered_json layer_json(const LayerStats& s) {
  nlohmann::ordered_json j;
  if (s.layer >= 0) {
    j["layer"] = s.layer;
    j["next_layer"] = s.next_layer >= 0 ? nlohmann::ordered_json(s.next_layer) : nlohmann::ordered_json(nullptr);
  }
  j["skew_max_over_mean"] = num(s.skew_max_over_mean);
  j["skew_max_over_min"] = num(s.skew_max_over_min);
  j["batch_skew_max_over_mean"] = num(s.batch_skew_max_over_mean);
  j["batch_skew_max_over_min"] = num(s.batch_skew_max_over_min);
  if (s.top1) j["top1"] = same_path_json(*s.top1);
  if (s.set) j["set"] = same_path_json(*s.set);
  return j;
}

const char* filter_name(BatchFilter f) {
  return f == BatchFilter::kAll ? "all" : f == BatchFilter::kPrefill ? "prefill" : "decode";
}

std::string f3(double v) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return "inf";
  return fmt::format("{:.3f}", v);
}

}  // namespace

nlohmann::ordered_json stats_to_json(const TraceStats& s) {
  nlohmann::ordered_json j;
  j["schema"] = "lina.trace_stats/1";
  j["file"] = s.file;
  j["model"] = s.header.model;
  j["source"] = s.header.source;
  j["dataset"] = s.header.dataset;
  j["kind"] = kind_name(s.header.kind);
  j["experts"] = s.header.experts;
  j["top_k"] = s.header.top_k;
  j["layers"] = s.header.layers;
  j["excluded_layers"] = s.options.exclude_layers;
  j["batch_filter"] = filter_name(s.options.batches);
  j["min_group"] = s.options.min_group;
  j["seed"] = s.options.seed;
  j["batches"] = s.batches;
  j["tokens"] = s.tokens;
  j["batch_tokens_median"] = num(s.batch_tokens_median);
  auto overall = layer_json(s.overall);
  overall["skew_max_over_mean_min_layer"] = num(s.skew_max_over_mean_lo);
  overall["skew_max_over_mean_max_layer"] = num(s.skew_max_over_mean_hi);
  j["overall"] = overall;
  auto& per = j["per_layer"] = nlohmann::ordered_json::array();
  for (const auto& l : s.layers) per.push_back(layer_json(l));
  return j;
}

std::string stats_to_text(const TraceStats& s) {
  const auto& h = s.header;
  std::string o;
  o += fmt::format("{}: {} trace of {} ({}), {} experts, top-{}, {} MoE layers\n", s.file, kind_name(h.kind), h.model,
                   h.source.empty() ? "unknown source" : h.source, h.experts, h.top_k, h.layers.size());
  o += fmt::format("batches {} ({}), tokens {}, median tokens per batch {}\n", s.batches,
                   filter_name(s.options.batches), s.tokens, f3(s.batch_tokens_median));
  if (!s.options.exclude_layers.empty()) {
    o += fmt::format("excluded layers: {}\n", fmt::join(s.options.exclude_layers, ", "));
  }
  o += fmt::format("\npopularity skew (mean over layers): max/mean {} (layers {}..{}), max/min {}\n",
                   f3(s.overall.skew_max_over_mean), f3(s.skew_max_over_mean_lo), f3(s.skew_max_over_mean_hi),
                   f3(s.overall.skew_max_over_min));
  o += fmt::format("per-batch skew (mean over batches and layers): max/mean {}, max/min {}\n",
                   f3(s.overall.batch_skew_max_over_mean), f3(s.overall.batch_skew_max_over_min));
  auto sp = [&](const char* name, const std::optional<SamePath>& p) {
    if (!p) return;
    o += fmt::format(
        "same path, {} mode: mean {} (shuffled {}), weighted {} (shuffled {}); k=2: mean {} (shuffled "
        "{}); {} groups of >= {}\n",
        name, f3(p->mean), f3(p->shuffled_mean), f3(p->weighted), f3(p->shuffled_weighted), f3(p->k2_mean),
        f3(p->shuffled_k2_mean), p->groups, s.options.min_group);
  };
  sp("top1", s.overall.top1);
  sp("set", s.overall.set);
  o += fmt::format("\n{:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "layer", "next", "max/mean", "max/min",
                   "b.max/mn", "top1", "top1-shuf", "set", "set-shuf");
  for (const auto& l : s.layers) {
    o += fmt::format("{:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", l.layer,
                     l.next_layer >= 0 ? std::to_string(l.next_layer) : "-", f3(l.skew_max_over_mean),
                     f3(l.skew_max_over_min), f3(l.batch_skew_max_over_mean), f3(l.top1 ? l.top1->mean : kNaN),
                     f3(l.top1 ? l.top1->shuffled_mean : kNaN), f3(l.set ? l.set->mean : kNaN),
                     f3(l.set ? l.set->shuffled_mean : kNaN));
  }
  return o;
}

}  // namespace lina::traces

#include "traces/estimate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "sched/error.hpp"
#include "sched/inference_estimator.hpp"
#include "sched/random.hpp"
#include "traces/reader.hpp"
#include "traces/writer.hpp"

namespace lina::traces {
namespace {

// Top-1 choice per (layer, token): the first slot, or the highest-weight slot where weights exist.
void top1_of(const BatchRouting& b, std::vector<uint16_t>& out) {
  out.resize(size_t(b.layers) * size_t(b.tokens));
  for (int l = 0; l < b.layers; ++l) {
    for (int t = 0; t < b.tokens; ++t) {
      int best = 0;
      if (b.has_weights()) {
        for (int s = 1; s < b.top_k; ++s) {
          if (b.weight(l, t, s) > b.weight(l, t, best)) best = s;
        }
      }
      out[size_t(l) * size_t(b.tokens) + size_t(t)] = b.expert(l, t, best);
    }
  }
}

// The path of the m top-1 choices before layer j (most recent last) as a map key; false when one is unrecorded.
bool path_key(const std::vector<uint16_t>& top1, int tokens, int t, int j, int m, std::string& key) {
  key.resize(size_t(m) * 2);
  for (int i = 0; i < m; ++i) {
    const uint16_t e = top1[size_t(j - m + i) * size_t(tokens) + size_t(t)];
    if (e == kNoExpert) return false;
    key[size_t(2 * i)] = char(e & 0xFF);
    key[size_t(2 * i + 1)] = char(e >> 8);
  }
  return true;
}

// The next-expert counts of one path. Rows start as (expert, count) pairs and become dense (a count per expert) past
// pair_row_limit(experts) distinct experts, as PathEstimator's: with 256 experts and top-8 nearly every path of 3
// choices is seen once, and a dense row each (1 KiB) took 7.7 GB for 4 profiled batches of 32k tokens. Both forms give
// the same sums: an expert with no count adds 0 / sum = +0.0 (dense) or nothing (pairs), and the row total is a sum of
// integers.
struct Row {
  std::vector<std::pair<uint16_t, uint32_t>> pairs;
  std::vector<uint32_t> dense;  // empty while the row is pairs
  uint64_t total = 0;

  void count(uint16_t expert, int experts) {
    ++total;
    if (!dense.empty()) {
      ++dense[expert];
      return;
    }
    for (auto& [e, c] : pairs) {
      if (e == expert) {
        ++c;
        return;
      }
    }
    if (static_cast<int>(pairs.size()) < pair_row_limit(experts)) {
      pairs.emplace_back(expert, 1);
      return;
    }
    dense.assign(static_cast<size_t>(experts), 0);
    for (const auto& [e, c] : pairs) dense[e] = c;
    ++dense[expert];
    pairs = {};
  }
  // est[e] += count(e) / total for every expert.
  void add_shares(std::vector<double>& est) const {
    const auto sum = static_cast<double>(total);
    if (!dense.empty()) {
      for (size_t e = 0; e < dense.size(); ++e) est[e] += double(dense[e]) / sum;
      return;
    }
    for (const auto& [e, c] : pairs) est[e] += double(c) / sum;
  }
};
using Table = std::unordered_map<std::string, Row>;

}  // namespace

std::vector<EstimateResult> evaluate_estimator(const std::string& profile, const std::string& eval,
                                               const std::vector<int>& path_lengths) {
  if (path_lengths.empty()) throw InputError("estimate: no path length");
  for (int L : path_lengths) {
    if (L < 1 || L > 64) throw InputError(fmt::format("--path-length {} is outside 1..64", L));
  }
  if (std::filesystem::exists(profile) && std::filesystem::exists(eval) && std::filesystem::equivalent(profile, eval)) {
    throw InputError(
        "estimate: the profiling and evaluation traces are the same file; split it first (lina trace "
        "split) so that they share no batches");
  }
  TraceReader pr(profile), er(eval);
  const TraceHeader& h = pr.header();
  const TraceHeader& g = er.header();
  for (const auto* r : {&pr, &er}) {
    if (r->header().kind != TraceKind::kRouting) {
      throw InputError(format_location(r->path(), "", "the estimator needs a routing trace"));
    }
  }
  if (h.layers != g.layers || h.experts != g.experts || h.top_k != g.top_k) {
    throw InputError(
        format_location(eval, "", fmt::format("layers, experts or top_k differ from the profiling trace {}", profile)));
  }
  const int Lmax = *std::max_element(path_lengths.begin(), path_lengths.end());
  const int NL = h.n_layers(), E = h.experts, k = h.top_k;
  // tables[j][m]: path of length m before layer j -> next-expert counts.
  std::vector<std::vector<Table>> tables(static_cast<size_t>(NL));
  for (int j = 1; j < NL; ++j) tables[size_t(j)].resize(size_t(std::min(Lmax, j)) + 1);

  BatchRouting b;
  std::vector<uint16_t> top1;
  std::string key;
  while (pr.next(b)) {
    top1_of(b, top1);
    for (int j = 1; j < NL; ++j) {
      for (int t = 0; t < b.tokens; ++t) {
        if (!b.recorded(j, t)) continue;
        for (int m = 0; m <= std::min(Lmax, j); ++m) {
          if (!path_key(top1, b.tokens, t, j, m, key)) break;
          Row& row = tables[size_t(j)][size_t(m)][key];
          for (int s = 0; s < k; ++s) row.count(b.expert(j, t, s), E);
        }
      }
    }
  }

  std::vector<EstimateResult> results(path_lengths.size());
  for (size_t i = 0; i < results.size(); ++i) {
    results[i].path_length = path_lengths[i];
    for (int j = 1; j < NL; ++j) results[i].layers.push_back({h.layers[size_t(j)], 0, 0});
  }
  std::vector<double> est(static_cast<size_t>(E));
  std::vector<uint32_t> actual(static_cast<size_t>(E));
  while (er.next(b)) {
    top1_of(b, top1);
    for (int j = 1; j < NL; ++j) {
      std::fill(actual.begin(), actual.end(), 0);
      int used = 0;
      for (int t = 0; t < b.tokens; ++t) {
        if (!b.recorded(j, t)) continue;
        for (int s = 0; s < k; ++s) used += actual[b.expert(j, t, s)]++ == 0;
      }
      if (used < 2) continue;  // the top-2 is not defined
      // The two largest actual counts.
      uint32_t c1 = 0, c2 = 0;
      for (uint32_t c : actual) {
        if (c > c1) {
          c2 = c1;
          c1 = c;
        } else if (c > c2) {
          c2 = c;
        }
      }
      for (size_t i = 0; i < results.size(); ++i) {
        EstimateResult& r = results[i];
        const int L = std::min(r.path_length, j);
        std::fill(est.begin(), est.end(), 0.0);
        for (int t = 0; t < b.tokens; ++t) {
          if (!b.recorded(j, t)) continue;
          for (int m = L; m >= 0; --m) {
            if (!path_key(top1, b.tokens, t, j, m, key)) continue;
            auto it = tables[size_t(j)][size_t(m)].find(key);
            if (it == tables[size_t(j)][size_t(m)].end()) continue;
            ++r.token_paths;
            r.full_paths += m == L;
            it->second.add_shares(est);
            break;
          }
        }
        // Estimated top-2 (ties: the lower id).
        int a = 0;
        for (int e = 1; e < E; ++e) {
          if (est[size_t(e)] > est[size_t(a)]) a = e;
        }
        int bb = a == 0 ? 1 : 0;
        for (int e = 0; e < E; ++e) {
          if (e != a && est[size_t(e)] > est[size_t(bb)]) bb = e;
        }
        const uint32_t x = std::max(actual[size_t(a)], actual[size_t(bb)]);
        const uint32_t y = std::min(actual[size_t(a)], actual[size_t(bb)]);
        const bool hit = x == c1 && y == c2;
        auto& pl = r.layers[size_t(j - 1)];
        ++pl.cases;
        pl.hits += hit;
        ++r.all_cases;
        r.all_hits += hit;
        if (j >= r.path_length) {
          ++r.cases;
          r.hits += hit;
        }
      }
    }
  }
  return results;
}

nlohmann::ordered_json estimate_to_json(const std::vector<EstimateResult>& rs) {
  nlohmann::ordered_json j = nlohmann::ordered_json::array();
  for (const auto& r : rs) {
    nlohmann::ordered_json o;
    o["path_length"] = r.path_length;
    o["estimate_accuracy"] = r.accuracy();
    o["cases"] = r.cases;
    o["estimate_accuracy_all_layers"] = r.all_accuracy();
    o["cases_all_layers"] = r.all_cases;
    o["full_path_coverage"] = r.coverage();
    auto& pl = o["per_layer"] = nlohmann::ordered_json::array();
    for (const auto& l : r.layers) {
      pl.push_back({{"layer", l.layer},
                    {"cases", l.cases},
                    {"estimate_accuracy", l.cases ? nlohmann::ordered_json(double(l.hits) / double(l.cases))
                                                  : nlohmann::ordered_json(nullptr)}});
    }
    j.push_back(std::move(o));
  }
  return j;
}

std::string estimate_to_text(const std::vector<EstimateResult>& rs) {
  std::string o =
      fmt::format("{:>6} {:>10} {:>8} {:>12} {:>9}\n", "path", "accuracy", "cases", "all layers", "coverage");
  for (const auto& r : rs) {
    o += fmt::format("{:>6} {:>10.3f} {:>8} {:>12.3f} {:>9.3f}\n", r.path_length, r.accuracy(), r.cases,
                     r.all_accuracy(), r.coverage());
  }
  o += "\nper layer (accuracy, cases):\n";
  o += fmt::format("{:>6}", "layer");
  for (const auto& r : rs) o += fmt::format(" {:>14}", fmt::format("L={}", r.path_length));
  o += "\n";
  for (size_t i = 0; i < (rs.empty() ? 0 : rs[0].layers.size()); ++i) {
    o += fmt::format("{:>6}", rs[0].layers[i].layer);
    for (const auto& r : rs) {
      const auto& l = r.layers[i];
      o +=
          fmt::format(" {:>14}", l.cases ? fmt::format("{:.3f} ({})", double(l.hits) / double(l.cases), l.cases) : "-");
    }
    o += "\n";
  }
  return o;
}

std::pair<uint64_t, uint64_t> split_trace(const std::string& in, const std::string& profile_out,
                                          const std::string& eval_out, double fraction, bool shuffle_batches,
                                          uint64_t seed) {
  if (!(fraction > 0 && fraction < 1)) throw InputError("--profile-fraction must be between 0 and 1 (exclusive)");
  if (profile_out == eval_out) throw InputError("split: the two outputs must differ");
  TraceReader r(in);
  const uint64_t n = r.header().batches;
  const uint64_t n_prof = std::clamp<uint64_t>(uint64_t(std::llround(fraction * double(n))), 1, n > 1 ? n - 1 : 1);
  if (n < 2) throw InputError(format_location(in, "", "a split needs at least two batches"));
  std::vector<bool> to_profile(n, false);
  if (shuffle_batches) {
    std::vector<uint64_t> idx(n);
    for (uint64_t i = 0; i < n; ++i) idx[i] = i;
    std::mt19937_64 rng(seed);
    shuffle(idx, rng);
    for (uint64_t i = 0; i < n_prof; ++i) to_profile[idx[i]] = true;
  } else {
    for (uint64_t i = 0; i < n_prof; ++i) to_profile[i] = true;
  }
  TraceHeader hp = r.header(), he = r.header();
  if (!hp.notes.is_object()) hp.notes = nlohmann::json::object();
  if (!he.notes.is_object()) he.notes = nlohmann::json::object();
  const std::string name = std::filesystem::path(in).filename().string();
  hp.notes["split"] = {{"part", "profile"}, {"of", name}, {"fraction", fraction}, {"shuffle", shuffle_batches}};
  he.notes["split"] = {{"part", "eval"}, {"of", name}, {"fraction", fraction}, {"shuffle", shuffle_batches}};
  TraceWriter wp(profile_out, hp), we(eval_out, he);
  uint64_t i = 0;
  if (r.header().kind == TraceKind::kRouting) {
    BatchRouting b;
    while (r.next(b)) (to_profile[i++] ? wp : we).write(b);
  } else {
    LayerCounts c;
    while (r.next(c)) (to_profile[i++] ? wp : we).write(c);
  }
  wp.close();
  we.close();
  return {wp.header().batches, we.header().batches};
}

}  // namespace lina::traces

#include "sched/inference_estimator.hpp"

#include <algorithm>
#include <bit>
#include <stdexcept>

namespace lina {

PathEstimator::PathEstimator(int layers, int experts, int top_k, int max_path)
    : layers_(layers), experts_(experts), top_k_(top_k), max_path_(std::max(0, max_path)) {
  if (layers < 1 || experts < 1 || top_k < 1) throw std::invalid_argument("PathEstimator: empty shape");
  bits_ = std::max(1, static_cast<int>(std::bit_width(static_cast<unsigned>(experts - 1))));
  tables_.resize(static_cast<size_t>(layers_) * static_cast<size_t>(max_path_ + 1));
  for (int j = 0; j < layers_; ++j) {
    for (int m = 0; m <= max_path_; ++m) {
      if (bits_ * m <= kDirectBits) table(j, m).direct.assign(size_t{1} << (bits_ * m), Table::kAbsent);
    }
  }
  layer_counts_.assign(static_cast<size_t>(layers_) * static_cast<size_t>(experts_), 0.0);
}

size_t PathEstimator::Table::probe(uint64_t key) const {
  // Fibonacci hashing into a power-of-two table, then linear probing: the key's slot, or the empty one it would take.
  const size_t mask = slot_key.size() - 1;
  size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> (64 - std::countr_zero(slot_key.size())));
  while (slot_row[i] != kAbsent && slot_key[i] != key) i = (i + 1) & mask;
  return i;
}

uint32_t PathEstimator::Table::find(uint64_t key) const {
  if (!direct.empty()) return direct[key];
  return slot_key.empty() ? kAbsent : slot_row[probe(key)];
}

void PathEstimator::Table::grow() {
  std::vector<uint64_t> keys = std::move(slot_key);
  std::vector<uint32_t> rows_of = std::move(slot_row);
  slot_key.assign(std::max<size_t>(1024, keys.size() * 2), 0);
  slot_row.assign(slot_key.size(), kAbsent);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (rows_of[i] == kAbsent) continue;
    const size_t j = probe(keys[i]);
    slot_key[j] = keys[i];
    slot_row[j] = rows_of[i];
  }
}

uint32_t PathEstimator::Table::find_or_add(uint64_t key) {
  const auto row = static_cast<uint32_t>(rows.size());
  if (!direct.empty()) {
    if (direct[key] != kAbsent) return direct[key];
    direct[key] = row;
  } else {
    if (2 * (rows.size() + 1) > slot_key.size()) grow();  // at most half full
    const size_t i = probe(key);
    if (slot_row[i] != kAbsent) return slot_row[i];
    slot_key[i] = key;
    slot_row[i] = row;
  }
  rows.emplace_back();
  totals.push_back(0);
  return row;
}

void PathEstimator::Table::count(uint32_t row, uint16_t expert, int experts) {
  ++totals[row];
  Row& r = rows[row];
  if (r.n == kDense) {
    ++dense[static_cast<size_t>(r.c[0]) * static_cast<size_t>(experts) + expert];
    return;
  }
  if (r.n <= kInline) {
    for (int i = 0; i < r.n; ++i) {
      if (r.e[i] == expert) {
        ++r.c[i];
        return;
      }
    }
    if (r.n < kInline) {
      r.e[r.n] = expert;
      r.c[r.n] = 1;
      ++r.n;
      return;
    }
  } else {
    for (uint32_t i = r.c[0]; i < r.c[0] + r.n; ++i) {
      if (spill_e[i] == expert) {
        ++spill_c[i];
        return;
      }
    }
  }
  // A new expert for a full row: more room in the spill arrays, or dense past pair_row_limit(experts).
  const int n = r.n;
  if (n < pair_row_limit(experts)) {
    const bool inline_row = n == kInline;
    const uint32_t room = inline_row ? 0 : r.c[1];
    if (inline_row || static_cast<uint32_t>(n) == room) {
      const auto grown = static_cast<uint32_t>(std::min(pair_row_limit(experts), 2 * n));
      const auto at = static_cast<uint32_t>(spill_e.size());
      spill_e.resize(spill_e.size() + grown);
      spill_c.resize(spill_c.size() + grown);
      for (int i = 0; i < n; ++i) {  // the old pairs (inline, or spilled earlier and abandoned there)
        spill_e[at + i] = inline_row ? r.e[i] : spill_e[r.c[0] + i];
        spill_c[at + i] = inline_row ? r.c[i] : spill_c[r.c[0] + i];
      }
      r = Row{};
      r.n = static_cast<uint16_t>(n);
      r.c[0] = at;
      r.c[1] = grown;
    }
    spill_e[r.c[0] + n] = expert;
    spill_c[r.c[0] + n] = 1;
    ++r.n;
    return;
  }
  const auto at = static_cast<uint32_t>(dense.size() / static_cast<size_t>(experts));
  dense.resize(dense.size() + static_cast<size_t>(experts), 0);
  uint32_t* d = dense.data() + static_cast<size_t>(at) * static_cast<size_t>(experts);
  counts_of(row, experts, d);
  d[expert] = 1;
  r = Row{};
  r.n = kDense;
  r.c[0] = at;
}

size_t PathEstimator::Table::bytes() const {
  return direct.capacity() * sizeof(uint32_t) + slot_key.capacity() * sizeof(uint64_t) +
         slot_row.capacity() * sizeof(uint32_t) + rows.capacity() * sizeof(Row) + totals.capacity() * sizeof(uint64_t) +
         dense.capacity() * sizeof(uint32_t) + spill_e.capacity() * sizeof(uint16_t) +
         spill_c.capacity() * sizeof(uint32_t);
}

size_t PathEstimator::table_bytes() const {
  size_t b = 0;
  for (const Table& t : tables_) b += t.bytes();
  return b;
}

uint16_t PathEstimator::top1(const BatchRouting& b, int l, int t) {
  int best = 0;
  if (b.has_weights()) {
    for (int s = 1; s < b.top_k; ++s) {
      if (b.weight(l, t, s) > b.weight(l, t, best)) best = s;
    }
  }
  return b.expert(l, t, best);
}

void PathEstimator::top1_choices(const BatchRouting& b, std::vector<uint16_t>& out) {
  out.resize(static_cast<size_t>(b.layers) * static_cast<size_t>(b.tokens));
  for (int l = 0; l < b.layers; ++l) {
    for (int t = 0; t < b.tokens; ++t) out[static_cast<size_t>(l) * static_cast<size_t>(b.tokens) + t] = top1(b, l, t);
  }
}

bool PathEstimator::key(const std::vector<uint16_t>& top1, int tokens, int t, int j, int m, uint64_t& k) const {
  // Exact packing while the ids fit in 64 bits; beyond that a 64-bit mix (collisions negligible for the tables'
  // sizes).
  const bool exact = bits_ * m <= 64;
  k = exact ? 0 : 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < m; ++i) {
    const uint16_t e = top1[static_cast<size_t>(j - m + i) * static_cast<size_t>(tokens) + static_cast<size_t>(t)];
    if (e >= experts_) return false;  // unrecorded (kNoExpert), or outside the layer: the path is cut there
    if (exact) {
      k = (k << bits_) | e;
    } else {
      k ^= e + 0x9E3779B97F4A7C15ull + (k << 6) + (k >> 2);
    }
  }
  return true;
}

void PathEstimator::add(const BatchRouting& b) {
  if (b.layers != layers_ || b.top_k != top_k_) throw std::invalid_argument("PathEstimator: batch shape differs");
  ++batches_;
  flat_.clear();
  top1_choices(b, top1_scratch_);
  for (int j = 0; j < layers_; ++j) {
    for (int t = 0; t < b.tokens; ++t) {
      if (!b.recorded(j, t)) continue;
      for (int s = 0; s < top_k_; ++s) {
        uint16_t e = b.expert(j, t, s);
        if (e < experts_) layer_counts_[static_cast<size_t>(j) * static_cast<size_t>(experts_) + e] += 1;
      }
      uint64_t k = 0;
      for (int m = 0; m <= std::min(max_path_, j); ++m) {
        // key(m) puts the oldest choice highest: key(m) = e(j - m) << bits * (m - 1) | key(m - 1) while it fits.
        if (m > 0) {
          const uint16_t e = top1_scratch_[static_cast<size_t>(j - m) * static_cast<size_t>(b.tokens) + t];
          if (bits_ * m <= 64) {
            if (e >= experts_) break;  // unrecorded: the path is cut there
            k |= static_cast<uint64_t>(e) << (bits_ * (m - 1));
          } else if (!key(top1_scratch_, b.tokens, t, j, m, k)) {
            break;
          }
        }
        Table& tab = table(j, m);
        const uint32_t r = tab.find_or_add(k);
        for (int s = 0; s < top_k_; ++s) {
          uint16_t e = b.expert(j, t, s);
          if (e < experts_) tab.count(r, e, experts_);
        }
      }
    }
  }
}

bool PathEstimator::find_row(const std::vector<uint16_t>& top1, int tokens, int t, int j, int m, const Table*& tab,
                             uint32_t& row) const {
  for (; m >= 0; --m) {
    uint64_t key_v = 0;
    if (!key(top1, tokens, t, j, m, key_v)) continue;
    tab = &table(j, m);
    row = tab->find(key_v);
    // A row whose counts are all zero (only unrecorded choices followed the path) backs off like a missing one.
    if (row != Table::kAbsent && tab->totals[row] > 0) return true;
  }
  return false;
}

void PathEstimator::freeze() {
  flat_.assign(tables_.size(), {});
  const auto E = static_cast<size_t>(experts_);
  std::vector<uint16_t> paths;  // one pseudo-token per path key, its choices at the layers before j
  for (int j = 0; j < layers_; ++j) {
    for (int m = 0; m <= std::min(j, max_path_); ++m) {
      if (bits_ * m > kDirectBits) break;
      const size_t keys = size_t{1} << (bits_ * m);
      if (keys * E * sizeof(uint32_t) > kFlatBytes) break;
      paths.assign(static_cast<size_t>(j) * keys, 0);
      for (size_t k = 0; k < keys; ++k) {
        for (int d = 0; d < m; ++d) {  // the most recent choice in the lowest bits, as key() packs it
          paths[static_cast<size_t>(j - 1 - d) * keys + k] =
              static_cast<uint16_t>((k >> (bits_ * d)) & ((uint64_t{1} << bits_) - 1));
        }
      }
      Flat& f = flat_[at(j, m)];
      f.counts.assign(keys * E, 0);
      f.scale.assign(keys, 0.0);
      for (size_t k = 0; k < keys; ++k) {
        const Table* tab = nullptr;
        uint32_t r = 0;
        if (!find_row(paths, static_cast<int>(keys), static_cast<int>(k), j, m, tab, r)) continue;
        f.scale[k] = top_k_ / static_cast<double>(tab->totals[r]);
        tab->counts_of(r, experts_, f.counts.data() + k * E);
      }
    }
  }
}

void PathEstimator::estimate(const BatchRouting& b, const std::vector<uint16_t>& top1, int j, int path_length,
                             std::span<double> out) const {
  std::fill(out.begin(), out.end(), 0.0);
  const int L = std::min({path_length, j, max_path_});
  const double k = top_k_;
  const auto E = static_cast<size_t>(experts_);
  const Flat* flat = flat_.empty() ? nullptr : &flat_[at(j, L)];
  if (flat && flat->scale.empty()) flat = nullptr;
  // Three passes over the tokens, because the tables of all layers are larger than the cache and nearly every token
  // finds its row in a different cache line: find each token's row (a table row is prefetched there), prefetch the
  // dense counts of table rows, then add, prefetching frozen rows a fixed distance ahead. The sums run in token
  // order, as in a single pass. The policies of a point share one estimator and may run on several threads: the
  // scratch is per thread.
  struct Hit {
    const uint32_t* flat;  // freeze()'s counts, times *flat_scale; or null: the table's row
    const double* flat_scale;
    const Table* table;
    uint32_t row;
  };
  thread_local std::vector<Hit> hits;
  hits.clear();
  const auto T = static_cast<size_t>(b.tokens);
  for (int t = 0; t < b.tokens; ++t) {
    if (!b.recorded(j, t)) continue;
    if (flat) {
      uint64_t key_v = 0;
      bool whole = true;
      for (int d = 0; d < L && whole; ++d) {
        const uint16_t e = top1[static_cast<size_t>(j - 1 - d) * T + static_cast<size_t>(t)];
        whole = e < experts_;
        key_v |= static_cast<uint64_t>(e) << (bits_ * d);
      }
      if (whole) {  // else a choice is unrecorded: the path is cut there, as the table lookup does
        // Built in place: a Hit assembled on the stack and copied was a store-forwarding stall per token.
        hits.emplace_back(flat->counts.data() + key_v * E, flat->scale.data() + key_v, nullptr, 0u);
        continue;
      }
    }
    Hit h{nullptr, nullptr, nullptr, 0};
    if (!find_row(top1, b.tokens, t, j, L, h.table, h.row)) continue;
    __builtin_prefetch(&h.table->rows[h.row]);
    __builtin_prefetch(&h.table->totals[h.row]);
    hits.push_back(h);
  }
  for (const Hit& h : hits) {
    if (h.flat) continue;
    const Table::Row& row = h.table->rows[h.row];
    if (row.n == Table::kDense) {
      __builtin_prefetch(h.table->dense.data() + static_cast<size_t>(row.c[0]) * E);
    } else if (row.n > Table::kInline) {
      __builtin_prefetch(h.table->spill_e.data() + row.c[0]);
      __builtin_prefetch(h.table->spill_c.data() + row.c[0]);
    }
  }
  // A burst of hundreds of prefetches overflows the core's outstanding misses; a fixed distance keeps it streaming.
  constexpr size_t kAhead = 32;
  for (size_t i = 0; i < std::min(kAhead, hits.size()); ++i) {
    if (hits[i].flat) __builtin_prefetch(hits[i].flat), __builtin_prefetch(hits[i].flat_scale);
  }
  for (size_t i = 0; i < hits.size(); ++i) {
    const Hit& h = hits[i];
    if (i + kAhead < hits.size() && hits[i + kAhead].flat) {
      __builtin_prefetch(hits[i + kAhead].flat);
      __builtin_prefetch(hits[i + kAhead].flat_scale);
    }
    if (h.flat) {
      // The products add_scaled forms for the same row (zeros add nothing): the same sums, bit for bit.
      const double scale = *h.flat_scale;
      for (size_t e = 0; e < E; ++e) out[e] += h.flat[e] * scale;
      continue;
    }
    // Each token contributes top_k choices in total.
    h.table->add_scaled(h.row, experts_, k / static_cast<double>(h.table->totals[h.row]), out);
  }
}

std::vector<double> PathEstimator::mean_counts(int layer) const {
  std::vector<double> out(static_cast<size_t>(experts_), 0.0);
  if (batches_ == 0) return out;
  for (int e = 0; e < experts_; ++e) {
    out[static_cast<size_t>(e)] =
        layer_counts_[static_cast<size_t>(layer) * static_cast<size_t>(experts_) + e] / batches_;
  }
  return out;
}

}  // namespace lina

// Lina's popularity estimator (paper section 5.2; DESIGN.md 3.2 Phase 1) as the inference scheduler uses it, on
// in-memory batches. sched/ depends on nothing else, so this is its own implementation of the lookup tables that
// traces/estimate.cpp evaluates on files (`lina trace estimate`); both follow the same definition:
//
// For every MoE layer j >= 1 and path length m = 0..max_path (m <= j), a token's path is its top-1 choices at the m
// layers before j (the most recent last); the table maps a path to the distribution of the experts the token chose
// at layer j (all top_k slots), counted over the profiling batches. Estimating a batch at layer j adds, for each
// token, the normalised next-expert distribution of the longest path (m <= l) the tables know, backing off to
// shorter paths (m = 0 is the layer's popularity); a path with an unrecorded choice is cut there. The result is the
// expected tokens per expert (it sums to tokens * top_k when every path is known).
#pragma once

#include <algorithm>
#include <cstdint>
#include <new>
#include <span>
#include <vector>

#include "sched/routing.hpp"

namespace lina {

// The most distinct experts a lookup-table row keeps as (expert, count) pairs before it turns dense (a count per
// expert): a dense row of 16 experts is one 64-byte cache line, so 16 experts go dense past 4 pairs; with more experts
// a pair costs 6 bytes against 4 per expert. Shared by PathEstimator and the file estimator (`lina trace estimate`).
inline int pair_row_limit(int experts) { return std::max(4, experts / 8); }

class PathEstimator {
 public:
  PathEstimator(int layers, int experts, int top_k, int max_path);

  // Adds a profiling batch (same layers, experts and top_k).
  void add(const BatchRouting& b);
  int profiled_batches() const { return batches_; }

  // Expected tokens per expert at MoE layer `layer` of batch `b`, from each token's path of up to `path_length`
  // choices before it. `top1` is top1_choices(b); `out` has one entry per expert.
  void estimate(const BatchRouting& b, const std::vector<uint16_t>& top1, int layer, int path_length,
                std::span<double> out) const;

  // After the last add(): lays out, for every path short enough (a table of at most kFlatBytes), the counts of the
  // row estimate() adds for it (back-off resolved) and their scale, indexed by the path key itself. A token then
  // costs one cache line instead of four dependent accesses (key -> row -> total -> counts), which is what the
  // estimate spends its time on. estimate() forms the same products and adds them in the same order: results are
  // bit-identical (a test compares them). add() drops the layout.
  void freeze();

  // Mean tokens per expert at a layer over the profiling batches (replicate-history's popularity).
  std::vector<double> mean_counts(int layer) const;

  // Bytes held by the lookup tables (capacity of their containers; the frozen layouts not included): what profiling
  // costs in memory, for tests and diagnostics.
  size_t table_bytes() const;

  // The top-1 choice of (layer, token): slot 0, or the highest-weight slot when the batch has gate weights.
  static uint16_t top1(const BatchRouting& b, int layer, int token);
  // top1 of every (layer, token), layer-major.
  static void top1_choices(const BatchRouting& b, std::vector<uint16_t>& out);

 private:
  // One lookup table (layer j, path length m): path key -> row of next-expert counts.
  //
  // Memory is what limits long paths (l = 6 over 16 experts: millions of distinct paths per layer, most seen a few
  // times), so rows start sparse, up to kInline (expert, count) pairs, and become dense (one count per expert) only
  // when more experts follow the path than pair_row_limit(experts); and the index beyond kDirectBits is an
  // open-addressing table (12 bytes a slot at most half full) rather than a node-based map. With many experts and
  // top_k > kInline (DeepSeek-V3: 256 experts, top-8) nearly every path has more than kInline experts after its
  // first token, and a dense row costs 1 KiB: between inline and dense, a row's pairs live in the table's `spill`
  // arrays (6 bytes a pair, moved to the end with twice the room when full), which cut the tables of such a model
  // about fivefold.
  struct Table {
    static constexpr uint32_t kAbsent = UINT32_MAX;
    static constexpr uint16_t kDense = UINT16_MAX;
    static constexpr int kInline = 4;
    struct Row {
      // Inline pairs used (<= kInline), spilled pairs (> kInline: c[0] is their offset in spill_e/spill_c, c[1]
      // the room there), or kDense: the counts are dense[c[0] * experts ...].
      uint16_t n = 0;
      uint16_t e[kInline] = {};
      uint32_t c[kInline] = {};
    };
    static_assert(kInline == 4, "pair_row_limit keeps at least the inline pairs");
    std::vector<uint32_t> direct;    // short paths: key -> row (kAbsent: none)
    std::vector<uint64_t> slot_key;  // long paths: open addressing, linear probing
    std::vector<uint32_t> slot_row;  // kAbsent: empty slot
    std::vector<Row> rows;
    std::vector<uint64_t> totals;   // row sums
    std::vector<uint32_t> dense;    // dense rows, `experts` counts each
    std::vector<uint16_t> spill_e;  // spilled rows' pairs: expert
    std::vector<uint32_t> spill_c;  //                      count

    uint32_t find(uint64_t key) const;
    uint32_t find_or_add(uint64_t key);
    void count(uint32_t row, uint16_t expert, int experts);
    // out[e] += count(row, e) * scale for every expert. Dense rows add all their counts (zeros included: x + 0 is x,
    // and the plain loop vectorises); sparse rows only their pairs. Each expert gets one term either way, so the
    // representation does not change a sum.
    void add_scaled(uint32_t row, int experts, double scale, std::span<double> out) const {
      const Row& r = rows[row];
      if (r.n == kDense) {
        const uint32_t* d = dense.data() + static_cast<size_t>(r.c[0]) * static_cast<size_t>(experts);
        for (int e = 0; e < experts; ++e) out[static_cast<size_t>(e)] += d[e] * scale;
        return;
      }
      if (r.n > kInline) {
        const uint16_t* es = spill_e.data() + r.c[0];
        const uint32_t* cs = spill_c.data() + r.c[0];
        for (int i = 0; i < r.n; ++i) out[es[i]] += cs[i] * scale;
        return;
      }
      for (int i = 0; i < r.n; ++i) out[r.e[i]] += r.c[i] * scale;
    }

    // The row's count of every expert into out[0 .. experts).
    void counts_of(uint32_t row, int experts, uint32_t* out) const {
      const Row& r = rows[row];
      if (r.n == kDense) {
        const uint32_t* d = dense.data() + static_cast<size_t>(r.c[0]) * static_cast<size_t>(experts);
        std::copy(d, d + experts, out);
        return;
      }
      if (r.n > kInline) {
        for (int i = 0; i < r.n; ++i) out[spill_e[r.c[0] + i]] = spill_c[r.c[0] + i];
        return;
      }
      for (int i = 0; i < r.n; ++i) out[r.e[i]] = r.c[i];
    }
    // Bytes held by the table's containers (their capacity).
    size_t bytes() const;

   private:
    size_t probe(uint64_t key) const;
    void grow();
  };
  static constexpr int kDirectBits = 16;
  // freeze() lays out a table only up to 1 MiB of counts: 16 experts at l = 3 take 256 KiB per layer; longer paths
  // (l = 6: 16^6 keys) stay in the hash tables.
  static constexpr size_t kFlatBytes = size_t{1} << 20;
  // The row estimate() adds for token t at layer j from its path of up to m choices: the longest known path, backing
  // off past unrecorded choices, unknown paths and rows whose counts are all zero; false when there is none.
  bool find_row(const std::vector<uint16_t>& top1, int tokens, int t, int j, int m, const Table*& tab,
                uint32_t& row) const;
  // Path key of the m choices before layer j of token t (false when one is unrecorded).
  bool key(const std::vector<uint16_t>& top1, int tokens, int t, int j, int m, uint64_t& k) const;
  // Tables and their frozen layouts are kept [layer][path length].
  size_t at(int j, int m) const { return static_cast<size_t>(j) * static_cast<size_t>(max_path_ + 1) + m; }
  Table& table(int j, int m) { return tables_[at(j, m)]; }
  const Table& table(int j, int m) const { return tables_[at(j, m)]; }

  int layers_, experts_, top_k_, max_path_, bits_;
  int batches_ = 0;
  std::vector<Table> tables_;  // [layer][m]
  // A row of 16 experts' counts is one aligned 64-byte cache line.
  template <typename T>
  struct Aligned {
    using value_type = T;
    static constexpr std::align_val_t kAlign{64};
    Aligned() = default;
    template <typename U>
    Aligned(const Aligned<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
    void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
    bool operator==(const Aligned&) const { return true; }
  };
  // freeze()'s rows for table [layer][m], indexed by path key: the counts of the row estimate() adds for the key
  // (after back-off), `experts` per key, and the scale top_k / total it multiplies them by (0: no row, nothing added).
  struct Flat {
    std::vector<uint32_t, Aligned<uint32_t>> counts;
    std::vector<double> scale;
  };
  std::vector<Flat> flat_;
  std::vector<double> layer_counts_;  // [layer][expert], summed over profiling batches
  std::vector<uint16_t> top1_scratch_;
};

}  // namespace lina

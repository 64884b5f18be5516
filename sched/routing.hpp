// Token routing: which experts each token of a batch picked at each MoE layer (DESIGN.md 2.6, 5).
//
// These are the in-memory types shared by the trace library (traces/), the synthetic generator and the
// training/inference workload builders. They are deliberately plain (vectors of ids, no dependencies) so that a
// workload can consume a replayed trace and a synthetic batch the same way.
//
// Layout: experts[(layer * tokens + token) * top_k + slot]. `layer` is the index of the MoE layer in the trace's
// layer list (0..layers-1), not the model's layer id. A token's top_k ids are distinct; whether slot 0 is the
// highest-weight choice depends on the source (TraceHeader::ordered). kNoExpert in all slots of (layer, token)
// means the source did not record that choice (a dropped log record): consumers must skip it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace lina {

// Marks an unrecorded choice. Never a valid expert id: traces hold at most 65535 experts.
inline constexpr uint16_t kNoExpert = 0xFFFF;

// Batch flags (stored in the trace format, see traces/FORMAT.md).
inline constexpr uint32_t kBatchPrefill = 1u << 0;  // a prefill forward pass (several tokens of one request)

struct BatchRouting {
  int tokens = 0;
  int layers = 0;
  int top_k = 0;
  uint32_t flags = 0;
  std::vector<uint16_t> experts;  // [layer][token][slot]
  std::vector<float> weights;     // empty, or gate weights in the same layout as experts

  // Sizes the arrays for the given shape (contents unspecified); keeps capacity so that readers reuse memory.
  void resize(int n_tokens, int n_layers, int k, bool with_weights) {
    tokens = n_tokens;
    layers = n_layers;
    top_k = k;
    const size_t n = size_t(n_tokens) * size_t(n_layers) * size_t(k);
    experts.resize(n);
    weights.resize(with_weights ? n : 0);
  }
  bool has_weights() const { return !weights.empty(); }
  bool prefill() const { return (flags & kBatchPrefill) != 0; }
  size_t index(int layer, int token, int slot = 0) const {
    return (size_t(layer) * size_t(tokens) + size_t(token)) * size_t(top_k) + size_t(slot);
  }
  uint16_t expert(int layer, int token, int slot = 0) const { return experts[index(layer, token, slot)]; }
  float weight(int layer, int token, int slot = 0) const { return weights[index(layer, token, slot)]; }
  // The token's top_k choices at a layer.
  std::span<const uint16_t> choices(int layer, int token) const {
    return {experts.data() + index(layer, token), size_t(top_k)};
  }
  std::span<uint16_t> choices(int layer, int token) { return {experts.data() + index(layer, token), size_t(top_k)}; }
  bool recorded(int layer, int token) const { return experts[index(layer, token)] != kNoExpert; }
};

// The layer-level kind of trace: how many token choices each expert received, per layer, in one batch.
// A token contributes one to each of its top_k experts, so a layer's counts sum to tokens * top_k when every
// choice was recorded.
struct LayerCounts {
  int tokens = 0;
  int layers = 0;
  int experts = 0;
  uint32_t flags = 0;
  std::vector<uint32_t> counts;  // [layer][expert]

  void resize(int n_tokens, int n_layers, int n_experts) {
    tokens = n_tokens;
    layers = n_layers;
    experts = n_experts;
    counts.assign(size_t(n_layers) * size_t(n_experts), 0);
  }
  uint32_t count(int layer, int expert) const { return counts[size_t(layer) * size_t(experts) + size_t(expert)]; }
  std::span<const uint32_t> layer(int l) const {
    return {counts.data() + size_t(l) * size_t(experts), size_t(experts)};
  }
};

// Per-layer expert token counts of a routed batch (unrecorded choices are skipped).
inline LayerCounts count_experts(const BatchRouting& b, int n_experts) {
  LayerCounts c;
  c.resize(b.tokens, b.layers, n_experts);
  c.flags = b.flags;
  for (int l = 0; l < b.layers; ++l) {
    uint32_t* row = c.counts.data() + size_t(l) * size_t(n_experts);
    const uint16_t* ids = b.experts.data() + b.index(l, 0);
    const size_t n = size_t(b.tokens) * size_t(b.top_k);
    for (size_t i = 0; i < n; ++i) {
      if (ids[i] != kNoExpert) ++row[ids[i]];
    }
  }
  return c;
}

}  // namespace lina

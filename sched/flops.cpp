#include "sched/flops.hpp"

#include <algorithm>
#include <cmath>

namespace lina {
namespace {

struct Gemm {
  double k, n;  // x[T x k] W[k x n]
};

// Sum of the GEMMs x[T x k] W[k x n]: 2*T*k*n FLOPs, (T*k + k*n + T*n) elements moved.
OpCost gemms(OpKind kind, double tokens, double dtype_bytes, std::initializer_list<Gemm> list) {
  OpCost c{kind, 0, 0};
  for (const Gemm& g : list) {
    c.flops += 2 * tokens * g.k * g.n;
    c.bytes += (tokens * g.k + g.k * g.n + tokens * g.n) * dtype_bytes;
  }
  return c;
}

double qk_head_dim(const ModelSpec& m) {
  return m.attention == ModelSpec::Attention::kMla ? m.mla.qk_nope_head_dim + m.mla.qk_rope_head_dim
                                                   : m.head_dim_or_default();
}
double v_head_dim(const ModelSpec& m) {
  return m.attention == ModelSpec::Attention::kMla ? m.mla.v_head_dim : m.head_dim_or_default();
}

}  // namespace

std::string_view op_kind_name(OpKind k) {
  switch (k) {
    case OpKind::kGemm:
      return "gemm";
    case OpKind::kAttentionProj:
      return "attention_proj";
    case OpKind::kAttentionScores:
      return "attention_scores";
    case OpKind::kGate:
      return "gate";
    case OpKind::kElementwise:
      return "elementwise";
    case OpKind::kEmbedding:
      return "embedding";
  }
  return "?";
}

std::optional<OpKind> parse_op_kind(std::string_view name) {
  for (OpKind k : kAllOpKinds) {
    if (op_kind_name(k) == name) return k;
  }
  return std::nullopt;
}

bool uses_tensor_cores(OpKind k) { return k != OpKind::kElementwise && k != OpKind::kEmbedding; }

OpCost attention_proj_cost(const ModelSpec& m, double tokens) {
  const double d = m.hidden, b = m.dtype_bytes(), h = m.heads;
  if (m.attention == ModelSpec::Attention::kMla) {
    const MlaSpec& a = m.mla;
    const double qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
    OpCost q = a.q_lora_rank > 0 ? gemms(OpKind::kAttentionProj, tokens, b,
                                         {{d, double(a.q_lora_rank)}, {double(a.q_lora_rank), h * qk}})
                                 : gemms(OpKind::kAttentionProj, tokens, b, {{d, h * qk}});
    OpCost rest = gemms(OpKind::kAttentionProj, tokens, b,
                        {{d, double(a.kv_lora_rank + a.qk_rope_head_dim)},
                         {double(a.kv_lora_rank), h * (a.qk_nope_head_dim + a.v_head_dim)},
                         {h * a.v_head_dim, d}});
    return {OpKind::kAttentionProj, q.flops + rest.flops, q.bytes + rest.bytes};
  }
  const double q = m.q_dim(), kv = m.kv_dim(), v = m.v_dim();
  // Fused QKV GEMM (plus Transformer-XL's position projection, same input width), then the output projection.
  const double qkv_out = q + 2 * kv + (m.attention == ModelSpec::Attention::kRelative ? q : 0);
  return gemms(OpKind::kAttentionProj, tokens, b, {{d, qkv_out}, {v, d}});
}

OpCost cross_attention_proj_cost(const ModelSpec& m, double tokens) {
  const double d = m.hidden, q = double(m.heads) * m.head_dim_or_default();
  return gemms(OpKind::kAttentionProj, tokens, m.dtype_bytes(), {{d, 3 * q}, {q, d}});
}

OpCost attention_scores_cost(const ModelSpec& m, double tokens, double context) {
  const double b = m.dtype_bytes(), h = m.heads, dqk = qk_head_dim(m), dv = v_head_dim(m);
  const bool relative = m.attention == ModelSpec::Attention::kRelative;
  // MLA without weight absorption expands keys and values per head: as many K/V heads as query heads.
  const double kvh = m.attention == ModelSpec::Attention::kMla ? h : m.kv_heads_or_heads();
  OpCost c{OpKind::kAttentionScores, 0, 0};
  c.flops = 2 * tokens * context * h * dqk * (relative ? 2 : 1) + 2 * tokens * context * h * dv;
  c.bytes = tokens * (h * dqk + kvh * dqk + kvh * dv + h * dv) * b;
  if (!m.fused_attention) c.bytes += (relative ? 8 : 4) * tokens * context * h * b;
  return c;
}

OpCost ffn_cost(const ModelSpec& m, double tokens, double f) {
  const double d = m.hidden, b = m.dtype_bytes();
  return m.gated_ffn ? gemms(OpKind::kGemm, tokens, b, {{d, 2 * f}, {f, d}})  // fused gate+up, then down
                     : gemms(OpKind::kGemm, tokens, b, {{d, f}, {f, d}});
}

OpCost dense_ffn_cost(const ModelSpec& m, double tokens) { return ffn_cost(m, tokens, m.ffn); }
OpCost expert_ffn_cost(const ModelSpec& m, double tokens) { return ffn_cost(m, tokens, m.expert_ffn); }

OpCost shared_experts_cost(const ModelSpec& m, double tokens) {
  if (m.shared_experts == 0) return {OpKind::kGemm, 0, 0};
  return ffn_cost(m, tokens, double(m.shared_experts) * m.shared_expert_ffn);
}

OpCost gate_cost(const ModelSpec& m, double tokens) {
  const double d = m.hidden, e = m.experts;
  OpCost c = gemms(OpKind::kGate, tokens, m.dtype_bytes(), {{d, e}});
  // Softmax and top-k over fp32 logits: read the logits, write probabilities, read them for top-k (~5 FLOPs each).
  c.flops += 5 * tokens * e;
  c.bytes += 3 * tokens * e * 4;
  return c;
}

OpCost dense_dispatch_masks_cost(const ModelSpec& m, double tokens, double capacity, int slots) {
  // Per top-k choice: the [S, E] x [S, C] outer product written in fp32, then added into the combine weights (read
  // both, write one); finally the boolean dispatch mask (read fp32, write 1 byte). About one FLOP per element.
  const double sec = tokens * (slots < 0 ? m.experts : slots) * capacity, k = m.top_k;
  return {OpKind::kElementwise, (2 * k + 1) * sec, k * sec * 4 + (k - 1) * 3 * sec * 4 + sec * (4 + 1)};
}

OpCost dense_dispatch_einsum_cost(const ModelSpec& m, double tokens, double capacity, int slots) {
  const double d = m.hidden, e = slots < 0 ? m.experts : slots, b = m.dtype_bytes();
  const double sec = tokens * e * capacity;
  return {OpKind::kGemm, 2 * sec * d, sec * b + tokens * d * b + e * capacity * d * b};
}

double expert_capacity(const ModelSpec& m, double tokens, double max_expert_tokens) {
  return m.capacity_factor > 0 ? expert_capacity(m, tokens) : std::ceil(max_expert_tokens);
}

OpCost norm_cost(const ModelSpec& m, double tokens) {
  const double d = m.hidden, b = m.dtype_bytes();
  return {OpKind::kElementwise, (m.rmsnorm ? 4 : 8) * tokens * d, 2 * tokens * d * b + (m.rmsnorm ? 1 : 2) * d * b};
}

OpCost residual_cost(const ModelSpec& m, double tokens) {
  const double d = m.hidden, b = m.dtype_bytes();
  return {OpKind::kElementwise, tokens * d, 3 * tokens * d * b};
}

OpCost activation_cost(const ModelSpec& m, double tokens, double f) {
  const double b = m.dtype_bytes();
  return m.gated_ffn ? OpCost{OpKind::kElementwise, 5 * tokens * f, 3 * tokens * f * b}
                     : OpCost{OpKind::kElementwise, 10 * tokens * f, 2 * tokens * f * b};
}

OpCost embedding_cost(const ModelSpec& m, double tokens) {
  const double d = m.hidden, b = m.dtype_bytes();
  const bool pos = m.learned_positions > 0;
  return {OpKind::kEmbedding, pos ? tokens * d : 0, (pos ? 3 : 2) * tokens * d * b};
}

OpCost lm_head_cost(const ModelSpec& m, double tokens) {
  return gemms(OpKind::kGemm, tokens, m.dtype_bytes(), {{double(m.hidden), double(m.vocab)}});
}

OpCost loss_cost(const ModelSpec& m, double tokens) {
  // Fused softmax cross-entropy: read the logits, write their gradient (~5 FLOPs per logit: max, exp, sum, scale).
  return {OpKind::kElementwise, 5 * tokens * m.vocab, 2 * tokens * m.vocab * double(m.dtype_bytes())};
}

OpCost backward(const OpCost& f) { return {f.kind, 2 * f.flops, 2 * f.bytes}; }

double expert_capacity(const ModelSpec& m, double tokens) {
  if (m.experts == 0) return 0;
  const double routed = tokens * std::min(m.top_k, m.experts) / m.experts;
  return m.capacity_factor > 0 ? std::ceil(m.capacity_factor * routed) : routed;
}

double alltoall_bytes_per_rank(const ModelSpec& m, double tokens) {
  return m.experts * expert_capacity(m, tokens) * m.hidden * m.dtype_bytes();
}

double layer_forward_flops_per_token(const ModelSpec& m, int layer, double context) {
  double f = attention_proj_cost(m, 1).flops + attention_scores_cost(m, 1, context).flops;
  if (m.has_cross_attention(layer)) {
    f += cross_attention_proj_cost(m, 1).flops + 4 * context * m.heads * m.head_dim_or_default();
  }
  if (m.is_moe_layer(layer)) {
    f += gate_cost(m, 1).flops - 5.0 * m.experts;  // the GEMM only: 2*d*E
    f += std::min(m.top_k, m.experts) * expert_ffn_cost(m, 1).flops + shared_experts_cost(m, 1).flops;
  } else {
    f += dense_ffn_cost(m, 1).flops;
  }
  return f;
}

double model_forward_flops_per_token(const ModelSpec& m, double context) {
  double f = lm_head_cost(m, 1).flops;
  for (int g = 0; g < m.total_layers(); ++g) f += layer_forward_flops_per_token(m, g, context);
  return f;
}

}  // namespace lina

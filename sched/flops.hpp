// FLOPs and bytes of every operator of an MoE Transformer, in one place (DESIGN.md 2.5). The GPU compute model
// (sim/compute.hpp) turns an OpCost into a duration with a roofline; the workload builder composes the ops of a
// training step or an inference batch from these functions.
//
// Conventions: a multiply-add is 2 FLOPs; costs are for the forward pass over `tokens` tokens of one layer; the
// backward pass costs twice the forward (backward(): grad wrt inputs and grad wrt weights, each one forward GEMM).
// Bytes are HBM traffic, each tensor read or written once per kernel: for a GEMM x[T x k] W[k x n] -> y[T x n],
// (T*k + k*n + T*n) * dtype bytes. Per token, for standard attention (d = hidden, s = context, f = FFN size):
//   attention projections 8*d^2 (Q, K, V, O: 2 FLOPs x 4 d^2 weights), scores 4*s*d (QK^T and AV),
//   FFN 4*d*f (two GEMMs; 6*d*f gated), gate 2*d*E.
// Model-specific forms (GQA, MLA, Transformer-XL relative attention) follow from the weight shapes, below.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sched/model_spec.hpp"

namespace lina {

// Operator kinds: each has its own efficiency in the compute model (defaults and calibration tables).
enum class OpKind {
  kGemm,             // dense FFN, expert FFN, shared experts, output projection (LM head)
  kAttentionProj,    // Q/K/V/O projections (and MLA's latent projections)
  kAttentionScores,  // QK^T, softmax, AV (one fused kernel, or unfused with the scores through HBM)
  kGate,             // router: d x E GEMM, softmax, top-k
  kElementwise,      // norms, residual adds, activations, loss (memory-bound)
  kEmbedding,        // token (+ position) embedding lookup (a gather, memory-bound)
};
inline constexpr std::array<OpKind, 6> kAllOpKinds = {OpKind::kGemm, OpKind::kAttentionProj, OpKind::kAttentionScores,
                                                      OpKind::kGate, OpKind::kElementwise,   OpKind::kEmbedding};
// "gemm", "attention_proj", "attention_scores", "gate", "elementwise", "embedding" (calibration files, reports).
std::string_view op_kind_name(OpKind k);
std::optional<OpKind> parse_op_kind(std::string_view name);
// Whether a kind runs on tensor cores at the model's compute dtype (GEMM-like) or on CUDA cores (memory-bound).
bool uses_tensor_cores(OpKind k);

struct OpCost {
  OpKind kind = OpKind::kGemm;
  double flops = 0;
  double bytes = 0;
};

// --- forward costs of one layer's operators over `tokens` tokens ---
// Self-attention projections: 2 * tokens * (projection weights). MHA: 8*d^2 per token; GQA: 2*(2*d*q + 2*d*kv)
// (q = heads*head_dim, kv = kv_heads*head_dim); relative: + 2*d*q for the position projection (one relative position
// per token, klen = qlen); MLA: 2 * (W_q + W_dkv + W_ukv + W_o) weights per token (no weight absorption, as in
// training).
OpCost attention_proj_cost(const ModelSpec& m, double tokens);
// Cross-attention projections of a decoder layer, with as many encoder tokens as decoder tokens: 8*d^2 per token.
OpCost cross_attention_proj_cost(const ModelSpec& m, double tokens);
// Scores over `context` keys per query (the sequence length; pass the mean for causal masking if wanted):
// 2*s*heads*qk_head_dim (QK^T) + 2*s*heads*v_head_dim (AV) per token = 4*s*d for MHA; relative attention adds the
// position scores (another 2*s*heads*head_dim). Bytes: fused (FlashAttention) reads Q, K, V and writes the output;
// unfused also writes and reads the tokens*context*heads score matrix 4 times (QK^T write, softmax read+write, AV
// read; 8 for relative attention: position scores, their relative shift and the sum).
OpCost attention_scores_cost(const ModelSpec& m, double tokens, double context);
// One FFN of inner size `ffn_size` on `tokens` tokens (two GEMMs, three when gated): 4*d*f (6*d*f) per token.
OpCost ffn_cost(const ModelSpec& m, double tokens, double ffn_size);
OpCost dense_ffn_cost(const ModelSpec& m, double tokens);       // ffn_cost(m, tokens, m.ffn)
OpCost expert_ffn_cost(const ModelSpec& m, double tokens);      // one routed expert on the tokens it received
OpCost shared_experts_cost(const ModelSpec& m, double tokens);  // all shared experts (every token); 0 if none
// Router: 2*d*E per token (+ softmax and top-k over E logits in fp32).
OpCost gate_cost(const ModelSpec& m, double tokens);
// DeepSpeed-MoE's dense dispatch (GShard-style; deepspeed/moe/sharded_moe.py, the default unless use_tutel): the
// gate builds combine weights [S, E, C] (one [S, E] x [S, C] outer product per top-k choice, summed) and a boolean
// dispatch mask of the same shape; tokens move with two einsums, "sec,sm->ecm" before the dispatch all-to-all and
// "sec,ecm->sm" after the combine, each 2*S*E*C*d FLOPs (S = tokens, C = expert capacity). With C = k*S/E that is
// 2*k*S^2*d: quadratic in the tokens, as large as the expert FFN itself once S ~ 2f/k. Sparse dispatch (Tutel's
// fast encode/decode, Megatron, vLLM) is a gather whose cost is in the all-to-all's buffers.
// `slots`: the buffers per rank, the experts (DeepSpeed's [E, C, d] layout; default) or the destination devices.
OpCost dense_dispatch_masks_cost(const ModelSpec& m, double tokens, double capacity, int slots = -1);
OpCost dense_dispatch_einsum_cost(const ModelSpec& m, double tokens, double capacity, int slots = -1);  // either
// Expert capacity C of one MoE layer over `tokens` tokens: capacity_factor * k * S / E, rounded up; dropless
// (capacity_factor 0) sizes it to the most loaded expert, `max_expert_tokens` (k * S / E when balanced).
double expert_capacity(const ModelSpec& m, double tokens, double max_expert_tokens);

// Elementwise: one norm (LayerNorm ~8 FLOPs per element, RMSNorm ~4; read x, write y), one residual add (read two,
// write one), the FFN activation on `ffn_size` (GELU ~10 FLOPs per element, read+write; SwiGLU ~5: read two,
// write one). Memory-bound: their FLOP counts hardly matter.
OpCost norm_cost(const ModelSpec& m, double tokens);
OpCost residual_cost(const ModelSpec& m, double tokens);
OpCost activation_cost(const ModelSpec& m, double tokens, double ffn_size);
// Embedding lookup: read one row (and a position row) per token, write the sum.
OpCost embedding_cost(const ModelSpec& m, double tokens);
// Output projection d x vocab (a GEMM) and the softmax cross-entropy over the vocabulary (elementwise).
OpCost lm_head_cost(const ModelSpec& m, double tokens);
OpCost loss_cost(const ModelSpec& m, double tokens);

// Backward = 2x forward in FLOPs and bytes (DESIGN.md 2.5; input and weight gradients).
OpCost backward(const OpCost& forward);

// --- MoE communication ---
// Tokens one expert accepts from one rank's `tokens` (capacity, DeepSpeed-MoE / GShard): ceil(C * tokens * top_k / E).
// Returns tokens * top_k / E (balanced, unpadded) when capacity_factor = 0.
double expert_capacity(const ModelSpec& m, double tokens);
// Bytes one rank sends in one all-to-all (dispatch or combine, forward or backward: all four move the same bytes)
// of one MoE layer, counting the share that stays on the rank: with a capacity factor the dispatch buffer is padded,
// E * capacity * d * dtype bytes; dropless (C = 0), the routed tokens: tokens * top_k * d * dtype bytes.
double alltoall_bytes_per_rank(const ModelSpec& m, double tokens);

// --- closed forms per token (reports, checks) ---
// Forward FLOPs per token of global layer `layer` with `context` keys: attention (+ cross-attention) and either the
// dense FFN or gate + top_k experts + shared experts. Elementwise ops, embedding and LM head excluded.
double layer_forward_flops_per_token(const ModelSpec& m, int layer, double context);
// Sum over layers + LM head: the forward FLOPs per token of the model (the "2N + attention" estimate for active N).
double model_forward_flops_per_token(const ModelSpec& m, double context);

}  // namespace lina

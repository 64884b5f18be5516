#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sched/flops.hpp"

namespace lina {
namespace {

using nlohmann::json;

ModelSpec small(json extra = json::object()) {
  json j = {{"layers", 4}, {"hidden", 512}, {"ffn", 2048},     {"heads", 8},   {"experts", 16},
            {"top_k", 2},  {"vocab", 1000}, {"dtype", "fp32"}, {"bias", false}};
  j.update(extra);
  return model_from_json(j, "t", "");
}

TEST(Flops, DesignFormulasPerToken) {
  ModelSpec m = small();
  const double d = 512, f = 2048, s = 256, E = 16, T = 1000;
  EXPECT_DOUBLE_EQ(attention_proj_cost(m, T).flops, T * 8 * d * d);
  EXPECT_DOUBLE_EQ(attention_scores_cost(m, T, s).flops, T * 4 * s * d);
  EXPECT_DOUBLE_EQ(dense_ffn_cost(m, T).flops, T * 4 * d * f);
  EXPECT_DOUBLE_EQ(expert_ffn_cost(m, T).flops, T * 4 * d * f);
  EXPECT_DOUBLE_EQ(gate_cost(m, T).flops, T * (2 * d * E + 5 * E));
  EXPECT_DOUBLE_EQ(backward(dense_ffn_cost(m, T)).flops, 2 * T * 4 * d * f);
  // A MoE layer: 8d^2 + 4sd + 2dE + top_k * 4df per token.
  EXPECT_DOUBLE_EQ(layer_forward_flops_per_token(m, 0, s), 8 * d * d + 4 * s * d + 2 * d * E + 2 * 4 * d * f);
}

TEST(Flops, DenseDispatchIsQuadraticInTokens) {
  // DeepSpeed-MoE's "sec,sm->ecm": 2*S*E*C*d FLOPs with C = ceil(cf * k * S / E); with cf = 1 and k = 2 that is
  // 4 * S^2 * d whatever E, the same for "sec,ecm->sm".
  ModelSpec m = small();
  const double d = 512, S = 4096;
  const double C = expert_capacity(m, S, 0);
  EXPECT_DOUBLE_EQ(C, 2 * S / 16);
  const OpCost e = dense_dispatch_einsum_cost(m, S, C);
  EXPECT_EQ(e.kind, OpKind::kGemm);
  EXPECT_DOUBLE_EQ(e.flops, 4 * S * S * d);
  EXPECT_DOUBLE_EQ(dense_dispatch_einsum_cost(m, 2 * S, expert_capacity(m, 2 * S, 0)).flops, 4 * e.flops);
  // Masks: per top-k choice an fp32 [S, E, C] outer product, their sum (read 2, write 1), a boolean copy.
  const double sec = S * 16 * C;
  EXPECT_DOUBLE_EQ(dense_dispatch_masks_cost(m, S, C).bytes, sec * (2 * 4 + 3 * 4 + 4 + 1));
  // Dropless (capacity factor 0): the capacity is the most loaded expert's count, rounded up.
  ModelSpec dropless = small({{"capacity_factor", 0}});
  EXPECT_DOUBLE_EQ(expert_capacity(dropless, S, 1234.5), 1235);
}

TEST(Flops, GatedGqaAndMla) {
  ModelSpec g = small({{"gated_ffn", true}, {"kv_heads", 2}});
  const double d = 512, f = 2048, kv = 2 * 64;
  EXPECT_DOUBLE_EQ(dense_ffn_cost(g, 1).flops, 6 * d * f);
  EXPECT_DOUBLE_EQ(attention_proj_cost(g, 1).flops, 2 * (2 * d * d + 2 * d * kv));
  // The projections' FLOPs are 2 per weight: consistent with the parameter count (no biases here).
  ModelSpec mla = model_from_json(json{{"layers", 1},
                                       {"hidden", 2048},
                                       {"ffn", 1024},
                                       {"heads", 16},
                                       {"experts", 0},
                                       {"vocab", 10},
                                       {"attention", "mla"},
                                       {"norm", "rmsnorm"}},
                                  "t", "");
  ParamCounts c = count_params(mla);
  const double latent_norm = 512;
  EXPECT_DOUBLE_EQ(attention_proj_cost(mla, 1).flops, 2 * (double(c.attention) - latent_norm));
  // Scores: 2*s*h*(128+64) + 2*s*h*128.
  EXPECT_DOUBLE_EQ(attention_scores_cost(mla, 1, 100).flops, 2 * 100 * 16 * 192 + 2 * 100 * 16 * 128);
}

TEST(Flops, ForwardFlopsPerTokenNearTwiceActiveParams) {
  // The classic estimate: forward FLOPs per token ~ 2 * active non-embedding parameters (+ attention scores).
  ModelSpec m = model_from_json(json{{"base", "mixtral-8x7b"}}, "t", "");
  ParamCounts c = count_params(m);
  const double two_n = 2.0 * double(c.active - c.embedding + m.vocab * int64_t{m.hidden});  // LM head counted
  EXPECT_NEAR(model_forward_flops_per_token(m, 0) / two_n, 1.0, 0.001);
}

TEST(Flops, GemmBytes) {
  ModelSpec m = small();  // fp32
  const double d = 512, f = 2048, T = 100;
  EXPECT_DOUBLE_EQ(dense_ffn_cost(m, T).bytes, 4 * ((T * d + d * f + T * f) + (T * f + f * d + T * d)));
  EXPECT_DOUBLE_EQ(residual_cost(m, T).bytes, 4 * 3 * T * d);
  // Unfused attention writes and reads the T x s x heads scores 4 times on top of Q, K, V and the output.
  ModelSpec u = small({{"fused_attention", false}});
  EXPECT_DOUBLE_EQ(attention_scores_cost(u, T, 64).bytes - attention_scores_cost(m, T, 64).bytes, 4.0 * T * 64 * 8 * 4);
  EXPECT_DOUBLE_EQ(attention_scores_cost(m, T, 64).bytes, T * 4 * d * 4);
}

TEST(Flops, AllToAllBytes) {
  // DESIGN.md 4: 8k tokens per GPU, top-2, d = 512, fp32, capacity factor 1: 8192 * 2 * 512 * 4 bytes = 32 MiB.
  ModelSpec m = small();
  EXPECT_DOUBLE_EQ(alltoall_bytes_per_rank(m, 8192), 8192.0 * 2 * 512 * 4);
  EXPECT_DOUBLE_EQ(expert_capacity(m, 8192), 1024);
  // Padding: capacity is rounded up per expert; C = 1.25 pads by 25%.
  ModelSpec c = small({{"capacity_factor", 1.25}});
  EXPECT_DOUBLE_EQ(alltoall_bytes_per_rank(c, 8192), 16 * 1280.0 * 512 * 4);
  EXPECT_DOUBLE_EQ(expert_capacity(c, 100), std::ceil(1.25 * 100 * 2 / 16));
  // Dropless: exactly the routed tokens.
  ModelSpec dropless = small({{"capacity_factor", 0}});
  EXPECT_DOUBLE_EQ(alltoall_bytes_per_rank(dropless, 100), 100.0 * 2 * 512 * 4);
}

TEST(Flops, OpKindNames) {
  for (OpKind k : kAllOpKinds) EXPECT_EQ(parse_op_kind(op_kind_name(k)), k);
  EXPECT_FALSE(parse_op_kind("matmul").has_value());
  EXPECT_TRUE(uses_tensor_cores(OpKind::kGate));
  EXPECT_FALSE(uses_tensor_cores(OpKind::kElementwise));
}

}  // namespace
}  // namespace lina

// MoE model specs (DESIGN.md 2.6): the shape of a Transformer with Mixture-of-Experts layers, read from JSON
// (models/*.json, or inline in an experiment), and the parameter counts derived from it.
//
// One struct covers the paper's models (Transformer-XL, GPT-2, BERT2GPT2: dense attention, every FFN an MoE layer)
// and current ones (Mixtral: gated FFN and grouped-query attention; DeepSeek-V2-Lite: multi-head latent attention,
// fine-grained and shared experts, a first dense layer; Qwen1.5-MoE: shared expert). The parameter formulas are in
// model_spec.cpp (count_params), the FLOP and byte formulas in flops.cpp. Every field is documented in the parameter
// table (model_params(), `lina params`).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "sched/params.hpp"

namespace lina {

// Multi-head latent attention (DeepSeek-V2, arXiv 2405.04434 section 2.1): keys and values are compressed into a
// latent of kv_lora_rank per token (plus a shared RoPE key); queries optionally through a latent of q_lora_rank.
struct MlaSpec {
  int q_lora_rank = 0;  // 0: queries projected directly from the hidden state (DeepSeek-V2-Lite)
  int kv_lora_rank = 512;
  int qk_nope_head_dim = 128;
  int qk_rope_head_dim = 64;
  int v_head_dim = 128;
};

struct ModelSpec {
  std::string name;    // "Mixtral-8x7B"
  std::string source;  // where the configuration comes from

  // Layers. `layers` is the main stack (the decoder of an encoder-decoder model, or the only stack);
  // `encoder_layers` > 0 makes an encoder-decoder model whose decoder layers also carry cross-attention (BERT2GPT2).
  // Global layer index: encoder layers first (0 .. encoder_layers-1), then the main stack.
  int layers = 0;
  int encoder_layers = 0;

  int hidden = 0;          // d
  int ffn = 0;             // f of the dense FFN layers
  int expert_ffn = 0;      // f of one routed expert (fine-grained experts: smaller than ffn)
  bool gated_ffn = false;  // SwiGLU: three d x f matrices (gate, up, down) instead of two

  enum class Attention { kMha, kRelative, kMla };
  // kMha: standard multi-head attention, grouped-query when kv_heads < heads.
  // kRelative: Transformer-XL relative attention (Dai et al. 2019, arXiv 1901.02860 section 3.3): an extra d x d
  //   projection of the relative position embeddings, two learned biases u, v, and a second score matrix.
  // kMla: multi-head latent attention (mla).
  Attention attention = Attention::kMha;
  int heads = 0;
  int kv_heads = 0;  // = heads unless GQA/MQA
  int head_dim = 0;  // = hidden / heads unless set
  MlaSpec mla;
  // Whether the attention kernel keeps the score matrix on chip (FlashAttention) or writes and reads the
  // tokens x context x heads scores and probabilities through HBM (PyTorch 1.10, the paper's software).
  bool fused_attention = true;

  int experts = 0;  // routed experts per MoE layer (E); 0: a dense model
  int top_k = 0;
  // Capacity factor C: each expert takes at most ceil(C * tokens * top_k / E) tokens and the dispatch buffers are
  // padded to that (DeepSpeed-MoE, GShard). 0: no capacity limit (dropless; only routed tokens are sent).
  double capacity_factor = 1.0;
  // Token dispatch inside the MoE layer (sched/flops.hpp): sparse (gather kernels: Tutel, Megatron, vLLM) or dense
  // (DeepSpeed-MoE's einsums over [tokens, experts, capacity] masks, the implementation the Lina paper's systems ran
  // on; quadratic in the tokens per GPU).
  bool dense_dispatch = false;
  int shared_experts = 0;     // experts every token goes through, on every MoE layer (DeepSeek, Qwen1.5-MoE)
  int shared_expert_ffn = 0;  // f of one shared expert

  // Which layers are MoE: every layer of each stack (after first_dense_layers), every other one (odd indices in the
  // stack, as GShard), or an explicit list of global indices.
  enum class MoePattern { kAll, kEveryOther, kList };
  MoePattern moe_pattern = MoePattern::kAll;
  std::vector<int> moe_layer_list;  // kList: global indices
  int first_dense_layers = 0;       // kAll / kEveryOther: the first k layers of each stack stay dense (DeepSeek)

  std::string dtype = "bf16";          // activations, weights and gradients in memory and on the wire
  std::string compute_dtype = "bf16";  // the tensor-core mode GEMMs run in (fp32 storage may compute in tf32)

  int vocab = 0;
  int encoder_vocab = 0;  // encoder-decoder: the encoder's vocabulary (= vocab unless set)
  bool tie_embeddings = false;
  int learned_positions = 0;  // learned absolute position embeddings (GPT-2, BERT: 1024, 512); 0: none
  bool rmsnorm = false;       // RMSNorm (d weights) instead of LayerNorm (d weights + d biases)
  bool bias = false;          // linear layers carry biases (GPT-2, BERT, Transformer-XL FFN)

  // --- derived geometry ---
  int total_layers() const { return encoder_layers + layers; }
  bool is_encoder_layer(int global_layer) const { return global_layer < encoder_layers; }
  bool is_moe_layer(int global_layer) const;
  bool has_cross_attention(int global_layer) const { return encoder_layers > 0 && !is_encoder_layer(global_layer); }
  int moe_layer_count() const;
  std::vector<int> moe_layers() const;  // global indices, ascending
  int dtype_bytes() const;              // bytes per element of `dtype`
  int kv_heads_or_heads() const { return kv_heads > 0 ? kv_heads : heads; }
  int head_dim_or_default() const { return head_dim > 0 ? head_dim : hidden / heads; }
  int q_dim() const;   // width of all query heads (and of the key heads they score against)
  int kv_dim() const;  // width of the key (and value) projection output: kv heads x head dim
  int v_dim() const;   // width of all value heads (the input of the output projection)
};

// Parameter counts (numbers of weights, not bytes). The formulas are in model_spec.cpp.
struct ParamCounts {
  int64_t embedding = 0;          // token (+ position) embeddings and the output projection when untied
  int64_t attention = 0;          // all self- and cross-attention projections (MLA: with its latent norms)
  int64_t dense_ffn = 0;          // the FFNs of dense layers
  int64_t routed_experts = 0;     // all routed experts of all MoE layers
  int64_t shared_experts = 0;     // all shared experts of all MoE layers
  int64_t gates = 0;              // router weights
  int64_t norms = 0;              // LayerNorm / RMSNorm weights
  int64_t per_expert = 0;         // one routed expert
  int64_t experts_per_layer = 0;  // routed experts of one MoE layer (E * per_expert)
  int64_t total = 0;
  int64_t non_expert = 0;  // total - routed_experts: replicated on every data-parallel rank
  int64_t active = 0;      // per token: everything but the routed experts not chosen (top_k of E)
  // Active without the input embedding table (only one row is read per token); DeepSeek's "activated" count.
  int64_t active_no_input_embedding = 0;
};
ParamCounts count_params(const ModelSpec& m);

// Parameter table ("model.*") for `lina params` and the loader.
const std::vector<ParamDef>& model_params();

// Parses a model object. `file` and `pointer` locate it for error messages. A "base" field (a preset name or file)
// loads that model first; the object's other fields override it ({"base": "transformer-xl", "experts": 8}).
ModelSpec model_from_json(const nlohmann::json& j, const std::string& file, const std::string& pointer);
// Resolves a preset name ("mixtral-8x7b"), a path to a JSON file, or an inline object.
ModelSpec load_model(const nlohmann::json& ref, const std::string& file, const std::string& pointer);

// A short multi-line description with the derived parameter counts (printed by `lina run` and `lina model`).
std::string describe_model(const ModelSpec& m);

}  // namespace lina

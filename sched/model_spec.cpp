#include "sched/model_spec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "sched/error.hpp"
#include "sched/param_helpers.hpp"
#include "sched/presets.hpp"

namespace lina {
namespace {

using nlohmann::json;
using namespace param_helpers;

const std::vector<std::string> kStorageDtypes = {"fp32", "fp16", "bf16", "fp8"};

// Weights of one FFN of inner size f: two d x f matrices (up, down), three when gated (SwiGLU: gate, up, down;
// Shazeer 2020, arXiv 2002.05202), plus biases (f or 2f, and d) when the model has them.
int64_t ffn_params(const ModelSpec& m, int64_t f) {
  const int64_t d = m.hidden;
  int64_t p = (m.gated_ffn ? 3 : 2) * d * f;
  if (m.bias) p += (m.gated_ffn ? 2 : 1) * f + d;
  return p;
}

// Weights of one self-attention block (projections only; its pre-norm is counted with the norms).
//   MHA/GQA: W_q d x (h*dh), W_k and W_v d x (h_kv*dh), W_o (h*dh) x d; biases q_dim + 2 kv_dim + d.
//   Relative (Transformer-XL): + W_r d x (h*dh) projecting the relative position embeddings, + the biases u and v
//     (h*dh each; counted per layer, as with untie_r).
//   MLA (DeepSeek-V2 section 2.1.2-2.1.3): W_q d x h*(dn+dr) (or W_dq d x rq, norm rq, W_uq rq x h*(dn+dr));
//     W_dkv d x (rkv + dr) (the latent and the shared RoPE key), norm rkv, W_ukv rkv x h*(dn+dv), W_o h*dv x d.
int64_t attention_params(const ModelSpec& m) {
  const int64_t d = m.hidden, h = m.heads;
  if (m.attention == ModelSpec::Attention::kMla) {
    const MlaSpec& a = m.mla;
    const int64_t qk = a.qk_nope_head_dim + a.qk_rope_head_dim;
    int64_t p = a.q_lora_rank > 0 ? d * a.q_lora_rank + a.q_lora_rank + int64_t{a.q_lora_rank} * h * qk : d * h * qk;
    p += d * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank;
    p += int64_t{a.kv_lora_rank} * h * (a.qk_nope_head_dim + a.v_head_dim);
    p += h * a.v_head_dim * d;
    return p;
  }
  const int64_t q = m.q_dim(), kv = m.kv_dim(), v = m.v_dim();
  int64_t p = d * q + 2 * d * kv + v * d;
  if (m.bias) p += q + 2 * kv + d;
  if (m.attention == ModelSpec::Attention::kRelative) p += d * q + 2 * q;
  return p;
}

// Cross-attention of a decoder layer: a standard MHA block (queries from the decoder, keys and values from the
// encoder output), as in BERT2GPT2 (HuggingFace EncoderDecoderModel adds GPT-2 cross-attention layers).
int64_t cross_attention_params(const ModelSpec& m) {
  const int64_t d = m.hidden, q = int64_t{m.heads} * m.head_dim_or_default();
  return 4 * d * q + (m.bias ? 3 * q + d : 0);
}

int64_t norm_params(const ModelSpec& m) { return (m.rmsnorm ? 1 : 2) * int64_t{m.hidden}; }

}  // namespace

const std::vector<ParamDef>& model_params() {
  static const std::vector<ParamDef> t = {
      text("model.base", "",
           "a model preset or file to start from; the other fields of this object override it (e.g. "
           "{\"base\": \"transformer-xl\", \"experts\": 8})"),
      text("model.name", "custom", "model name, for reports"),
      text("model.source", "", "where the configuration comes from (paper, config file)"),
      text("model.notes", "", "free text: choices made where the source is silent"),
      integer("model.layers", nullptr, "layers of the main stack (the decoder of an encoder-decoder model)", 1, 100000),
      integer("model.encoder_layers", 0,
              "encoder layers of an encoder-decoder model (its decoder layers get cross-attention); 0: none", 0,
              100000),
      integer("model.hidden", nullptr, "hidden size d", 1, 1 << 20),
      integer("model.ffn", nullptr, "inner size f of the dense FFN layers", 1, 1 << 22),
      integer("model.expert_ffn", 0, "inner size of one routed expert's FFN; 0: the same as ffn", 0, 1 << 22),
      boolean("model.gated_ffn", false, "gated FFN (SwiGLU: three d x f matrices instead of two; Mixtral, DeepSeek)"),
      choice("model.attention", {"mha", "relative", "mla"}, "mha",
             "attention kind: mha (multi-head, grouped-query when kv_heads < heads), relative (Transformer-XL), mla "
             "(DeepSeek-V2 multi-head latent attention)"),
      integer("model.heads", nullptr, "attention heads", 1, 1 << 16),
      integer("model.kv_heads", 0, "key/value heads (GQA); 0: the same as heads", 0, 1 << 16),
      integer("model.head_dim", 0, "dimension of one head; 0: hidden / heads", 0, 1 << 16),
      obj("model.mla", "multi-head latent attention sizes (attention = mla)"),
      integer("model.mla.q_lora_rank", 0, "query latent rank; 0: queries projected directly", 0, 1 << 20),
      integer("model.mla.kv_lora_rank", 512, "key/value latent rank", 1, 1 << 20),
      integer("model.mla.qk_nope_head_dim", 128, "per-head query/key dimension without rotary embedding", 1, 1 << 16),
      integer("model.mla.qk_rope_head_dim", 64, "per-head query/key dimension with rotary embedding", 0, 1 << 16),
      integer("model.mla.v_head_dim", 128, "per-head value dimension", 1, 1 << 16),
      boolean("model.fused_attention", true,
              "the attention kernel keeps scores on chip (FlashAttention); false: scores and probabilities go "
              "through HBM (PyTorch 1.10, the paper's software)"),
      integer("model.experts", nullptr, "routed experts per MoE layer (E); 0: a dense model", 0, 1 << 20),
      integer("model.top_k", 2, "experts each token is routed to", 1, 1 << 10),
      number("model.capacity_factor", 1.0,
             "expert capacity factor C: an expert takes at most ceil(C * tokens * top_k / E) tokens and dispatch "
             "buffers are padded to it (DeepSpeed-MoE; the tokens over it are dropped, in training and inference); "
             "0: no limit (dropless)",
             0, 1e6),
      choice("model.dispatch", {"sparse", "dense"}, "sparse",
             "token dispatch in the MoE layer: sparse (gather kernels: Tutel, Megatron, vLLM) or dense "
             "(DeepSpeed-MoE's einsums over [tokens, experts, capacity] masks, 2*S*E*C*d FLOPs each way; the paper's "
             "models use it)"),
      integer("model.shared_experts", 0, "shared experts every token goes through on every MoE layer", 0, 1 << 10),
      integer("model.shared_expert_ffn", 0, "inner size of one shared expert; 0: the same as expert_ffn", 0, 1 << 22),
      list("model.moe_layers", "all",
           "which layers are MoE: \"all\", \"every_other\" (odd indices of each stack, as GShard), \"none\", or a "
           "list of global layer indices (encoder layers first)"),
      integer("model.first_dense_layers", 0, "with all / every_other: the first k layers of each stack stay dense", 0,
              100000),
      choice("model.dtype", kStorageDtypes, "bf16", "element type of weights, activations and gradients"),
      choice("model.compute_dtype", {"same", "fp32", "tf32", "fp16", "bf16", "fp8"}, "same",
             "tensor-core mode of the GEMMs (fp32 storage computes in tf32 when PyTorch allows it); same: dtype"),
      integer("model.vocab", nullptr, "vocabulary size (embedding rows)", 1, 1 << 28),
      integer("model.encoder_vocab", 0, "encoder-decoder: the encoder's vocabulary; 0: the same as vocab", 0, 1 << 28),
      boolean("model.tie_embeddings", false, "the output projection shares the input embedding matrix"),
      integer("model.learned_positions", 0, "learned absolute position embeddings per stack (GPT-2: 1024); 0: none", 0,
              1 << 24),
      choice("model.norm", {"layernorm", "rmsnorm"}, "layernorm", "normalisation (layernorm: 2d weights, rmsnorm: d)"),
      boolean("model.bias", false, "linear layers carry biases (GPT-2, BERT)"),
  };
  return t;
}

bool ModelSpec::is_moe_layer(int g) const {
  if (experts == 0 || g < 0 || g >= total_layers()) return false;
  switch (moe_pattern) {
    case MoePattern::kList:
      return std::find(moe_layer_list.begin(), moe_layer_list.end(), g) != moe_layer_list.end();
    case MoePattern::kAll:
    case MoePattern::kEveryOther: {
      const int in_stack = g < encoder_layers ? g : g - encoder_layers;
      if (in_stack < first_dense_layers) return false;
      return moe_pattern == MoePattern::kAll || in_stack % 2 == 1;
    }
  }
  return false;
}

std::vector<int> ModelSpec::moe_layers() const {
  std::vector<int> out;
  for (int g = 0; g < total_layers(); ++g) {
    if (is_moe_layer(g)) out.push_back(g);
  }
  return out;
}

int ModelSpec::moe_layer_count() const { return static_cast<int>(moe_layers().size()); }

int ModelSpec::dtype_bytes() const {
  if (dtype == "fp32" || dtype == "tf32") return 4;
  if (dtype == "fp16" || dtype == "bf16") return 2;
  if (dtype == "fp8") return 1;
  throw InputError(fmt::format("model {}: unknown dtype '{}'", name, dtype));
}

int ModelSpec::q_dim() const { return heads * head_dim_or_default(); }
int ModelSpec::kv_dim() const { return kv_heads_or_heads() * head_dim_or_default(); }
int ModelSpec::v_dim() const {
  return attention == Attention::kMla ? heads * mla.v_head_dim : heads * head_dim_or_default();
}

// Counts, all in numbers of weights:
//   embedding   = vocab*d (+ encoder_vocab*d) + learned_positions*d per stack + (untied) vocab*d output projection
//   attention   = per layer attention_params (+ cross_attention_params on decoder layers of an encoder-decoder)
//   norms       = per layer 2 norms (+1 with cross-attention), + 1 final norm per stack
//   dense_ffn   = per dense layer ffn_params(ffn)
//   routed      = per MoE layer E * ffn_params(expert_ffn);  shared = per MoE layer S * ffn_params(shared_expert_ffn)
//   gates       = per MoE layer d * E
//   active      = total - routed + MoE layers * top_k * ffn_params(expert_ffn)
ParamCounts count_params(const ModelSpec& m) {
  ParamCounts c;
  const int64_t d = m.hidden;
  const int stacks = m.encoder_layers > 0 ? 2 : 1;
  const int64_t input_embedding =
      int64_t{m.vocab} * d + (m.encoder_layers > 0 ? int64_t{m.encoder_vocab > 0 ? m.encoder_vocab : m.vocab} * d : 0) +
      stacks * int64_t{m.learned_positions} * d;
  c.embedding = input_embedding + (m.tie_embeddings ? 0 : int64_t{m.vocab} * d);
  c.per_expert = ffn_params(m, m.expert_ffn > 0 ? m.expert_ffn : m.ffn);
  c.experts_per_layer = c.per_expert * m.experts;
  const int64_t shared = m.shared_experts * ffn_params(m, m.shared_expert_ffn > 0 ? m.shared_expert_ffn
                                                          : m.expert_ffn > 0      ? m.expert_ffn
                                                                                  : m.ffn);
  c.norms = stacks * norm_params(m);
  int moe = 0;
  for (int g = 0; g < m.total_layers(); ++g) {
    c.attention += attention_params(m);
    c.norms += 2 * norm_params(m);
    if (m.has_cross_attention(g)) {
      c.attention += cross_attention_params(m);
      c.norms += norm_params(m);
    }
    if (m.is_moe_layer(g)) {
      ++moe;
      c.routed_experts += c.experts_per_layer;
      c.shared_experts += shared;
      c.gates += d * m.experts;
    } else {
      c.dense_ffn += ffn_params(m, m.ffn);
    }
  }
  c.total = c.embedding + c.attention + c.dense_ffn + c.routed_experts + c.shared_experts + c.gates + c.norms;
  c.non_expert = c.total - c.routed_experts;
  c.active = c.non_expert + int64_t{moe} * std::min(m.top_k, m.experts) * c.per_expert;
  c.active_no_input_embedding =
      c.active - (m.tie_embeddings ? stacks * int64_t{m.learned_positions} * d : input_embedding);
  return c;
}

ModelSpec model_from_json(const json& j_in, const std::string& file, const std::string& pointer) {
  // "base": the base model (validated on its own, so its errors name its file) with the overrides.
  const json j =
      merge_over_base(j_in, file, pointer, "models", "model",
                      [](const json& b, const std::string& f, const std::string& p) { model_from_json(b, f, p); });
  SpecReader r(j, file, pointer, model_params(), "model");
  ModelSpec m;
  r.string("base");
  m.name = r.string("name");
  m.source = r.string("source");
  r.string("notes");
  m.layers = static_cast<int>(r.integer("layers"));
  m.encoder_layers = static_cast<int>(r.integer("encoder_layers"));
  m.hidden = static_cast<int>(r.integer("hidden"));
  m.ffn = static_cast<int>(r.integer("ffn"));
  m.expert_ffn = static_cast<int>(r.integer("expert_ffn"));
  if (m.expert_ffn == 0) m.expert_ffn = m.ffn;
  m.gated_ffn = r.boolean("gated_ffn");
  const std::string att = r.choice("attention");
  m.attention = att == "relative" ? ModelSpec::Attention::kRelative
                : att == "mla"    ? ModelSpec::Attention::kMla
                                  : ModelSpec::Attention::kMha;
  m.heads = static_cast<int>(r.integer("heads"));
  m.kv_heads = static_cast<int>(r.integer("kv_heads"));
  if (m.kv_heads == 0) m.kv_heads = m.heads;
  if (m.kv_heads > m.heads || m.heads % m.kv_heads != 0) {
    r.fail("kv_heads", fmt::format("kv_heads {} must divide heads {}", m.kv_heads, m.heads));
  }
  m.head_dim = static_cast<int>(r.integer("head_dim"));
  if (m.head_dim == 0) {
    if (m.hidden % m.heads != 0) {
      r.fail("heads", fmt::format("hidden {} is not a multiple of heads {}: set head_dim", m.hidden, m.heads));
    }
    m.head_dim = m.hidden / m.heads;
  }
  {
    const bool has_mla = r.has("mla");
    SpecReader s = r.child("mla");
    m.mla.q_lora_rank = static_cast<int>(s.integer("q_lora_rank"));
    m.mla.kv_lora_rank = static_cast<int>(s.integer("kv_lora_rank"));
    m.mla.qk_nope_head_dim = static_cast<int>(s.integer("qk_nope_head_dim"));
    m.mla.qk_rope_head_dim = static_cast<int>(s.integer("qk_rope_head_dim"));
    m.mla.v_head_dim = static_cast<int>(s.integer("v_head_dim"));
    s.finish();
    if (has_mla && m.attention != ModelSpec::Attention::kMla) r.fail("mla", "mla sizes given but attention is not mla");
  }
  m.fused_attention = r.boolean("fused_attention");
  m.experts = static_cast<int>(r.integer("experts"));
  m.top_k = static_cast<int>(r.integer("top_k"));
  if (m.experts > 0 && m.top_k > m.experts) {
    r.fail("top_k", fmt::format("top_k {} is larger than the number of experts {}", m.top_k, m.experts));
  }
  m.capacity_factor = r.quantity("capacity_factor");
  m.dense_dispatch = r.choice("dispatch") == "dense";
  m.shared_experts = static_cast<int>(r.integer("shared_experts"));
  m.shared_expert_ffn = static_cast<int>(r.integer("shared_expert_ffn"));
  if (m.shared_expert_ffn == 0) m.shared_expert_ffn = m.expert_ffn;
  {
    const json& ml = r.raw("moe_layers");
    if (ml.is_string()) {
      const std::string s = ml.get<std::string>();
      if (s == "all") {
        m.moe_pattern = ModelSpec::MoePattern::kAll;
      } else if (s == "every_other") {
        m.moe_pattern = ModelSpec::MoePattern::kEveryOther;
      } else if (s == "none") {
        m.moe_pattern = ModelSpec::MoePattern::kList;
      } else {
        std::string near = nearest(s, {"all", "every_other", "none"});
        r.fail("moe_layers", fmt::format("unknown value '{}': expected \"all\", \"every_other\", \"none\" or a list of "
                                         "layer indices{}",
                                         s, near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
      }
    } else if (ml.is_array()) {
      m.moe_pattern = ModelSpec::MoePattern::kList;
      for (const auto& v : ml) {
        if (!v.is_number_integer()) r.fail("moe_layers", "expected a list of integer layer indices");
        const int64_t g = v.get<int64_t>();
        if (g < 0 || g >= m.total_layers()) {
          r.fail("moe_layers",
                 fmt::format("layer index {} is out of range: the model has {} layers", g, m.total_layers()));
        }
        m.moe_layer_list.push_back(static_cast<int>(g));
      }
      std::sort(m.moe_layer_list.begin(), m.moe_layer_list.end());
      m.moe_layer_list.erase(std::unique(m.moe_layer_list.begin(), m.moe_layer_list.end()), m.moe_layer_list.end());
    } else {
      r.fail("moe_layers", "expected \"all\", \"every_other\", \"none\" or a list of layer indices");
    }
  }
  m.first_dense_layers = static_cast<int>(r.integer("first_dense_layers"));
  m.dtype = r.choice("dtype");
  m.compute_dtype = r.choice("compute_dtype");
  if (m.compute_dtype == "same") m.compute_dtype = m.dtype;
  m.vocab = static_cast<int>(r.integer("vocab"));
  m.encoder_vocab = static_cast<int>(r.integer("encoder_vocab"));
  if (m.encoder_layers == 0 && m.encoder_vocab > 0) r.fail("encoder_vocab", "encoder_vocab without encoder_layers");
  m.tie_embeddings = r.boolean("tie_embeddings");
  m.learned_positions = static_cast<int>(r.integer("learned_positions"));
  m.rmsnorm = r.choice("norm") == "rmsnorm";
  m.bias = r.boolean("bias");
  r.finish();
  return m;
}

ModelSpec load_model(const json& ref, const std::string& file, const std::string& pointer) {
  auto [j, origin] = resolve_spec_reference(ref, file, pointer, "models", "model");
  ModelSpec m = model_from_json(j, origin, origin == file ? pointer : "");
  if (m.name == "custom" && ref.is_string()) m.name = ref.get<std::string>();
  return m;
}

namespace {

std::string count_str(int64_t n) {
  const double x = static_cast<double>(n);
  if (x >= 1e9) return fmt::format("{:.2f}B", x / 1e9);
  if (x >= 1e6) return fmt::format("{:.1f}M", x / 1e6);
  if (x >= 1e3) return fmt::format("{:.1f}K", x / 1e3);
  return fmt::format("{}", n);
}

}  // namespace

std::string describe_model(const ModelSpec& m) {
  const ParamCounts c = count_params(m);
  std::string layers = m.encoder_layers > 0 ? fmt::format("{} encoder + {} decoder layers", m.encoder_layers, m.layers)
                                            : fmt::format("{} layers", m.layers);
  std::string attention = m.attention == ModelSpec::Attention::kMla        ? fmt::format("MLA, {} heads", m.heads)
                          : m.attention == ModelSpec::Attention::kRelative ? fmt::format("relative, {} heads", m.heads)
                          : m.kv_heads < m.heads ? fmt::format("{} heads / {} kv heads", m.heads, m.kv_heads)
                                                 : fmt::format("{} heads", m.heads);
  std::string out = fmt::format("model {}: {} ({} MoE), d={}, ffn={}{}, {}\n", m.name, layers, m.moe_layer_count(),
                                m.hidden, m.ffn, m.gated_ffn ? " gated" : "", attention);
  if (m.experts > 0) {
    out += fmt::format(
        "  experts: {} routed (ffn {}){}, top-{}, {}\n", m.experts, m.expert_ffn,
        m.shared_experts > 0 ? fmt::format(" + {} shared (ffn {})", m.shared_experts, m.shared_expert_ffn) : "",
        m.top_k,
        m.capacity_factor > 0 ? fmt::format("capacity factor {:g}", m.capacity_factor)
                              : std::string("dropless (no capacity limit)"));
  }
  out += fmt::format("  dtype {} (GEMMs in {}), vocab {}\n", m.dtype, m.compute_dtype, m.vocab);
  out += fmt::format("  parameters: {} total, {} active per token; routed experts {} ({} each), non-expert {}\n",
                     count_str(c.total), count_str(c.active), count_str(c.routed_experts), count_str(c.per_expert),
                     count_str(c.non_expert));
  if (!m.source.empty()) out += fmt::format("  source: {}\n", m.source);
  return out;
}

}  // namespace lina

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sched/error.hpp"
#include "sched/model_spec.hpp"
#include "sched/presets.hpp"

namespace lina {
namespace {

using nlohmann::json;

ModelSpec preset(const std::string& name) { return load_model(json(name), "test.json", "/model"); }

// Relative error of a derived count against a published one.
double rel(int64_t derived, double published) { return std::abs(static_cast<double>(derived) - published) / published; }

TEST(ModelSpec, MixtralMatchesPublishedCounts) {
  ModelSpec m = preset("mixtral-8x7b");
  ParamCounts c = count_params(m);
  // Published: 46.7B total, 12.9B active (arXiv 2401.04088; HF model card).
  EXPECT_LT(rel(c.total, 46.7e9), 0.02) << c.total;
  EXPECT_LT(rel(c.active, 12.9e9), 0.02) << c.active;
  // Closed form for one expert: 3 * 4096 * 14336 (SwiGLU, no biases).
  EXPECT_EQ(c.per_expert, int64_t{3} * 4096 * 14336);
  EXPECT_EQ(m.moe_layer_count(), 32);
  EXPECT_EQ(m.kv_dim(), 8 * 128);
}

TEST(ModelSpec, DeepSeekV2LiteMatchesPublishedCounts) {
  ModelSpec m = preset("deepseek-v2-lite");
  ParamCounts c = count_params(m);
  EXPECT_LT(rel(c.total, 15.7e9), 0.02) << c.total;
  // 2.4B activated, counted without the input embedding (rounded to one decimal, hence 3%).
  EXPECT_LT(rel(c.active_no_input_embedding, 2.4e9), 0.03) << c.active_no_input_embedding;
  EXPECT_EQ(m.moe_layer_count(), 26);
  EXPECT_FALSE(m.is_moe_layer(0));
  EXPECT_TRUE(m.is_moe_layer(1));
  EXPECT_EQ(c.per_expert, int64_t{3} * 2048 * 1408);
  EXPECT_EQ(c.dense_ffn, int64_t{3} * 2048 * 10944);
  EXPECT_EQ(c.shared_experts, int64_t{26} * 2 * 3 * 2048 * 1408);
}

TEST(ModelSpec, DeepSeekV3MatchesPublishedCounts) {
  ModelSpec m = preset("deepseek-v3");
  ParamCounts c = count_params(m);
  // Published: 671B total, 37B activated (arXiv 2412.19437), both without the multi-token prediction module.
  EXPECT_LT(rel(c.total, 671e9), 0.02) << c.total;
  EXPECT_LT(rel(c.active, 37e9), 0.02) << c.active;
  EXPECT_EQ(m.moe_layer_count(), 58);
  EXPECT_FALSE(m.is_moe_layer(2));
  EXPECT_TRUE(m.is_moe_layer(3));
  EXPECT_EQ(c.per_expert, int64_t{3} * 7168 * 2048);
  EXPECT_EQ(c.routed_experts, int64_t{58} * 256 * 3 * 7168 * 2048);
}

TEST(ModelSpec, QwenMoeMatchesPublishedCounts) {
  ModelSpec m = preset("qwen1.5-moe-a2.7b");
  ParamCounts c = count_params(m);
  EXPECT_LT(rel(c.total, 14.3e9), 0.02) << c.total;
  EXPECT_LT(rel(c.active, 2.7e9), 0.02) << c.active;
}

TEST(ModelSpec, Llama4MaverickMatchesPublishedCounts) {
  ModelSpec m = preset("llama-4-maverick");
  ParamCounts c = count_params(m);
  // Published: 400B total, 17B active (Meta, The Llama 4 herd; HF model card of Llama-4-Maverick-17B-128E).
  EXPECT_LT(rel(c.total, 400e9), 0.02) << c.total;
  EXPECT_LT(rel(c.active, 17e9), 0.02) << c.active;
  // MoE on the odd layers 1, 3, ..., 47 (interleave_moe_layer_step 2), as in the recorded traces.
  EXPECT_EQ(m.moe_layer_count(), 24);
  EXPECT_FALSE(m.is_moe_layer(0));
  EXPECT_TRUE(m.is_moe_layer(1));
  EXPECT_TRUE(m.is_moe_layer(47));
  EXPECT_EQ(c.per_expert, int64_t{3} * 5120 * 8192);
  EXPECT_EQ(c.shared_experts, int64_t{24} * 3 * 5120 * 8192);
  EXPECT_EQ(c.dense_ffn, int64_t{24} * 3 * 5120 * 16384);
  EXPECT_EQ(m.kv_dim(), 8 * 128);
}

TEST(ModelSpec, PaperTable1ReadingOfTransformerXl) {
  // DESIGN.md section 4: 12 layers, 16 experts -> 419M parameters; 4 experts -> 117M (Lina Table 1).
  ModelSpec m16 = load_model(json{{"base", "transformer-xl"}, {"layers", 12}}, "t.json", "/model");
  EXPECT_LT(rel(count_params(m16).total, 419e6), 0.02) << count_params(m16).total;
  ModelSpec m4 = load_model(json{{"base", "transformer-xl"}, {"layers", 12}, {"experts", 4}}, "t.json", "/model");
  EXPECT_LT(rel(count_params(m4).total, 117e6), 0.02) << count_params(m4).total;
  EXPECT_EQ(m4.name, "Transformer-XL");
  EXPECT_EQ(m4.dtype_bytes(), 4);
  EXPECT_EQ(m4.compute_dtype, "tf32");
}

TEST(ModelSpec, DenseGpt2Is124M) {
  ModelSpec m = load_model(json{{"base", "gpt2"}, {"experts", 0}}, "t.json", "/model");
  EXPECT_EQ(m.moe_layer_count(), 0);
  // HuggingFace gpt2: 124,439,808 parameters.
  EXPECT_EQ(count_params(m).total, 124439808);
}

TEST(ModelSpec, EncoderDecoderHasCrossAttentionInTheDecoder) {
  ModelSpec m = preset("bert2gpt2");
  EXPECT_EQ(m.total_layers(), 24);
  EXPECT_EQ(m.moe_layer_count(), 24);
  EXPECT_FALSE(m.has_cross_attention(0));
  EXPECT_TRUE(m.has_cross_attention(12));
  ModelSpec dec_only = load_model(json{{"base", "bert2gpt2"}, {"encoder_layers", 0}, {"encoder_vocab", 0}}, "t", "");
  // The encoder adds 12 layers, 12 cross-attention blocks (4 d^2 + biases each) and its embeddings.
  EXPECT_GT(count_params(m).attention - count_params(dec_only).attention, int64_t{24} * 4 * 768 * 768);
}

TEST(ModelSpec, MoeLayerPatterns) {
  json base = {{"layers", 6}, {"hidden", 64}, {"ffn", 256}, {"heads", 4}, {"experts", 4}, {"vocab", 100}};
  json j = base;
  j["moe_layers"] = "every_other";
  EXPECT_EQ(model_from_json(j, "t", "").moe_layers(), (std::vector<int>{1, 3, 5}));
  j["moe_layers"] = json::array({0, 4, 4});
  EXPECT_EQ(model_from_json(j, "t", "").moe_layers(), (std::vector<int>{0, 4}));
  j["moe_layers"] = "none";
  EXPECT_EQ(model_from_json(j, "t", "").moe_layer_count(), 0);
  j["moe_layers"] = "all";
  j["first_dense_layers"] = 2;
  EXPECT_EQ(model_from_json(j, "t", "").moe_layers(), (std::vector<int>{2, 3, 4, 5}));
}

TEST(ModelSpec, DescribeNamesTheCounts) {
  std::string s = describe_model(preset("mixtral-8x7b"));
  EXPECT_NE(s.find("Mixtral-8x7B"), std::string::npos);
  EXPECT_NE(s.find("46.70B total"), std::string::npos) << s;
  EXPECT_NE(s.find("32 heads / 8 kv heads"), std::string::npos) << s;
}

TEST(ModelSpec, AllPresetsLoad) {
  auto names = preset_names("models");
  EXPECT_GE(names.size(), 6u);
  for (const auto& n : names) {
    ModelSpec m = preset(n);
    EXPECT_GT(count_params(m).total, 0) << n;
    EXPECT_FALSE(m.source.empty()) << n;
  }
}

// Error messages: where and what.
std::string error_of(const json& j) {
  try {
    model_from_json(j, "spec.json", "/model");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(ModelSpecErrors, UnknownFieldSuggestsTheNearest) {
  json j = {{"layers", 2}, {"hidden", 64}, {"ffn", 256}, {"heads", 4}, {"experts", 4}, {"vocab", 100}, {"topk", 2}};
  EXPECT_EQ(error_of(j), "spec.json: /model/topk: unknown field 'topk' (did you mean 'top_k'?)");
}

TEST(ModelSpecErrors, WrongType) {
  json j = {{"layers", "two"}, {"hidden", 64}, {"ffn", 256}, {"heads", 4}, {"experts", 4}, {"vocab", 100}};
  EXPECT_EQ(error_of(j), "spec.json: /model/layers: expected an integer, got string \"two\"");
}

TEST(ModelSpecErrors, MissingRequired) {
  json j = {{"layers", 2}, {"ffn", 256}, {"heads", 4}, {"experts", 4}, {"vocab", 100}};
  EXPECT_NE(error_of(j).find("spec.json: /model/hidden: missing required field 'hidden'"), std::string::npos)
      << error_of(j);
}

TEST(ModelSpecErrors, OutOfRangeAndInconsistent) {
  json j = {{"layers", 0}, {"hidden", 64}, {"ffn", 256}, {"heads", 4}, {"experts", 4}, {"vocab", 100}};
  EXPECT_NE(error_of(j).find("/model/layers: value 0 is out of range"), std::string::npos) << error_of(j);
  j["layers"] = 2;
  j["top_k"] = 5;
  EXPECT_NE(error_of(j).find("/model/top_k: top_k 5 is larger than the number of experts 4"), std::string::npos);
  j["top_k"] = 2;
  j["kv_heads"] = 3;
  EXPECT_NE(error_of(j).find("/model/kv_heads"), std::string::npos);
  j.erase("kv_heads");
  j["moe_layers"] = json::array({7});
  EXPECT_NE(error_of(j).find("/model/moe_layers: layer index 7 is out of range"), std::string::npos);
  j["moe_layers"] = "evry_other";
  EXPECT_NE(error_of(j).find("(did you mean 'every_other'?)"), std::string::npos) << error_of(j);
  j["moe_layers"] = "all";
  j["dtype"] = "int4";
  EXPECT_NE(error_of(j).find("/model/dtype: unknown value 'int4'"), std::string::npos) << error_of(j);
}

TEST(ModelSpecErrors, UnknownPresetAndBadBase) {
  try {
    load_model(json("mixtral"), "spec.json", "/model");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown model preset 'mixtral'"), std::string::npos) << e.what();
  }
  EXPECT_NE(error_of(json{{"base", 3}}).find("/model/base: expected a model preset name"), std::string::npos);
  // An override of a base is checked like any field.
  EXPECT_NE(error_of(json{{"base", "gpt2"}, {"experts", -1}}).find("/model/experts: value -1 is out of range"),
            std::string::npos);
}

}  // namespace
}  // namespace lina

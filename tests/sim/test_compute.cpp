#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sched/error.hpp"
#include "sim/compute.hpp"

namespace lina::sim {
namespace {

using nlohmann::json;

GpuSpec a100() { return load_gpu(json("A100-40GB"), "t", ""); }

TEST(ComputeModel, ComputeBoundGemmByHand) {
  ComputeModel cm(a100());
  // 1 TFLOP, 100 MB: compute-bound. Default: t = launch 4 us + ramp 2 us + 1e12 / (0.7 * 312e12) s.
  Time t = cm.duration(OpKind::kGemm, 1e12, 1e8, "bf16");
  EXPECT_NEAR(t.seconds(), 4e-6 + 2e-6 + 1e12 / 2.184e14, 1e-12);
  EXPECT_GE(t.seconds(), 4e-6 + 2e-6 + 1e12 / 2.184e14 - 1e-15);  // rounded up, never down
  // The default curve: half of 0.7 at x_half = 0.7 * 312e12 * 2e-6 = 436.8 MFLOP.
  EXPECT_NEAR(cm.compute_efficiency(OpKind::kGemm, 4.368e8, "bf16"), 0.35, 1e-12);
  EXPECT_NEAR(cm.compute_efficiency(OpKind::kGemm, 1e15, "bf16"), 0.7, 1e-6);
  // fp32 without tensor cores: 19.5 TFLOP/s peak; tf32: 156.
  EXPECT_NEAR(cm.duration(OpKind::kGemm, 1e12, 0, "tf32").seconds(), 4e-6 + 2e-6 + 1e12 / (0.7 * 156e12), 1e-12);
  EXPECT_NEAR(cm.duration(OpKind::kGemm, 1e12, 0, "fp32").seconds(), 4e-6 + 2e-6 + 1e12 / (0.7 * 19.5e12), 1e-12);
}

TEST(ComputeModel, MemoryBoundElementwiseByHand) {
  ComputeModel cm(a100());
  // 1.244 GB moved, 100 MFLOP: memory-bound. t = 4 us + 1 us ramp + 1.244e9 / (0.8 * 1555e9) s = 1.005 ms.
  Time t = cm.duration(OpKind::kElementwise, 1e8, 1.244e9, "bf16");
  EXPECT_NEAR(t.seconds(), 4e-6 + 1e-6 + 1e-3, 1e-12);
  // A tiny kernel costs about its launch overhead.
  EXPECT_LT(cm.duration(OpKind::kElementwise, 1e3, 4e3, "fp32").seconds(), 4e-6 + 1.1e-6);
}

TEST(ComputeModel, RealOpsFromFlops) {
  // An expert FFN of the paper's Transformer-XL (d 512, f 2048, TF32) on 2048 tokens: 8.6 GFLOP, compute-bound.
  ModelSpec m = load_model(json("transformer-xl"), "t", "");
  ComputeModel cm(a100());
  OpCost c = expert_ffn_cost(m, 2048);
  EXPECT_DOUBLE_EQ(c.flops, 2048.0 * 4 * 512 * 2048);
  Time t = cm.duration(c, m.compute_dtype);
  EXPECT_NEAR(t.seconds(), 4e-6 + 2e-6 + c.flops / (0.7 * 156e12), 1e-12);
  // Backward is twice the forward's busy time.
  EXPECT_NEAR(cm.busy_seconds(OpKind::kGemm, 2 * c.flops, 2 * c.bytes, "tf32"), 2 * c.flops / (0.7 * 156e12) + 2e-6,
              1e-12);
}

json calibration() {
  return json{
      {"schema", "lina.calibration/1"},
      {"gpu", {{"name", "A100-40GB"}, {"launch_overhead", "5us"}, {"hbm_bandwidth", "1400GB/s"}}},
      {"source", "unit test"},
      {"compute", {{"gemm", {{1e6, 0.1}, {1e8, 0.5}, {1e10, 0.8}}}, {"elementwise", {{1e3, 0.05}, {1e9, 0.9}}}}},
      {"links", {{"nic", {{"alpha", "8us"}, {"bandwidth", "11GB/s"}}}}},
      {"interference", 1.5}};
}

TEST(Calibration, InterpolatesInLogSize) {
  Calibration c = calibration_from_json(calibration(), "cal.json");
  const EfficiencyTable& g = c.compute.at(OpKind::kGemm);
  EXPECT_DOUBLE_EQ(g.at(1e5), 0.1);  // clamped below
  EXPECT_NEAR(g.at(1e7), 0.3, 1e-12);
  EXPECT_NEAR(g.at(1e9), 0.65, 1e-12);
  EXPECT_NEAR(g.at(1e8), 0.5, 1e-12);
  EXPECT_DOUBLE_EQ(g.at(1e12), 0.8);  // clamped above

  ComputeModel cm(a100(), c);
  EXPECT_EQ(cm.launch_overhead(), Time::us(5));
  EXPECT_DOUBLE_EQ(cm.hbm_bytes_per_s(), 1400e9);
  EXPECT_NEAR(cm.duration(OpKind::kGemm, 1e9, 0, "bf16").seconds(), 5e-6 + 1e9 / (312e12 * 0.65), 1e-12);
  // attention_proj and gate fall back on the gemm table; attention_scores keeps its default.
  EXPECT_NEAR(cm.compute_efficiency(OpKind::kAttentionProj, 1e9, "bf16"), 0.65, 1e-12);
  EXPECT_NEAR(cm.compute_efficiency(OpKind::kGate, 1e7, "bf16"), 0.3, 1e-12);
  EXPECT_LT(cm.compute_efficiency(OpKind::kAttentionScores, 1e9, "bf16"), 0.5);
  // Memory-bound kinds use their table over bytes; embedding falls back on elementwise.
  EXPECT_NEAR(cm.memory_efficiency(OpKind::kEmbedding, 1e6), (0.05 + 0.9) / 2, 1e-12);
  // Interference slows the busy part only.
  Time alone = cm.duration(OpKind::kGemm, 1e9, 0, "bf16");
  Time shared = cm.duration(OpKind::kGemm, 1e9, 0, "bf16", true);
  EXPECT_NEAR((shared - Time::us(5)).seconds(), 1.5 * (alone - Time::us(5)).seconds(), 1e-11);
  // An experiment's factor overrides the calibration's.
  EXPECT_DOUBLE_EQ(ComputeModel(a100(), c, 1.0).interference(), 1.0);
  EXPECT_DOUBLE_EQ(ComputeModel(a100()).interference(), 1.0);
}

TEST(Calibration, AppliesToTheCluster) {
  ClusterSpec cl;
  cl.gpu = a100();
  cl.nic = {12.5e9, Time::us(2)};
  cl.intra = {300e9, Time::us(1)};
  apply_calibration(cl, calibration_from_json(calibration(), "cal.json"));
  EXPECT_DOUBLE_EQ(cl.nic.bytes_per_s, 11e9);
  EXPECT_EQ(cl.nic.latency, Time::us(8));
  EXPECT_DOUBLE_EQ(cl.intra.bytes_per_s, 300e9);  // not calibrated: unchanged
  EXPECT_EQ(cl.gpu.launch_overhead, Time::us(5));
}

std::string error_of(const json& j) {
  try {
    calibration_from_json(j, "cal.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(Calibration, Errors) {
  json j = calibration();
  j["schema"] = "lina.calibration/2";
  EXPECT_EQ(error_of(j), "cal.json: /schema: expected \"schema\": \"lina.calibration/1\"");
  j = calibration();
  j["compute"]["gemmm"] = j["compute"]["gemm"];
  EXPECT_EQ(error_of(j), "cal.json: /compute/gemmm: unknown field 'gemmm' (did you mean 'gemm'?)");
  j = calibration();
  j["compute"]["gemm"] = {{1e8, 0.5}, {1e6, 0.6}};
  EXPECT_EQ(error_of(j), "cal.json: /compute/gemm/1: sizes must be strictly increasing");
  j["compute"]["gemm"] = {{1e8, 1.5}};
  EXPECT_EQ(error_of(j), "cal.json: /compute/gemm/0: efficiency 1.5 must be in (0, 1]");
  j["compute"]["gemm"] = {{1e8}};
  EXPECT_EQ(error_of(j), "cal.json: /compute/gemm/0: expected a pair [size, efficiency] of numbers");
  j = calibration();
  j["links"]["nic"].erase("bandwidth");
  EXPECT_EQ(error_of(j), "cal.json: /links/nic/bandwidth: missing required field 'bandwidth'");
  j = calibration();
  j["links"]["nic"]["alpha"] = "8 parsecs";
  EXPECT_NE(error_of(j).find("cal.json: /links/nic/alpha:"), std::string::npos) << error_of(j);
  j = calibration();
  j["links"]["nvlink"] = j["links"]["nic"];
  EXPECT_NE(error_of(j).find("/links/nvlink: unknown field 'nvlink'"), std::string::npos);
  j = calibration();
  j["interference"] = 0.5;
  EXPECT_NE(error_of(j).find("cal.json: /interference: expected a slowdown factor >= 1"), std::string::npos);
  j = calibration();
  j["gpu"]["name"] = "H200";
  EXPECT_THROW(ComputeModel(a100(), calibration_from_json(j, "cal.json")), InputError);
}

}  // namespace
}  // namespace lina::sim

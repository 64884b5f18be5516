// A calibration file named by the cluster (cluster.calibration) changes the training simulation as documented in
// docs/calibration.md: measured link bandwidths replace the preset's, measured efficiencies the defaults.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sched/cluster_spec.hpp"
#include "sched/error.hpp"
#include "sched/model_spec.hpp"
#include "sim/training_sim.hpp"

namespace lina::sim {
namespace {

TrainingInput small_input() {
  TrainingInput in;
  in.cluster = load_cluster_preset_or_file("lina-testbed");
  in.model = load_model(nlohmann::json{{"base", "transformer-xl"}, {"layers", 2}, {"experts", 16}}, "", "/model");
  in.workload.batch_size = 2;
  in.workload.seq_len = 128;
  in.workload.steps = 1;
  in.policy.name = "deepspeed";
  in.policy.label = "deepspeed";
  return in;
}

std::string write_calibration(const std::string& name, const nlohmann::json& j) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::path(::testing::TempDir()) / ("lina-calibration-" + std::string(info->name()));
  std::filesystem::create_directories(dir);
  auto path = (dir / name).string();
  std::ofstream(path) << j.dump();
  return path;
}

TEST(TrainingCalibration, HalvedNicBandwidthSlowsTheAllToAll) {
  TrainingInput in = small_input();
  double base_a2a = run_training(in).metrics["a2a_fwd_time_s"];
  // The preset's NIC is 100 Gb/s = 12.5 GB/s; the calibration measured half of it, with no extra alpha.
  in.cluster.calibration = write_calibration(
      "nic.json",
      {{"schema", "lina.calibration/1"}, {"links", {{"nic", {{"alpha", "10us"}, {"bandwidth", "6.25GB/s"}}}}}});
  double slow_a2a = run_training(in).metrics["a2a_fwd_time_s"];
  // The forward all-to-alls cross the node NIC for 12 of every 16 destinations and are NIC-bound, so their time
  // nearly doubles (latencies and the intra-node phase do not scale): between 1.6x and 2x.
  EXPECT_GT(slow_a2a, 1.6 * base_a2a);
  EXPECT_LE(slow_a2a, 2.0 * base_a2a);
}

TEST(TrainingCalibration, LowerGemmEfficiencySlowsExpertCompute) {
  TrainingInput in = small_input();
  double base = run_training(in).metrics["compute_util"] * run_training(in).metrics["step_time_s"];
  in.cluster.calibration = write_calibration(
      "gemm.json", {{"schema", "lina.calibration/1"}, {"compute", {{"gemm", {{1e3, 0.05}, {1e15, 0.05}}}}}});
  RunResult r = run_training(in);
  double slow = r.metrics["compute_util"] * r.metrics["step_time_s"];
  // GEMMs at 5% of peak instead of up to 70%: busy compute time grows by well over 2x.
  EXPECT_GT(slow, 2 * base);
}

TEST(TrainingCalibration, MissingFileIsAnInputError) {
  nlohmann::json c = {{"nodes", 1}, {"gpus_per_node", 2}, {"gpu", "A100-40GB"}, {"calibration", "no-such-file.json"}};
  try {
    cluster_from_json(c, "spec.json", "/cluster");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "spec.json: /cluster/calibration: calibration file 'no-such-file.json' not found");
  }
}

}  // namespace
}  // namespace lina::sim

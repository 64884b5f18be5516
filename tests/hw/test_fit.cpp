// Calibration fitting from recorded measurements, and what the resulting file does to the simulator's predictions
// (docs/calibration.md): at each measured size, the calibrated compute model predicts the measured time.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/commands.hpp"
#include "hw/calibration_fit.hpp"
#include "hw/validation.hpp"
#include "sched/cluster_spec.hpp"
#include "sched/error.hpp"
#include "sim/compute.hpp"

namespace lina::hw {
namespace {

constexpr double kPeak = 989.5e12;  // H200 bf16 dense
constexpr double kLaunch = 4e-6;

// Measurements as a GPU with known parameters would give them: GEMMs at efficiency 0.2 (small) to 0.8 (large),
// memory kernels at 4 TB/s with a ramp, links with alpha 6 us per step and 150 GB/s.
Measurements recorded() {
  Measurements m;
  m.gpu = "H200";
  m.device_name = "NVIDIA H200";
  m.peak_bf16_flops = kPeak;
  m.launch_overhead_s = kLaunch;
  const std::vector<std::pair<GemmShape, double>> gemms = {
      {{128, 4096, 1024}, 0.2}, {{2048, 4096, 1024}, 0.5}, {{8192, 16384, 4096}, 0.8}};
  for (const auto& [g, e] : gemms) {
    const double t = kLaunch + g.flops() / (kPeak * e);
    m.kernels.push_back({OpKind::kGemm, g, g.flops(), g.bytes(2), {t * 1.01, t, t * 0.99}});
  }
  for (double bytes : {1e4, 1e6, 1e9}) {
    const double t = kLaunch + 1e-6 + bytes / 4e12;
    m.kernels.push_back({OpKind::kElementwise, {}, 0, bytes, {t}});
  }
  for (double bytes : {1e5, 1e7, 1e9}) {
    LinkMeasurement l = ring_allreduce_record(4, bytes);
    l.seconds = {l.steps * 6e-6 + l.wire_bytes / 150e9};
    m.links.push_back(l);
    LinkMeasurement c;
    c.link_class = "host_pcie";
    c.op = "copy";
    c.bytes = c.wire_bytes = bytes;
    c.seconds = {2e-6 + bytes / 25e9};
    m.links.push_back(c);
  }
  m.gemm_alone_s = {1e-3, 1.1e-3, 0.9e-3};
  m.gemm_with_comm_s = {1.2e-3, 1.25e-3, 1.15e-3};
  return m;
}

TEST(HwFit, AlphaBetaRecoversTheParametersOfExactRecords) {
  std::vector<LinkMeasurement> recs;
  for (int gpus : {2, 8}) {
    for (double bytes : {1e4, 1e6, 1e8}) {
      LinkMeasurement l = ring_allreduce_record(gpus, bytes);
      l.seconds = {l.steps * 5e-6 + l.wire_bytes / 200e9};
      recs.push_back(l);
    }
  }
  AlphaBeta ab = fit_alpha_beta(recs);
  EXPECT_NEAR(ab.alpha_s, 5e-6, 1e-10);
  EXPECT_NEAR(ab.bytes_per_s, 200e9, 1e3);
  // One size only cannot separate latency from bandwidth: bandwidth alone, no negative latency.
  LinkMeasurement one = alltoall_record(2, 1e6);
  one.seconds = {1e-3};
  AlphaBeta b = fit_alpha_beta({one});
  EXPECT_EQ(b.alpha_s, 0);
  EXPECT_NEAR(b.bytes_per_s, 0.5e6 / 1e-3, 1);
}

TEST(HwFit, MedianOfRepeatedRuns) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
}

TEST(HwFit, CalibrationFromRecordsReproducesTheMeasuredTimesInTheSimulator) {
  const Measurements m = recorded();
  FitOptions fo;
  fo.collective_alpha_s = 2e-6;
  const nlohmann::json j = fit_calibration(m, fo);
  const sim::Calibration cal = sim::calibration_from_json(j, "fitted.json");  // the simulator accepts it
  EXPECT_EQ(cal.gpu, "H200");
  ASSERT_TRUE(cal.launch_overhead);
  EXPECT_NEAR(cal.launch_overhead->seconds(), kLaunch, 1e-12);
  ASSERT_TRUE(cal.hbm_bytes_per_s);  // the best streaming rate: the 1 GB kernel, ramp included
  EXPECT_NEAR(*cal.hbm_bytes_per_s, 1e9 / (1e-6 + 1e9 / 4e12), 1e3);
  EXPECT_NEAR(cal.compute.at(OpKind::kGemm).at(2.0 * 2048 * 4096 * 1024), 0.5, 1e-9);
  // Links: per step alpha 6 us = collective_alpha 2 us + 2 hops of 2 us; host_pcie one hop of 2 us.
  EXPECT_NEAR(cal.links.at("intra_node").alpha.seconds(), 2e-6, 1e-11);
  EXPECT_NEAR(cal.links.at("intra_node").bytes_per_s, 150e9, 1e3);
  EXPECT_NEAR(cal.links.at("host_pcie").alpha.seconds(), 2e-6, 1e-11);
  EXPECT_NEAR(cal.links.at("host_pcie").bytes_per_s, 25e9, 1e2);
  ASSERT_TRUE(cal.interference);
  EXPECT_NEAR(*cal.interference, 1.2, 1e-9);

  // The documented relation: duration = launch + FLOPs / (peak * e_c), so at each measured GEMM the calibrated
  // model predicts the measured median, and likewise bytes / (hbm * e_m) for memory kernels.
  GpuSpec gpu = load_gpu(nlohmann::json("H200"), "", "");
  sim::ComputeModel calibrated(gpu, cal), plain(gpu);
  for (const auto& k : m.kernels) {
    const double t = median(k.seconds);
    const double predicted = calibrated.duration(k.op, k.flops, k.bytes, "bf16").seconds();
    EXPECT_NEAR(predicted, t, 1e-3 * t) << op_kind_name(k.op) << " " << k.flops << " FLOPs " << k.bytes << " B";
  }
  // The prediction changed from the uncalibrated defaults (0.70 of peak for a large GEMM; 0.8 here).
  const auto& big = m.kernels[2];
  EXPECT_LT(calibrated.duration(big.op, big.flops, big.bytes, "bf16"),
            plain.duration(big.op, big.flops, big.bytes, "bf16"));
  // Small GEMM measured at 0.2 of peak: the calibrated prediction is longer than the default's.
  const auto& small = m.kernels[0];
  EXPECT_GT(calibrated.duration(small.op, small.flops, small.bytes, "bf16"),
            plain.duration(small.op, small.flops, small.bytes, "bf16"));
  // Links and GPU constants reach the cluster through apply_calibration.
  ClusterSpec cluster = load_cluster_preset_or_file("dgx-h200");
  sim::apply_calibration(cluster, cal);
  EXPECT_NEAR(cluster.intra.bytes_per_s, 150e9, 1e3);
  EXPECT_NEAR(cluster.gpu.launch_overhead.seconds(), kLaunch, 1e-12);
}

TEST(HwFit, MeasurementsRoundTripThroughJsonAndBadFilesNameThePlace) {
  const Measurements m = recorded();
  const Measurements back = measurements_from_json(to_json(m), "m.json");
  EXPECT_EQ(fit_calibration(back), fit_calibration(m));
  nlohmann::json bad = to_json(m);
  bad["kernels"][1]["seconds"][0] = -1;
  try {
    measurements_from_json(bad, "m.json");
    FAIL() << "accepted a negative time";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("m.json: /kernels/1/seconds/0"), std::string::npos) << e.what();
  }
}

TEST(HwFit, CalibrateFromRecordedMeasurementsWritesAFileTheSimulatorLoads) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("lina-hw-fit-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string meas = (dir / "m.json").string(), out = (dir / "cal.json").string();
  std::ofstream(meas) << to_json(recorded()).dump();
  std::vector<std::string> args = {"lina", "hw", "calibrate", "--from", meas, "-o", out};
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  const int rc = cli::main_entry(static_cast<int>(argv.size()), argv.data());
  EXPECT_EQ(rc, 0);
  const sim::Calibration cal = sim::load_calibration(out);
  EXPECT_EQ(cal.gpu, "H200");
  EXPECT_TRUE(cal.links.count("intra_node"));
  fs::remove_all(dir);
}

TEST(HwValidation, ErrorTableComparesPerTaskKindOverTheLastStep) {
  Plan p;
  p.ranks = 1;
  for (int step = 0; step < 2; ++step) {
    Task g;
    g.op = OpKind::kGemm;
    g.step = step;
    p.add_task(g);
    Task e;
    e.op = OpKind::kElementwise;
    e.step = step;
    p.add_task(e);
  }
  Timeline meas, pred;
  meas.records = {{0, Time::zero(), Time::zero(), Time::us(100)},
                  {1, Time::us(100), Time::us(100), Time::us(110)},
                  {2, Time::us(110), Time::us(110), Time::us(210)},
                  {3, Time::us(210), Time::us(210), Time::us(220)}};
  pred.records = meas.records;
  pred.records[2].end = Time::us(200);  // gemm predicted 90 us for 100 measured: -10%
  pred.records[3].end = Time::us(221);  // elementwise 11 for 10: +10%
  auto rows = compare_by_kind(p, meas, pred);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].what, "gemm");
  EXPECT_EQ(rows[0].tasks, 1);
  EXPECT_NEAR(rows[0].rel_error(), -0.10, 1e-9);
  EXPECT_EQ(rows[1].what, "elementwise");
  EXPECT_NEAR(rows[1].rel_error(), 0.10, 1e-9);
  const std::string table = error_table(rows);
  EXPECT_NE(table.find("-10.0%"), std::string::npos) << table;
  EXPECT_NE(table.find("+10.0%"), std::string::npos) << table;
}

}  // namespace
}  // namespace lina::hw

// `lina collective` and `lina flows`, run in-process through main_entry.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.hpp"

namespace lina::cli {
namespace {

struct Result {
  int rc;
  std::string out, err;
};

Result run(std::vector<std::string> args) {
  args.insert(args.begin(), "lina");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  int rc = main_entry(static_cast<int>(argv.size()), argv.data());
  std::string out = testing::internal::GetCapturedStdout();
  std::string err = testing::internal::GetCapturedStderr();
  return {rc, out, err};
}

// One folder per test and process: ctest runs tests in parallel, and a shared file name let one test read another's
// half-written file.
std::string write_temp(const std::string& name, const std::string& text) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  auto dir = std::filesystem::path(::testing::TempDir()) / ("lina_test_net_" + std::string(info->test_suite_name()) +
                                                            "." + info->name() + "." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto p = dir / name;
  std::ofstream(p) << text;
  return p.string();
}

// 4 nodes x 1 GPU, 12.5 GB/s NICs with 2 us latency, alpha 10 us.
const char* kCluster = R"({"nodes": 4, "gpus_per_node": 1, "gpu": "A100-40GB",
  "intra_node": {"kind": "nvswitch", "bandwidth": "300GB/s", "latency": "1us"},
  "nic": {"per": "gpu", "bandwidth": "100Gbps", "latency": "2us"},
  "fabric": {"kind": "switch"}, "collective_alpha": "10us"})";

TEST(CliCollective, AllToAllJsonMatchesClosedForm) {
  std::string cluster = write_temp("cluster.json", kCluster);
  Result r = run({"collective", "--cluster", cluster, "--op", "alltoall", "--bytes", "40MB", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["collectives"].size(), 1u);
  // alpha + L + (P-1)/P * M / B = 10 us + 4 us + 3/4 * 40 MB / 12.5 GB/s.
  EXPECT_NEAR(j["collectives"][0]["time_s"].get<double>(), 14e-6 + 0.75 * 40e6 / 12.5e9, 1e-11);
  EXPECT_EQ(j["collectives"][0]["rank_finish_s"].size(), 4u);
}

TEST(CliCollective, ConcurrentWithPriority) {
  std::string cluster = write_temp("cluster.json", kCluster);
  Result r = run({"collective", "--cluster", cluster, "--op", "allreduce", "--bytes", "400MB", "--class", "1", "--with",
                  "alltoall:40MB:0", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["collectives"].size(), 2u);
  // The class-0 all-to-all is not slowed by the class-1 allreduce: the same time as alone.
  EXPECT_NEAR(j["collectives"][1]["time_s"].get<double>(), 14e-6 + 0.75 * 40e6 / 12.5e9, 1e-11);
  EXPECT_EQ(j["collectives"][0]["algo"], "ring");
}

TEST(CliCollective, RingModelOption) {
  const std::string cluster = write_temp("cluster.json", kCluster);
  auto ring = [&](const char* model) {
    Result r = run({"collective", "--cluster", cluster, "--op", "allreduce", "--algo", "ring", "--bytes", "40MB",
                    "--ring-model", model, "--json"});
    EXPECT_EQ(r.rc, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const nlohmann::json steps = ring("steps"), pipelined = ring("pipelined");
  // 4 ranks, one per node: 2(P-1) = 6 steps of 4 flows, or one phase of 4.
  EXPECT_EQ(steps["stats"]["flows"], 24);
  EXPECT_EQ(pipelined["stats"]["flows"], 4);
  EXPECT_NEAR(pipelined["collectives"][0]["time_s"].get<double>(), steps["collectives"][0]["time_s"].get<double>(),
              1e-9);
  Result bad = run({"collective", "--cluster", cluster, "--op", "allreduce", "--bytes", "1MB", "--ring-model", "pipe"});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("--ring-model"), std::string::npos) << bad.err;
}

TEST(CliCollective, TextOutputAndErrors) {
  std::string cluster = write_temp("cluster.json", kCluster);
  Result ok = run({"collective", "--cluster", cluster, "--op", "reducescatter", "--bytes", "1MiB"});
  EXPECT_EQ(ok.rc, 0);
  EXPECT_NE(ok.out.find("reducescatter"), std::string::npos);
  EXPECT_EQ(run({"collective", "--help"}).rc, 0);
  Result bad = run({"collective", "--cluster", cluster, "--op", "alltoall", "--bytes", "12XB"});
  EXPECT_EQ(bad.rc, 2);
  EXPECT_NE(bad.err.find("--bytes"), std::string::npos);
  EXPECT_EQ(run({"collective", "--cluster", cluster, "--op", "broadcast", "--bytes", "1MB"}).rc, 2);
  EXPECT_EQ(run({"collective", "--cluster", cluster, "--op", "alltoall", "--bytes", "1MB", "--ranks", "0-9"}).rc, 2);
  EXPECT_EQ(run({"collective", "--cluster", cluster, "--op", "alltoall", "--bytes", "1MB", "--algo", "tree"}).rc, 2);
  EXPECT_EQ(run({"collective", "--cluster", cluster, "--op", "alltoall", "--bytes", "1MB", "--class", "64"}).rc, 2);
  EXPECT_EQ(run({"collective", "--cluster", "no-such-preset", "--op", "alltoall", "--bytes", "1MB"}).rc, 2);
  // A collective that would outlast the clock is the clock's input error (it finished early, silently, at 46 days).
  Result huge = run({"collective", "--cluster", cluster, "--op", "allreduce", "--bytes", "1e18B"});
  EXPECT_EQ(huge.rc, 2);
  EXPECT_NE(huge.err.find("past the clock"), std::string::npos) << huge.err;
}

TEST(CliFlows, ClosedFormAndFullPrecision) {
  std::string file = write_temp("flows.json", std::string(R"({"cluster": )") + kCluster + R"(,
    "flows": [{"src": 0, "dst": 1, "bytes": "25MB"},
              {"src": 0, "dst": 2, "bytes": 25000000, "start_s": 0.001, "class": 0, "weight": 1},
              {"src": 3, "dst": 3, "bytes": 5, "start_s": 0.001}]})");
  Result r = run({"flows", file});
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["flows"].size(), 3u);
  // Flow 0 alone on GPU 0's NIC from 4 us to 1.004 ms (12.5 MB), then B/2: the other 12.5 MB take 2 ms: 3.004 ms.
  EXPECT_DOUBLE_EQ(j["flows"][0]["finish_s"].get<double>(), 0.003004);
  // Flow 1: B/2 from 1.004 ms for 2 ms (12.5 MB), then B alone for 1 ms: 4.004 ms.
  EXPECT_DOUBLE_EQ(j["flows"][1]["finish_s"].get<double>(), 0.004004);
  // Same GPU: a local copy, done at its start.
  EXPECT_DOUBLE_EQ(j["flows"][2]["finish_s"].get<double>(), 0.001);
  EXPECT_EQ(j["flows"][1]["id"], 1);
  EXPECT_TRUE(j["stats"].contains("events"));
  EXPECT_TRUE(j["stats"].contains("rate_recomputes"));
  EXPECT_TRUE(j["stats"].contains("wall_s"));
}

TEST(CliFlows, BadInputExitsTwoWithLocation) {
  auto expect_error = [](const std::string& name, const std::string& text, const std::string& where) {
    std::string file = write_temp(name, text);
    Result r = run({"flows", file});
    EXPECT_EQ(r.rc, 2) << name;
    EXPECT_NE(r.err.find(where), std::string::npos) << r.err;
  };
  expect_error("unknown_gpu.json", R"({"cluster": "dgx-a100", "flows": [{"src": 0, "dst": 99, "bytes": 1}]})",
               "/flows/0/dst");
  expect_error("negative.json", R"({"cluster": "dgx-a100", "flows": [{"src": 0, "dst": 1, "bytes": -5}]})",
               "/flows/0/bytes");
  expect_error("past.json",
               R"({"cluster": "dgx-a100", "flows": [{"src": 0, "dst": 1, "bytes": 1, "start_s": 1},
                   {"src": 0, "dst": 1, "bytes": 1, "start_s": 0.5}]})",
               "/flows/1/start_s");
  expect_error("malformed.json", R"({"cluster": "dgx-a100", "flows": [)", "malformed.json");
  expect_error("unknown_field.json", R"({"cluster": "dgx-a100", "flows": [{"src": 0, "dst": 1, "bytes": 1, "x": 1}]})",
               "/flows/0/x");
}

}  // namespace
}  // namespace lina::cli

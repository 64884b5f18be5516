// Tests that need a GPU: they skip, naming why, where query_devices() finds none.
#include <gtest/gtest.h>

#include "hw/cuda_backend.hpp"
#include "hw/device.hpp"
#include "hw/executor.hpp"
#include "hw/microbench.hpp"

namespace lina::hw {
namespace {

#define LINA_REQUIRE_GPU()                                              \
  do {                                                                  \
    const DeviceQuery q = query_devices();                              \
    if (q.count == 0) GTEST_SKIP() << "needs a CUDA GPU: " << q.reason; \
  } while (0)

TEST(HwDevice, QueryNeverThrowsAndExplainsAnEmptyMachine) {
  const DeviceQuery q = query_devices();
  if (q.count == 0) {
    EXPECT_FALSE(q.reason.empty());
  } else {
    EXPECT_TRUE(q.reason.empty());
  }
  const SystemInfo si = system_info();
  EXPECT_EQ(static_cast<int>(si.devices.size()), q.count);
  EXPECT_GT(si.nccl_version, 0);
}

TEST(HwDevice, PresetNamesFromDeviceNames) {
  EXPECT_EQ(gpu_preset_for("NVIDIA H200", 141e9), "H200");
  EXPECT_EQ(gpu_preset_for("NVIDIA H100 80GB HBM3", 80e9), "H100-SXM");
  EXPECT_EQ(gpu_preset_for("NVIDIA A100-SXM4-40GB", 40e9), "A100-40GB");
  EXPECT_EQ(gpu_preset_for("NVIDIA A100-SXM4-80GB", 80e9), "");
}

TEST(HwDevice, RunsASmallPlanOnTheGpus) {
  LINA_REQUIRE_GPU();
  Plan p;
  p.ranks = 1;
  Collective a2a;
  a2a.kind = CommKind::kAllToAll;
  a2a.ranks = {0};
  a2a.bytes = {1 << 20};
  const int c = p.add_collective(a2a);
  Task g;
  g.op = OpKind::kGemm;
  g.flops = 2.0 * 4096 * 4096 * 1024;
  g.bytes = (4096.0 * 1024 * 2 + 4096.0 * 4096) * 2;
  const int gemm = p.add_task(g);
  Task t;
  t.kind = TaskKind::kComm;
  t.stream = Stream::kAllToAll;
  t.collective = c;
  t.deps = {gemm};
  const int comm = p.add_task(t);
  Task e;
  e.op = OpKind::kElementwise;
  e.bytes = 1 << 24;
  e.deps = {comm};
  p.add_task(e);
  CudaBackend backend;
  const auto [least, greatest] = stream_priority_range();
  LoweredPlan lp = lower_plan(p, LoweringOptions{1024, 2, least, greatest});
  ImmediateScheduler sched;
  HwExecutor exec(backend);
  Timeline tl = exec.run(p, lp, sched);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(tl.records[static_cast<size_t>(i)].task, i);
    EXPECT_GT(tl.records[static_cast<size_t>(i)].end, tl.records[static_cast<size_t>(i)].start);
  }
  EXPECT_GE(tl.records[1].start, tl.records[0].end);
  EXPECT_GE(tl.records[2].start, tl.records[1].end);
}

TEST(HwDevice, QuickMicrobenchmarksFitACalibration) {
  LINA_REQUIRE_GPU();
  MicrobenchOptions o;
  o.quick = true;
  o.reps = 3;
  o.gpu = "test";
  o.peak_bf16_flops = 1e15;
  const Measurements m = run_microbenchmarks(o);
  EXPECT_GT(m.launch_overhead_s, 0);
  EXPECT_FALSE(m.kernels.empty());
  const auto cal = fit_calibration(m);
  EXPECT_TRUE(cal.contains("compute"));
  EXPECT_TRUE(cal["links"].contains("host_pcie"));
}

}  // namespace
}  // namespace lina::hw

// Lowering a Plan to device work and running it through the hardware executor on the recording backend (no GPU).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "hw/backend.hpp"
#include "hw/executor.hpp"
#include "hw/lowering.hpp"
#include "sched/cluster_spec.hpp"
#include "sched/lina_scheduler.hpp"
#include "sched/model_spec.hpp"
#include "sched/training_plan.hpp"
#include "sim/inference_sim.hpp"

namespace lina::hw {
namespace {

TEST(HwLowering, GemmShapeRecoversASingleGemmFromFlopsAndBytes) {
  // The gate of 8192 tokens, hidden 1024, 16 experts: 2 T d E FLOPs and (T d + d E + T E) * 2 bytes.
  const double T = 8192, d = 1024, E = 16;
  GemmShape s = gemm_shape(2 * T * d * E, (T * d + d * E + T * E) * 2, 1024);
  EXPECT_EQ(s.m, 8192);
  EXPECT_EQ(s.n, 16);
  EXPECT_EQ(s.k, 1024);
  EXPECT_DOUBLE_EQ(s.flops(), 2 * T * d * E);
}

TEST(HwLowering, GemmShapeFallsBackToASquareGemmWithTheSameFlops) {
  // Bytes too small for any m x n at k = 1024 (several GEMMs fused): square, n a multiple of 8, FLOPs within a row.
  const double flops = 2.0 * 4096 * 4096 * 1024;
  GemmShape s = gemm_shape(flops, 1e3, 1024);
  EXPECT_EQ(s.n % 8, 0);
  EXPECT_EQ(s.n, 4096);
  EXPECT_EQ(s.m, 4096);
  GemmShape odd = gemm_shape(2.0 * 1000 * 1001 * 64, 1, 64);
  EXPECT_EQ(odd.n % 8, 0);
  EXPECT_NEAR(odd.flops(), 2.0 * 1000 * 1001 * 64, 2.0 * odd.n * 64);
  EXPECT_EQ(gemm_shape(0, 0, 64).m, 0);  // nothing to run
}

// Two ranks: a compute task, an all-to-all-v, an allreduce over a sub-group on another stream, a memory task.
Plan small_plan() {
  Plan p;
  p.ranks = 3;
  Collective a2a;
  a2a.kind = CommKind::kAllToAll;
  a2a.ranks = {0, 1, 2};
  a2a.bytes = {10, 20, 30, 40, 50, 0, 70, 80, 90};
  a2a.priority_class = 0;
  const int ca = p.add_collective(a2a);
  Collective ar;
  ar.kind = CommKind::kAllReduce;
  ar.ranks = {2, 0};
  ar.bytes = {1000};
  ar.priority_class = 1;
  const int cr = p.add_collective(ar);
  for (int r = 0; r < 3; ++r) {
    Task g;
    g.rank = r;
    g.kind = TaskKind::kCompute;
    g.op = OpKind::kGate;
    g.flops = 2.0 * 512 * 64 * 8;
    g.bytes = (512.0 * 64 + 64 * 8 + 512 * 8) * 2;
    const int gate = p.add_task(g);
    Task c;
    c.rank = r;
    c.kind = TaskKind::kComm;
    c.stream = Stream::kAllToAll;
    c.collective = ca;
    c.deps = {gate};
    const int comm = p.add_task(c);
    Task m;
    m.rank = r;
    m.kind = TaskKind::kCompute;
    m.op = OpKind::kElementwise;
    m.bytes = 4096;
    m.deps = {comm};
    const int mem = p.add_task(m);
    if (r != 1) {
      Task a;
      a.rank = r;
      a.kind = TaskKind::kComm;
      a.stream = Stream::kAllReduce;
      a.collective = cr;
      a.deps = {mem};
      p.add_task(a);
    }
  }
  return p;
}

TEST(HwLowering, CollectivesBecomeNcclCallsOnTheRightCommunicators) {
  Plan p = small_plan();
  LoweringOptions o;
  o.hidden = 64;
  o.least_priority = 0;
  o.greatest_priority = -5;
  LoweredPlan lp = lower_plan(p, o);
  // Rank 1's all-to-all (position 1): sends row 1 (40 to rank 0, 0 to rank 2: skipped), receives column 1 (20 from
  // rank 0, 80 from rank 2), keeps 50 locally.
  const DeviceWork& w = lp.work[5];
  ASSERT_EQ(w.kind, DeviceWork::Kind::kAllToAll);
  EXPECT_EQ(w.local_bytes, 50);
  ASSERT_EQ(w.p2p.size(), 3u);
  EXPECT_TRUE(w.p2p[0].send);
  EXPECT_EQ(w.p2p[0].peer, 0);
  EXPECT_EQ(w.p2p[0].bytes, 40);
  EXPECT_FALSE(w.p2p[1].send);
  EXPECT_EQ(w.p2p[1].peer, 0);
  EXPECT_EQ(w.p2p[1].bytes, 20);
  EXPECT_FALSE(w.p2p[2].send);
  EXPECT_EQ(w.p2p[2].peer, 2);
  EXPECT_EQ(w.p2p[2].bytes, 80);
  EXPECT_EQ(lp.buffers[1].send, 40 + 50);
  EXPECT_EQ(lp.buffers[1].recv, 100 + 50);
  // The allreduce over {2, 0}: its own communicator (sorted), 500 bf16 elements rounded to a multiple of 2 ranks.
  const DeviceWork& a = lp.work[3];
  ASSERT_EQ(a.kind, DeviceWork::Kind::kAllReduce);
  ASSERT_EQ(lp.groups.size(), 2u);
  EXPECT_EQ(lp.groups[0], (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(lp.groups[1], (std::vector<int>{0, 2}));
  EXPECT_EQ(a.group, 1);
  EXPECT_EQ(a.elements, 500);
  // The gate is a GEMM of its exact shape; the elementwise task a memory kernel of its bytes.
  EXPECT_EQ(lp.work[0].kind, DeviceWork::Kind::kGemm);
  EXPECT_EQ(lp.work[0].gemm.m, 512);
  EXPECT_EQ(lp.work[0].gemm.n, 8);
  EXPECT_EQ(lp.work[2].kind, DeviceWork::Kind::kMemory);
  EXPECT_EQ(lp.work[2].memory_bytes, 4096);
  // Priorities: network class 0 -> greatest, class 1 -> one step lower, compute the default.
  EXPECT_EQ(lp.stream_priority[static_cast<size_t>(Stream::kAllToAll)], -5);
  EXPECT_EQ(lp.stream_priority[static_cast<size_t>(Stream::kAllReduce)], -4);
  EXPECT_EQ(lp.stream_priority[static_cast<size_t>(Stream::kCompute)], 0);
}

void expect_plan_semantics(const Plan& p, const Timeline& tl) {
  ASSERT_EQ(tl.records.size(), p.tasks.size());
  for (size_t i = 0; i < p.tasks.size(); ++i) {
    const auto& r = tl.records[i];
    ASSERT_EQ(r.task, static_cast<int>(i)) << p.task_name(static_cast<int>(i)) << " never ran";
    EXPECT_LE(r.start, r.end);
    for (int d : p.tasks[i].deps) {
      EXPECT_GE(r.start, tl.records[static_cast<size_t>(d)].end)
          << p.task_name(static_cast<int>(i)) << " started before its dependency " << p.task_name(d);
    }
  }
}

TEST(HwExecutor, RunsThePlanInOrderThroughTheRecordingBackend) {
  Plan p = small_plan();
  LoweredPlan lp = lower_plan(p, LoweringOptions{64, 2, 0, -5});
  for (bool threads : {false, true}) {
    RecordingBackend rb(3);
    ImmediateScheduler sched;
    HwExecutor exec(rb, HwExecutorOptions{threads, 64, 10});
    Timeline tl = exec.run(p, lp, sched);
    EXPECT_TRUE(rb.finished_ok());
    expect_plan_semantics(p, tl);
    // Per rank: gate, a2a, elementwise, (allreduce) in plan order; the a2a carries its priority.
    ASSERT_EQ(rb.calls()[1].size(), 3u);
    EXPECT_EQ(rb.calls()[1][0].task, 4);
    EXPECT_EQ(rb.calls()[1][1].task, 5);
    EXPECT_EQ(rb.calls()[1][1].priority, -5);
    EXPECT_EQ(rb.calls()[1][2].task, 6);
    ASSERT_EQ(rb.calls()[2].size(), 4u);
    EXPECT_EQ(rb.calls()[2][3].work.kind, DeviceWork::Kind::kAllReduce);
    // A collective starts at its rendezvous: the same start on every participant.
    EXPECT_EQ(tl.records[1].start, tl.records[5].start);
    EXPECT_EQ(tl.records[1].start, tl.records[8].start);
    EXPECT_GT(tl.makespan, Time::zero());
  }
}

TEST(HwExecutor, EnqueuesAheadWithStreamWaitsOnOtherStreams) {
  // A task depending on a task of another stream that is enqueued but not finished is enqueued at once with a wait
  // on the dependency's end event (no host round trip).
  Plan p;
  p.ranks = 1;
  Task a;
  a.op = OpKind::kElementwise;
  a.bytes = 64;
  const int first = p.add_task(a);
  Task b;
  b.kind = TaskKind::kHost;
  b.stream = Stream::kHost;
  b.host_seconds = 1e-6;
  b.deps = {first};
  p.add_task(b);
  RecordingBackend rb(1);
  ImmediateScheduler sched;
  HwExecutor exec(rb, HwExecutorOptions{false, 64, 10});
  LoweredPlan lp = lower_plan(p, {});
  Timeline tl = exec.run(p, lp, sched);
  ASSERT_EQ(rb.calls()[0].size(), 2u);
  EXPECT_EQ(rb.calls()[0][1].waits, std::vector<int>{first});
  EXPECT_EQ(rb.calls()[0][1].work.kind, DeviceWork::Kind::kHost);
  EXPECT_DOUBLE_EQ(rb.calls()[0][1].work.host_seconds, 1e-6);
  EXPECT_GE(tl.records[1].start, tl.records[0].end);
}

TEST(HwExecutor, TrainingPlansUnderDeepSpeedAndLinaRunToCompletion) {
  ClusterSpec cluster = load_cluster_preset_or_file("lina-testbed");
  cluster.nodes = 1;
  cluster.gpus_per_node = 4;
  ModelSpec m = load_model(nlohmann::json{{"base", "transformer-xl"}, {"layers", 2}, {"experts", 4}}, "", "");
  WorkloadSpec w;
  w.batch_size = 2;
  w.seq_len = 64;
  for (const auto& [name, zero_stage] : {std::pair{"deepspeed", 0}, std::pair{"lina", 0}, std::pair{"lina", 1}}) {
    PolicySpec pol;
    pol.name = name;
    pol.zero_stage = zero_stage;  // 1: reduce-scatters and all-gathers instead of allreduces
    TrainingPlanInput in;
    in.model = &m;
    in.cluster = &cluster;
    in.workload = &w;
    in.policy = &pol;
    in.layout = make_layout(m, cluster, 0, std::string(name) == "lina" ? 2 : 1);
    in.steps = 2;
    Plan p = build_training_plan(in);
    LoweredPlan lp = lower_plan(p, LoweringOptions{m.hidden, 2, 0, -5});
    for (bool threads : {false, true}) {
      RecordingBackend rb(4);
      std::unique_ptr<RuntimeScheduler> sched;
      if (std::string(name) == "lina") {
        sched = std::make_unique<LinaTrainingScheduler>();
      } else {
        sched = std::make_unique<ImmediateScheduler>();
      }
      HwExecutor exec(rb, HwExecutorOptions{threads, 8, 10});
      Timeline tl = exec.run(p, lp, *sched);
      expect_plan_semantics(p, tl);
      // Every rank enqueued each of its tasks exactly once, and the NCCL work of each stream in plan order.
      size_t total = 0;
      for (int r = 0; r < 4; ++r) {
        const auto& calls = rb.calls()[static_cast<size_t>(r)];
        total += calls.size();
        for (int s = 0; s < kStreamCount; ++s) {
          int last = -1;
          for (const auto& c : calls) {
            if (static_cast<int>(c.stream) != s) continue;
            EXPECT_GT(c.task, last) << name << " rank " << r << " stream " << s;
            last = c.task;
          }
        }
      }
      EXPECT_EQ(total, p.tasks.size());
    }
  }
}

}  // namespace
}  // namespace lina::hw

namespace lina::hw {
namespace {

// `lina hw run` on an inference spec: run_inference hands every batch's plan, with its inference scheduler, to the
// hardware executor (InferenceInput::execute). Through the recording backend: every batch's plan lowers, runs to
// completion with its dependencies respected, and host work (Lina's scheduling cost) and weight loads are enqueued.
TEST(HwExecutor, InferenceBatchesRunThroughTheExecuteHook) {
  sim::InferenceInput in;
  in.cluster = load_cluster_preset_or_file("lina-testbed");
  in.cluster.nodes = 1;
  in.cluster.gpus_per_node = 4;
  in.model = load_model(
      nlohmann::json{{"base", "transformer-xl"}, {"layers", 4}, {"experts", 4}, {"top_k", 1}, {"capacity_factor", 0}},
      "", "");
  in.workload.batch_size = 8;
  in.workload.seq_len = 64;
  in.workload.batches = 3;
  in.workload.routing.kind = "zipf";
  in.workload.routing.zipf_s = 1.2;
  in.workload.routing.rho = 0.5;
  in.workload.routing.profile_batches = 4;
  in.policy.name = "lina";
  in.policy.path_length = 1;
  int batches = 0;
  size_t host_work = 0;
  in.execute = [&](const Plan& plan, RuntimeScheduler& sched) {
    ++batches;
    LoweredPlan lp = lower_plan(plan, LoweringOptions{in.model.hidden, 2, 0, -5});
    RecordingBackend rb(4);
    HwExecutor exec(rb, HwExecutorOptions{true, 8, 10});
    Timeline tl = exec.run(plan, lp, sched);
    expect_plan_semantics(plan, tl);
    for (const auto& calls : rb.calls())
      for (const auto& c : calls) host_work += c.work.kind == DeviceWork::Kind::kHost;
    return tl;
  };
  sim::RunResult r = sim::run_inference(in);
  EXPECT_EQ(batches, 3);
  EXPECT_GT(host_work, 0u);  // Lina's Phase 1 / Phase 2 costs ran as host work
  EXPECT_GT(r.metrics.at("latency_p50_s"), 0);
}

}  // namespace
}  // namespace lina::hw

// Speed of the training simulation (issue 4): a 64-GPU, 24-layer Transformer-XL step under `lina` with micro-ops
// (target <= 1 s wall), and the 1,024-GPU, 4-layer iteration of 16 all-to-alls of 16 MiB per rank and four 32 MiB
// allreduces, data + expert parallel over all GPUs, with contention (target <= 20 s wall). Reports tasks/s. And a
// scale point with no target: a 2-layer Mixtral step with data parallelism over 4,096 H100s (512 DGX nodes), under
// DeepSpeed, without timelines, with either ring model.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include "sched/cluster_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/plan.hpp"
#include "sched/runtime_scheduler.hpp"
#include "sim/collective_backend.hpp"
#include "sim/compute.hpp"
#include "sim/executor.hpp"
#include "sim/training_sim.hpp"

namespace {

using namespace lina;

void BM_Training64Gpu24LayerLinaStep(benchmark::State& state) {
  ClusterSpec cluster = load_cluster_preset_or_file("dgx-a100");
  cluster.nodes = 8;  // 64 GPUs
  nlohmann::json model_ref = {{"base", "transformer-xl"}, {"experts", 64}};
  ModelSpec model = load_model(model_ref, "", "/model");
  WorkloadSpec w;
  w.steps = 1;
  PolicySpec p;
  p.name = "lina";
  p.label = "lina";
  p.packing = "off";  // one simulated step (the controller would simulate several)
  for (auto _ : state) {
    sim::RunResult r = sim::run_training(sim::TrainingInput{cluster, model, w, p, 1, false});
    benchmark::DoNotOptimize(r.metrics);
    state.counters["tasks"] = static_cast<double>(r.plan.tasks.size());
    state.counters["tasks_per_s"] =
        benchmark::Counter(static_cast<double>(r.plan.tasks.size()), benchmark::Counter::kIsRate);
    state.counters["step_time_s"] = r.metrics["step_time_s"];
  }
}
BENCHMARK(BM_Training64Gpu24LayerLinaStep)->Unit(benchmark::kMillisecond)->Iterations(1);

// The 1,024-GPU iteration as a hand-built plan: per layer, forward dispatch and combine and backward combine and
// dispatch all-to-alls (16 MiB per rank, hierarchical) around expert compute, and after each layer's backward a
// 32 MiB hierarchical allreduce on its own stream, contending with the next layer's all-to-alls.
void BM_Training1024Gpu4LayerIteration(benchmark::State& state) {
  ClusterSpec cluster = load_cluster_preset_or_file("dgx-a100");
  cluster.nodes = 128;
  const int N = cluster.gpu_count();
  const double a2a_bytes = 16.0 * (1 << 20), ar_bytes = 32.0 * (1 << 20);
  for (auto _ : state) {
    Plan plan;
    plan.ranks = N;
    std::vector<int> ranks(static_cast<size_t>(N));
    for (int r = 0; r < N; ++r) ranks[static_cast<size_t>(r)] = r;
    std::vector<int> last(static_cast<size_t>(N), -1);
    auto a2a = [&](Phase ph) {
      Collective c;
      c.kind = CommKind::kAllToAll;
      c.ranks = ranks;
      c.hierarchical = true;
      c.phase = ph;
      c.bytes.assign(static_cast<size_t>(N) * N, a2a_bytes / N);
      for (int i = 0; i < N; ++i) c.bytes[static_cast<size_t>(i) * N + i] = 0;
      int id = plan.add_collective(std::move(c));
      for (int r = 0; r < N; ++r) {
        TaskDeps deps;
        if (last[static_cast<size_t>(r)] >= 0) deps = {last[static_cast<size_t>(r)]};
        last[static_cast<size_t>(r)] = plan.add_comm_task(r, id, Stream::kAllToAll, std::move(deps));
      }
    };
    auto compute = [&](Phase ph, double flops) {
      for (int r = 0; r < N; ++r) {
        Task t;
        t.rank = r;
        t.op = OpKind::kGemm;
        t.flops = flops;
        t.bytes = 1e8;
        t.phase = ph;
        if (last[static_cast<size_t>(r)] >= 0) t.deps = {last[static_cast<size_t>(r)]};
        last[static_cast<size_t>(r)] = plan.add_task(std::move(t));
      }
    };
    for (int l = 0; l < 4; ++l) {
      compute(Phase::kForward, 5e11);
      a2a(Phase::kForward);
      compute(Phase::kForward, 5e11);
      a2a(Phase::kForward);
    }
    for (int l = 0; l < 4; ++l) {
      a2a(Phase::kBackward);
      compute(Phase::kBackward, 1e12);
      a2a(Phase::kBackward);
      compute(Phase::kBackward, 1e12);
      Collective c;
      c.kind = CommKind::kAllReduce;
      c.ranks = ranks;
      c.bytes = {ar_bytes};
      c.hierarchical = true;  // a flat ring over 1,024 ranks is 2,046 synchronised steps; NCCL uses trees there
      c.phase = Phase::kBackward;
      c.role = Role::kGradSync;
      int id = plan.add_collective(std::move(c));
      for (int r = 0; r < N; ++r) plan.add_comm_task(r, id, Stream::kAllReduce, {last[static_cast<size_t>(r)]});
    }
    sim::Engine engine;
    sim::Topology topo(cluster);
    sim::Network net(engine, topo);
    sim::NetworkCollectives coll(engine, net, topo, cluster);
    sim::ComputeModel cm(cluster.gpu);
    sim::ExecutorOptions opts;
    opts.compute_duration = [&](const Task& t) { return cm.duration(t.op, t.flops, t.bytes, "bf16"); };
    sim::Executor exec(engine, coll, opts);
    ImmediateScheduler sched;
    Timeline tl = exec.run(plan, sched);
    state.counters["iteration_s"] = tl.makespan.seconds();
    state.counters["flows"] = static_cast<double>(net.stats().flows);
    state.counters["flows_per_s"] =
        benchmark::Counter(static_cast<double>(net.stats().flows), benchmark::Counter::kIsRate);
  }
}
BENCHMARK(BM_Training1024Gpu4LayerIteration)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_Training4096GpuMixtralStep(benchmark::State& state) {
  ClusterSpec cluster = load_cluster_preset_or_file("dgx-h100");
  cluster.nodes = 512;
  cluster.ring_model = state.range(0) ? ClusterSpec::RingModel::kPipelined : ClusterSpec::RingModel::kSteps;
  ModelSpec model = load_model(nlohmann::json{{"base", "mixtral-8x7b"}, {"layers", 2}}, "", "/model");
  WorkloadSpec w;
  w.batch_size = 1;
  w.seq_len = 4096;
  w.steps = 1;
  PolicySpec p;
  p.name = "deepspeed";
  p.label = "deepspeed";
  for (auto _ : state) {
    sim::RunResult r = sim::run_training(sim::TrainingInput{cluster, model, w, p, 1, false});
    benchmark::DoNotOptimize(r.metrics);
    state.counters["tasks"] = static_cast<double>(r.plan.tasks.size());
    state.counters["step_time_s"] = r.metrics["step_time_s"];
  }
}
BENCHMARK(BM_Training4096GpuMixtralStep)
    ->ArgName("pipelined_rings")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace

BENCHMARK_MAIN();

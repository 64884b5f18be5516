// Speed of the inference simulation (issue 6): batches of 512 tokens through 24 MoE layers with 16 experts on 16
// GPUs under `lina` (target: 10,000 batches in <= 10 s). Runs 200, 1,000 and 10,000 batches (after 100 profiling
// batches, which are timed too: the difference of the two runs is the per-batch cost) and reports batches/s and the
// projected time for 10,000; the second argument is InferenceInput::pipeline (1: the next batch is prepared on a second
// thread, the default; 0: one thread). A second benchmark runs the paper-sized Transformer-XL setup.
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>

#include "sched/cluster_spec.hpp"
#include "sched/inference_estimator.hpp"
#include "sched/model_spec.hpp"
#include "sim/inference_sim.hpp"
#include "traces/synth.hpp"

namespace {

using namespace lina;

// `lina` on the paper's testbed with Zipf routing (rho 0.35, the specs' same-path share); run() times it.
sim::InferenceInput lina_on_testbed(const nlohmann::json& model, const WorkloadSpec& workload) {
  sim::InferenceInput in;
  in.cluster = load_cluster_preset_or_file("lina-testbed");
  in.model = load_model(model, "", "/model");
  in.workload = workload;
  in.workload.routing.kind = "zipf";
  in.workload.routing.rho = 0.35;
  in.policy.name = "lina";
  in.policy.label = "lina";
  return in;
}
void run(benchmark::State& state, const sim::InferenceInput& in) {
  for (auto _ : state) {
    sim::RunResult r = sim::run_inference(in);
    benchmark::DoNotOptimize(r.metrics);
  }
  const double batches = static_cast<double>(in.workload.batches) * static_cast<double>(state.iterations());
  state.counters["batches_per_s"] = benchmark::Counter(batches, benchmark::Counter::kIsRate);
  state.counters["s_per_10k_batches"] =
      benchmark::Counter(batches / 1e4, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Inference512Tokens24Layers16Experts(benchmark::State& state) {
  WorkloadSpec w;
  w.batch_size = 1;
  w.seq_len = 512;
  w.batches = state.range(0);
  w.routing.zipf_s = 0.62;
  w.routing.profile_batches = 100;
  sim::InferenceInput in = lina_on_testbed(
      nlohmann::json{{"base", "transformer-xl"}, {"experts", 16}, {"top_k", 1}, {"capacity_factor", 0}}, w);
  in.pipeline = state.range(1) != 0;
  run(state, in);
}
// The paper's Transformer-XL inference setup (experiments/paper/inference-transformer-xl.json): 131,072 tokens per
// batch, 12 MoE layers, 16 experts on the 16-GPU testbed, dense dispatch, 4 topics drawn per batch. At this size
// generating the routing and Lina's path tables cost more than the simulation itself.
void BM_InferencePaperTransformerXL(benchmark::State& state) {
  WorkloadSpec w;
  w.batch_size = 256;
  w.seq_len = 512;
  w.batches = state.range(0);
  w.routing.zipf_s = 0.619;
  w.routing.topics = 4;
  w.routing.topic_per = "batch";
  w.routing.profile_batches = 20;
  run(state, lina_on_testbed(
                 nlohmann::json{
                     {"base", "transformer-xl"}, {"layers", 12}, {"experts", 16}, {"top_k", 1}, {"capacity_factor", 0}},
                 w));
}
BENCHMARK(BM_InferencePaperTransformerXL)->Arg(20)->Unit(benchmark::kMillisecond)->Iterations(1);

BENCHMARK(BM_Inference512Tokens24Layers16Experts)
    ->ArgsProduct({{200, 1000}, {1, 0}})
    ->Args({10000, 1})  // the target as stated: 10,000 batches, profiling included, <= 10 s
    ->ArgNames({"batches", "pipeline"})
    ->UseRealTime()  // the rates count the preparing thread's time too
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// Lina's path tables at DeepSeek-V3's shape: 58 MoE layers, 256 experts, top-8, paths of up to 3 choices, profiled
// on batches of 32k tokens (512 per GPU on 64 GPUs). Nearly every 3-choice path is new, so the tables grow with the
// tokens: table_bytes_per_batch is what one more profiled batch costs (about 0.5 GB; 1 KiB a row when rows went dense
// at their fifth expert, about five times that).
void BM_PathTables256ExpertsTop8(benchmark::State& state) {
  traces::SynthParams p;
  p.experts = 256;
  p.top_k = 8;
  p.layers = 58;
  p.tokens = 32768;
  p.zipf = 0.619;
  p.rho = 0.35;
  const auto batches = static_cast<int>(state.range(0));
  size_t bytes = 0;
  for (auto _ : state) {
    traces::SynthGenerator gen(p);
    PathEstimator est(p.layers, p.experts, p.top_k, 3);
    BatchRouting b;
    for (int i = 0; i < batches; ++i) {
      gen.next(b);
      est.add(b);
    }
    bytes = est.table_bytes();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["table_bytes_per_batch"] = static_cast<double>(bytes) / batches;
}
BENCHMARK(BM_PathTables256ExpertsTop8)->Arg(2)->ArgName("batches")->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();

// Reading speed of the native trace format (issue target: >= 50 M token-layer entries per second).
//
// A synthetic trace is written once to a temporary file (page cache warm after the first pass); each iteration
// streams it with TraceReader, which checks every record's lengths, checksum and expert ids. entries_per_s counts
// token-layer entries (a token's top-k choices at one layer).
#include <benchmark/benchmark.h>

#include <filesystem>
#include <string>

#include "traces/reader.hpp"
#include "traces/synth.hpp"

namespace {

std::string make_trace(int top_k, bool weights) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("lina_bench_trace_k" + std::to_string(top_k) + (weights ? "_w" : "") + ".ltr");
  lina::traces::SynthParams p;
  p.experts = 64;
  p.top_k = top_k;
  p.layers = 24;
  p.batches = 32;
  p.tokens = 4096;
  p.zipf = 1.0;
  p.rho = 0.3;
  p.weights = weights;
  lina::traces::write_synth(path.string(), p);
  return path.string();
}

void read_all(benchmark::State& state, int top_k, bool weights) {
  const std::string path = make_trace(top_k, weights);
  lina::BatchRouting b;
  uint64_t entries = 0;
  for (auto _ : state) {
    lina::traces::TraceReader r(path);
    while (r.next(b)) {
      entries += uint64_t(b.tokens) * uint64_t(b.layers);
      benchmark::DoNotOptimize(b.experts.data());
    }
  }
  state.counters["entries_per_s"] = benchmark::Counter(double(entries), benchmark::Counter::kIsRate);
  state.SetBytesProcessed(int64_t(std::filesystem::file_size(path)) * int64_t(state.iterations()));
  std::filesystem::remove(path);
}

void BM_ReadTraceTop1(benchmark::State& s) { read_all(s, 1, false); }
void BM_ReadTraceTop2(benchmark::State& s) { read_all(s, 2, false); }
void BM_ReadTraceTop2Weights(benchmark::State& s) { read_all(s, 2, true); }
void BM_ReadTraceTop6(benchmark::State& s) { read_all(s, 6, false); }
BENCHMARK(BM_ReadTraceTop1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadTraceTop2)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadTraceTop2Weights)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadTraceTop6)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

// Raw event throughput of the engine: schedule + pop, with a steady population of pending events.
#include <benchmark/benchmark.h>

#include <random>

#include "sim/engine.hpp"

namespace {

void BM_EngineScheduleAndRun(benchmark::State& state) {
  const int64_t pending = state.range(0);
  for (auto _ : state) {
    lina::sim::Engine e;
    std::mt19937_64 rng(1);
    std::uniform_int_distribution<int64_t> delay(1, 1'000'000);
    int64_t remaining = 1'000'000;
    std::function<void()> tick = [&] {
      if (--remaining > 0) e.schedule_after(lina::Time::ps(delay(rng)), tick);
    };
    for (int64_t i = 0; i < pending; ++i) e.schedule_at(lina::Time::ps(delay(rng)), tick);
    e.run();
    benchmark::DoNotOptimize(e.events_executed());
    state.counters["events_per_s"] =
        benchmark::Counter(static_cast<double>(e.events_executed()), benchmark::Counter::kIsRate);
  }
}
BENCHMARK(BM_EngineScheduleAndRun)->Arg(16)->Arg(1024)->Arg(65536)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();

// Speed and memory of the flow-level network and collectives (issue 3, DESIGN.md 9). Single-threaded. Topology of
// the issue: 8 GPUs per node on an NVSwitch (300 GB/s, 1 us), one 100 Gb/s NIC per GPU (2 us), non-blocking switch.
// Each benchmark reports wall time per simulation (setup included), events/s, flows/s and the process's peak RSS;
// bench/run.sh runs every benchmark in its own process so that the peak is that benchmark's.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "sim/collectives.hpp"

namespace {

using namespace lina;
using namespace lina::sim;

ClusterSpec issue_cluster(int gpus) {
  ClusterSpec c;
  c.name = "issue3";
  c.nodes = gpus / 8;
  c.gpus_per_node = 8;
  c.intra = {300e9, Time::us(1)};
  c.nic = {100e9 / 8, Time::us(2)};
  c.collective_alpha = Time::us(10);
  return c;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // kilobytes on Linux
}

void report(benchmark::State& state, uint64_t events, uint64_t flows, double sim_s, uint64_t recomputes) {
  using benchmark::Counter;
  state.counters["events_per_s"] = Counter(static_cast<double>(events), Counter::kIsRate);
  state.counters["flows_per_s"] = Counter(static_cast<double>(flows), Counter::kIsRate);
  state.counters["flows"] = Counter(static_cast<double>(flows), Counter::kAvgIterations);
  state.counters["recomputes"] = Counter(static_cast<double>(recomputes), Counter::kAvgIterations);
  state.counters["sim_ms"] = sim_s * 1e3;
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

std::vector<int> all_ranks(int p) {
  std::vector<int> r(p);
  std::iota(r.begin(), r.end(), 0);
  return r;
}

// Runs `launch` (which starts collectives) on a fresh P-GPU issue cluster each iteration and reports the counters.
template <class Launch>
void run_collectives(benchmark::State& state, int P, Launch launch) {
  uint64_t events = 0, flows = 0, recomputes = 0;
  double sim_s = 0;
  for (auto _ : state) {
    ClusterSpec spec = issue_cluster(P);
    Engine engine;
    Topology topo(spec);
    Network net(engine, topo);
    Collectives coll(engine, net, topo, spec);
    launch(coll);
    engine.run();
    events += engine.events_executed();
    flows += net.stats().flows;
    recomputes += net.stats().rate_recomputes;
    sim_s = engine.now().seconds();
  }
  report(state, events, flows, sim_s, recomputes);
}

// Uniform direct all-to-all, 1 MiB per GPU pair: P(P-1) flows.
void BM_UniformAllToAll(benchmark::State& state) {
  const int P = static_cast<int>(state.range(0));
  run_collectives(state, P, [&](Collectives& coll) {
    coll.launch_all(coll.alltoall(all_ranks(P), double(P) * (1 << 20), Collectives::Algo::kDirect, 0, nullptr));
  });
}
BENCHMARK(BM_UniformAllToAll)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->Iterations(1);

// Zipf(1.2)-skewed all-to-all-v: every rank sends P MiB in total, split over destinations by a Zipf law on a fixed
// random ranking of the destinations (hot experts); about 2P distinct completion times, each changing every rate.
void BM_ZipfAllToAllV(benchmark::State& state) {
  const int P = static_cast<int>(state.range(0));
  std::vector<double> w(P);
  std::vector<int> perm = all_ranks(P);
  std::mt19937_64 rng(12345);
  std::shuffle(perm.begin(), perm.end(), rng);
  double sum = 0;
  for (int j = 0; j < P; ++j) sum += w[j] = std::pow(perm[j] + 1.0, -1.2);
  std::vector<double> m(static_cast<size_t>(P) * P);
  for (int i = 0; i < P; ++i) {
    for (int j = 0; j < P; ++j) m[static_cast<size_t>(i) * P + j] = double(P) * (1 << 20) * w[j] / sum;
  }
  run_collectives(state, P, [&](Collectives& coll) {
    coll.launch_all(coll.alltoallv(all_ranks(P), m, Collectives::Algo::kDirect, 0, nullptr));
  });
}
BENCHMARK(BM_ZipfAllToAllV)->Arg(256)->Arg(512)->Unit(benchmark::kMillisecond)->Iterations(1);

// 10,000 random flows arriving over 10 ms on a 128-GPU leaf-spine (16 leaves, 4 spines, 2:1 oversubscribed), two
// priority classes, sizes uniform in [0, 16 MiB).
void BM_RandomFlowsLeafSpine(benchmark::State& state) {
  const int nflows = static_cast<int>(state.range(0));
  uint64_t events = 0, flows = 0, recomputes = 0;
  double sim_s = 0;
  for (auto _ : state) {
    ClusterSpec spec = issue_cluster(128);
    spec.fabric_kind = ClusterSpec::FabricKind::kLeafSpine;
    spec.spines = 4;
    spec.oversubscription = 2;
    spec.fabric_latency = Time::ns(500);
    Engine engine;
    Topology topo(spec);
    Network net(engine, topo);
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int> gpu(0, 127), cls(0, 1);
    std::uniform_real_distribution<double> size(0, 16.0 * (1 << 20)), when(0, 10e-3);
    for (int i = 0; i < nflows; ++i) {
      int s = gpu(rng), d = gpu(rng), k = cls(rng);
      double b = size(rng);
      engine.schedule_at(Time::from_seconds(when(rng)),
                         [&net, s, d, b, k] { net.start_flow(s, d, b, k, 1.0, nullptr); });
    }
    engine.run();
    events += engine.events_executed();
    flows += net.stats().flows;
    recomputes += net.stats().rate_recomputes;
    sim_s = engine.now().seconds();
  }
  report(state, events, flows, sim_s, recomputes);
}
BENCHMARK(BM_RandomFlowsLeafSpine)->Arg(10000)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace

BENCHMARK_MAIN();

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "sim/network.hpp"

namespace lina::sim {
namespace {

// The shape of issue 3 with round numbers: 8 GPUs per node, NVSwitch links 300 GB/s and 1 us, one NIC per GPU at
// 12.5 GB/s (100 Gb/s) and 2 us, a non-blocking fabric switch.
constexpr double kIntra = 300e9;
constexpr double kNic = 12.5e9;
const double kLintra = 2e-6;  // GPU -> NVSwitch -> GPU
const double kLinter = 4e-6;  // GPU -> fabric -> GPU

ClusterSpec cluster(int nodes, int gpus_per_node = 8) {
  ClusterSpec c;
  c.name = "test";
  c.nodes = nodes;
  c.gpus_per_node = gpus_per_node;
  c.intra = {kIntra, Time::us(1)};
  c.nic = {kNic, Time::us(2)};
  c.host_pcie = {24e9, Time::us(2)};
  return c;
}

// Completion times are rounded up to the picosecond; allow a few ticks for floating-point rounding of rates.
void expect_time(Time actual, double expected_s) {
  EXPECT_NEAR(actual.seconds(), expected_s, 3e-12 + expected_s * 1e-12) << "expected " << expected_s << " s";
}

struct Harness {
  explicit Harness(const ClusterSpec& c) : topo(c), net(engine, topo) {}
  Network::FlowId flow(int src, int dst, double bytes, int cls = 0, double w = 1.0) {
    size_t i = done.size();
    done.push_back(Time::max());
    return net.start_flow(src, dst, bytes, cls, w, [this, i](Network::FlowId) { done[i] = engine.now(); });
  }
  Engine engine;
  Topology topo;
  Network net;
  std::vector<Time> done;
};

TEST(Network, OneFlow) {
  Harness h(cluster(2));
  const double M = 64e6;
  h.flow(0, 8, M);
  h.engine.run();
  // T = L + M / B (inter-node: two NIC links of 2 us, 12.5 GB/s).
  expect_time(h.done[0], kLinter + M / kNic);
  EXPECT_EQ(h.net.stats().flows_completed, 1u);
  EXPECT_DOUBLE_EQ(h.net.stats().bytes_completed, M);
}

// A flow longer than the clock (53.4 days) is the clock's input error; it used to finish at 46.3 days (a saturated
// duration inside the clock), silently. One just inside the clock finishes at its exact time.
TEST(Network, FlowsLongerThanTheClockAreAnError) {
  const double clock_s = static_cast<double>(Time::kLimitTicks) / static_cast<double>(Time::kTicksPerSecond);
  {
    Harness h(cluster(2));
    h.flow(0, 8, 1.1 * clock_s * kNic);  // 58.7 days at 12.5 GB/s
    EXPECT_THROW(h.engine.run(), TimeRangeError);
    EXPECT_EQ(h.done[0], Time::max());  // never reported finished
  }
  {
    Harness h(cluster(2));
    const double M = 0.9 * clock_s * kNic;  // 48 days: past the old 46.3-day saturation, inside the clock
    h.flow(0, 8, M);
    h.engine.run();
    EXPECT_NEAR(h.done[0].seconds(), kLinter + M / kNic, 1e-3);
  }
}

// A flow starved for now (weight 1e-12 beside a large flow on its link) has a projected completion past the clock;
// it is parked, re-rated when the large flow leaves, and finishes when work conservation says: (Ma + Ms) / B.
TEST(Network, AStarvedFlowPastTheClockFinishesOnceReRated) {
  Harness h(cluster(2));
  const double Ma = 64e6, Ms = 1e6;
  h.flow(0, 8, Ma);
  h.flow(0, 9, Ms, 0, 1e-12);  // alone at its starved rate: 8e7 s
  h.engine.run();
  expect_time(h.done[0], kLinter + Ma * (1 + 1e-12) / kNic);
  EXPECT_NEAR(h.done[1].seconds(), kLinter + (Ma + Ms) / kNic, 1e-9);
}

TEST(Network, EqualFlowsShareOneLink) {
  Harness h(cluster(2));
  const double M = 10e6;
  const int n = 5;
  // n flows out of GPU 0 to GPUs of node 1: they share GPU 0's NIC up link.
  for (int i = 0; i < n; ++i) h.flow(0, 8 + i, M);
  h.engine.run();
  // Each gets B/n: T = L + n M / B, all at the same instant, after one recompute for the arrivals and one for the
  // completions.
  for (int i = 0; i < n; ++i) expect_time(h.done[i], kLinter + n * M / kNic);
  EXPECT_EQ(h.done[0], h.done[n - 1]);
  EXPECT_EQ(h.net.stats().rate_recomputes, 2u);
}

TEST(Network, ClassicMaxMinWithUnequalRoutes) {
  // Two nodes of 4 GPUs, one NIC per node (1 GB/s), intra links 3 GB/s. Flows:
  //   a: gpu0 -> gpu4 (intra_up0, nic_up0, nic_down1, intra_down4)
  //   b: gpu1 -> gpu5 (intra_up1, nic_up0, nic_down1, intra_down5)
  //   c: gpu0 -> gpu1 (intra_up0, intra_down1)
  //   d: gpu2 -> gpu1 (intra_up2, intra_down1)
  // Progressive filling: nic_up0 saturates first at 1/2 (a = b = 0.5 GB/s); then intra_down1 (3 GB/s for c, d) at
  // 1.5 before intra_up0 (3 - 0.5 = 2.5 left for c alone): c = d = 1.5 GB/s.
  ClusterSpec c = cluster(2, 4);
  c.nic_per = ClusterSpec::NicPer::kNode;
  c.intra = {3e9, Time::zero()};
  c.nic = {1e9, Time::zero()};
  Harness h(c);
  const double M = 3e9;
  auto a = h.flow(0, 4, M), b = h.flow(1, 5, M), cc = h.flow(0, 1, M), d = h.flow(2, 1, M);
  h.engine.run_until(Time::zero());
  EXPECT_DOUBLE_EQ(h.net.rate(a), 0.5e9);
  EXPECT_DOUBLE_EQ(h.net.rate(b), 0.5e9);
  EXPECT_DOUBLE_EQ(h.net.rate(cc), 1.5e9);
  EXPECT_DOUBLE_EQ(h.net.rate(d), 1.5e9);
  h.engine.run();
  // c and d finish at M / 1.5 GB/s = 2 s; then a, b still share the NIC: 0.5 GB/s until they finish at M / 0.5 = 6 s.
  expect_time(h.done[2], 2.0);
  expect_time(h.done[3], 2.0);
  expect_time(h.done[0], 6.0);
  expect_time(h.done[1], 6.0);
}

TEST(Network, ParkingLotOnExplicitRoutes) {
  // Links X (NIC up of gpu0, 12.5 GB/s) and Y (NVSwitch up of gpu0, 300 GB/s). f0 crosses X and Y, f1 only X,
  // f2 only Y. Max-min: X saturates first at 6.25 GB/s for f0 and f1; f2 gets the rest of Y, 300 - 6.25.
  Harness h(cluster(2));
  LinkId X = h.topo.route(0, 8)[0];
  LinkId Y = h.topo.route(0, 1)[0];
  std::vector<LinkId> xy{X, Y}, x{X}, y{Y};
  auto f0 = h.net.start_route_flow(xy, Time::zero(), 1e9, 0, 1, nullptr);
  auto f1 = h.net.start_route_flow(x, Time::zero(), 1e9, 0, 1, nullptr);
  auto f2 = h.net.start_route_flow(y, Time::zero(), 1e9, 0, 1, nullptr);
  h.engine.run_until(Time::zero());
  EXPECT_DOUBLE_EQ(h.net.rate(f0), kNic / 2);
  EXPECT_DOUBLE_EQ(h.net.rate(f1), kNic / 2);
  EXPECT_DOUBLE_EQ(h.net.rate(f2), kIntra - kNic / 2);
}

TEST(Network, Weights) {
  Harness h(cluster(2));
  const double M = 30e6;
  h.flow(0, 8, M, 0, 1.0);
  h.flow(0, 9, M, 0, 3.0);
  h.engine.run_until(Time::from_seconds(kLinter));
  // Weighted max-min on GPU 0's NIC: rates B/4 and 3B/4.
  EXPECT_DOUBLE_EQ(h.net.rate(0), kNic / 4);
  EXPECT_DOUBLE_EQ(h.net.rate(1), 3 * kNic / 4);
  h.engine.run();
  // The heavy flow ends at L + M / (3B/4) = L + 4M/(3B); the light one has then M/3 delivered and sends the remaining
  // 2M/3 at B: L + 4M/(3B) + 2M/(3B) = L + 2M/B.
  expect_time(h.done[1], kLinter + 4 * M / (3 * kNic));
  expect_time(h.done[0], kLinter + 2 * M / kNic);
}

TEST(Network, StrictPriority) {
  // An all-to-all flow of V bytes (class 0) and an allreduce flow of A >= V bytes (class 1) on one bottleneck B.
  const double V = 20e6, A = 50e6;
  {
    Harness h(cluster(2));
    h.flow(0, 8, V, 0);
    h.flow(0, 9, A, 1);
    h.engine.run();
    // With priority the all-to-all sees the whole link: L + V/B; the allreduce gets the link afterwards: L + (V+A)/B.
    expect_time(h.done[0], kLinter + V / kNic);
    expect_time(h.done[1], kLinter + (V + A) / kNic);
  }
  {
    Harness h(cluster(2));
    h.flow(0, 8, V, 0);
    h.flow(0, 9, A, 0);
    h.engine.run();
    // Fair-shared (one class): B/2 each until the all-to-all ends at L + 2V/B; the allreduce still ends at
    // L + (V+A)/B (work conservation).
    expect_time(h.done[0], kLinter + 2 * V / kNic);
    expect_time(h.done[1], kLinter + (V + A) / kNic);
  }
}

TEST(Network, LowerClassUsesWhatHigherLeaves) {
  // Class 0: gpu0 -> gpu8 limited by gpu8's NIC down link shared with another class-0 flow gpu1 -> gpu8 (B/2 each).
  // Class 1: gpu0 -> gpu9 shares gpu0's NIC up with the first flow: it gets B - B/2 = B/2, not starved.
  Harness h(cluster(2));
  auto a = h.flow(0, 8, 1e9, 0), b = h.flow(1, 8, 1e9, 0), c = h.flow(0, 9, 1e9, 1);
  h.engine.run_until(Time::from_seconds(kLinter));
  EXPECT_DOUBLE_EQ(h.net.rate(a), kNic / 2);
  EXPECT_DOUBLE_EQ(h.net.rate(b), kNic / 2);
  EXPECT_DOUBLE_EQ(h.net.rate(c), kNic / 2);
}

TEST(Network, ZeroBytesLocalAndHostFlows) {
  Harness h(cluster(2));
  h.flow(0, 8, 0);    // zero bytes: its latency only
  h.flow(3, 3, 1e9);  // same GPU: a local copy, immediate
  h.done.push_back(Time::max());
  h.net.start_host_flow(2, 24e6, 0, 1, [&](Network::FlowId) { h.done[2] = h.engine.now(); });
  h.engine.run();
  expect_time(h.done[0], kLinter);
  EXPECT_EQ(h.done[1], Time::zero());
  // Host PCIe: 2 us + 24 MB / 24 GB/s.
  expect_time(h.done[2], 2e-6 + 1e-3);
}

TEST(Network, LateArrivalReschedulesTheEarlierFlow) {
  Harness h(cluster(2));
  const double M = 25e6;  // 2 ms alone on a NIC
  h.flow(0, 8, M);
  h.engine.schedule_at(Time::ms(1), [&] { h.flow(0, 9, M); });
  h.engine.run();
  // First flow: alone from L to 1 ms + L (the second arrives after its latency), delivering B (1 ms) bytes; then
  // B/2: the rest, M - B*1ms = M/2, takes M/B = 2 ms more: L + 3 ms.
  expect_time(h.done[0], kLinter + 3e-3);
  // Second: B/2 for 2 ms (M/2 delivered), then B alone for the other M/2 (1 ms): 1 ms + L + 3 ms.
  expect_time(h.done[1], 1e-3 + kLinter + 3e-3);
}

TEST(Network, CallbacksMayStartFlows) {
  Harness h(cluster(2));
  int chain = 0;
  std::function<void(Network::FlowId)> next = [&](Network::FlowId) {
    if (++chain < 3) h.net.start_flow(0, 8, 12.5e6, 0, 1, next);
  };
  h.net.start_flow(0, 8, 12.5e6, 0, 1, next);
  h.engine.run();
  EXPECT_EQ(chain, 3);
  // Three sequential transfers of 1 ms each plus their latency.
  expect_time(h.engine.now(), 3 * (kLinter + 1e-3));
}

TEST(Network, SeparateComponentsAreSolvedSeparately) {
  Harness h(cluster(4));
  // Node 0 and node 1 intra-node traffic, node 2 -> node 3 inter-node traffic: three disjoint link sets.
  h.flow(0, 1, 1e9);
  h.flow(8, 9, 1e9);
  h.flow(16, 24, 1e9);
  h.engine.run_until(Time::us(5));
  EXPECT_EQ(h.net.stats().components, 3u);
  // A later arrival in node 0 recomputes node 0 only.
  uint64_t before = h.net.stats().flow_allocations;
  h.flow(2, 1, 1e9);
  h.engine.run_until(Time::us(8));
  EXPECT_EQ(h.net.stats().flow_allocations - before, 2u);
  h.engine.run();
}

TEST(Network, LinkObserverReportsRates) {
  Harness h(cluster(2));
  std::map<LinkId, std::vector<std::pair<Time, double>>> seen;
  h.net.set_link_observer([&](Time t, LinkId l, double r) { seen[l].emplace_back(t, r); });
  h.flow(0, 8, 12.5e6);
  h.engine.run();
  LinkId up = h.topo.route(0, 8)[0];
  ASSERT_EQ(seen[up].size(), 2u);
  EXPECT_EQ(seen[up][0].first, Time::us(4));
  EXPECT_DOUBLE_EQ(seen[up][0].second, kNic);
  EXPECT_DOUBLE_EQ(seen[up][1].second, 0.0);
}

TEST(Network, RejectsBadFlows) {
  Harness h(cluster(2));
  EXPECT_THROW(h.net.start_flow(0, 8, -1, 0, 1, nullptr), std::invalid_argument);
  EXPECT_THROW(h.net.start_flow(0, 8, 1, 0, 0, nullptr), std::invalid_argument);
  EXPECT_THROW(h.net.start_flow(0, 8, 1, 64, 1, nullptr), std::invalid_argument);
  EXPECT_THROW(h.net.start_flow(0, 16, 1, 0, 1, nullptr), std::out_of_range);
}

// ---- Properties on random flow sets (DESIGN.md 8.2) ----

struct RandomRun {
  std::vector<Time> finish;
  std::vector<double> bytes;
  std::vector<Time> start;
  std::vector<int> src, dst;
};

// Random flows over time on a leaf-spine cluster with shared NICs and two classes. At sampled instants, checks
// capacity (relative 1e-9) and work conservation (every draining flow crosses a saturated link) from the public API.
RandomRun random_run(uint64_t seed, int nflows, bool check, bool extreme = false) {
  ClusterSpec c = cluster(4, 4);
  c.fabric_kind = ClusterSpec::FabricKind::kLeafSpine;
  c.spines = 2;
  c.oversubscription = 2;
  c.fabric_latency = Time::ns(300);
  Engine engine;
  Topology topo(c);
  Network net(engine, topo);
  std::mt19937_64 rng(seed);
  RandomRun out;
  out.finish.assign(nflows, Time::max());
  std::uniform_int_distribution<int> gpu(0, c.gpu_count() - 1), cls(0, extreme ? 3 : 1);
  std::uniform_real_distribution<double> size(0, 20e6), when(0, 2e-3), weight(0.5, 2);
  for (int i = 0; i < nflows; ++i) {
    int s = gpu(rng), d = gpu(rng);
    double b =
        i % 17 == 0 ? 0.0 : (extreme ? std::pow(10.0, std::uniform_real_distribution<double>(0, 11)(rng)) : size(rng));
    Time t = Time::from_seconds(when(rng));
    int k = cls(rng);
    // Extreme inputs: weights 1e-9 to 1e9 and sizes 1 B to 100 GB (log-uniform) and four classes. Starved flows'
    // projected completions pass the clock's end until their component changes.
    double w = extreme ? std::pow(10.0, std::uniform_real_distribution<double>(-9, 9)(rng)) : weight(rng);
    out.src.push_back(s);
    out.dst.push_back(d);
    out.bytes.push_back(b);
    out.start.push_back(t);
    engine.schedule_at(t, [&, i, s, d, b, k, w] {
      net.start_flow(s, d, b, k, w, [&, i](Network::FlowId) { out.finish[i] = engine.now(); });
    });
  }
  // Weights 18 orders of magnitude apart leave rounding of a few 1e-9 of a link's capacity in the rates (both ways:
  // 37 B/s over 12.5 GB/s, or as much short of saturation).
  const double slack = extreme ? 1e-7 : 1e-9;
  if (check) {
    for (int step = 1; step <= 400; ++step) {
      engine.run_until(Time::us(10 * step));
      std::vector<double> used(topo.link_count(), 0.0);
      net.for_each_draining_flow([&](Network::FlowId, std::span<const LinkId> r, int, double, double rate) {
        EXPECT_TRUE(rate >= 0.0 && std::isfinite(rate)) << rate;  // extreme weights made NaN rates
        for (LinkId l : r) used[l] += rate;
      });
      for (size_t l = 0; l < used.size(); ++l) {
        EXPECT_LE(used[l], topo.link_capacity(static_cast<LinkId>(l)) * (1 + slack))
            << topo.link_name(l) << " over by " << used[l] / topo.link_capacity(static_cast<LinkId>(l)) - 1;
      }
      net.for_each_draining_flow([&](Network::FlowId, std::span<const LinkId> r, int, double, double) {
        bool saturated =
            std::any_of(r.begin(), r.end(), [&](LinkId l) { return used[l] >= topo.link_capacity(l) * (1 - slack); });
        double best = 0;
        for (LinkId l : r) best = std::max(best, used[l] / topo.link_capacity(l));
        EXPECT_TRUE(saturated) << "work conservation: fullest link at " << 1 - best << " below capacity";
      });
    }
  }
  engine.run();
  EXPECT_EQ(net.stats().flows_completed, static_cast<uint64_t>(nflows));
  EXPECT_NEAR(net.stats().bytes_completed, net.stats().bytes_started, 1e-6 * net.stats().bytes_started);
  // Never earlier than the flow alone on its route: start + latency + bytes / bottleneck capacity.
  for (int i = 0; i < nflows; ++i) {
    auto r = topo.route(out.src[i], out.dst[i]);
    double bottleneck = 1e300;
    for (LinkId l : r) bottleneck = std::min(bottleneck, topo.link_capacity(l));
    double lower = (out.start[i] + topo.route_latency(out.src[i], out.dst[i])).seconds() +
                   (r.empty() ? 0.0 : out.bytes[i] / bottleneck);
    EXPECT_GE(out.finish[i].seconds(), lower * (1 - 1e-12) - 1e-12)
        << "flow " << i << " " << out.src[i] << "->" << out.dst[i] << " bytes " << out.bytes[i] << " start "
        << out.start[i].seconds();
  }
  return out;
}

TEST(NetworkProperty, CapacityWorkConservationAndLowerBound) {
  for (uint64_t seed = 1; seed <= 3; ++seed) random_run(seed, 300, true);
}

TEST(NetworkProperty, ExtremeWeightsSizesAndClasses) {
  for (uint64_t seed = 4; seed <= 5; ++seed) random_run(seed, 300, true, true);
}

TEST(NetworkProperty, Deterministic) {
  RandomRun a = random_run(42, 500, false), b = random_run(42, 500, false);
  EXPECT_EQ(a.finish, b.finish);
}

}  // namespace
}  // namespace lina::sim

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

#include "sim/collectives.hpp"

namespace lina::sim {
namespace {

constexpr double kIntra = 300e9;
constexpr double kNic = 12.5e9;

ClusterSpec cluster(int nodes, int gpus_per_node, Time alpha) {
  ClusterSpec c;
  c.name = "test";
  c.nodes = nodes;
  c.gpus_per_node = gpus_per_node;
  c.intra = {kIntra, Time::us(1)};
  c.nic = {kNic, Time::us(2)};
  c.collective_alpha = alpha;
  return c;
}

std::vector<int> iota(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

struct Harness {
  explicit Harness(const ClusterSpec& c) : spec(c), topo(c), net(engine, topo), coll(engine, net, topo, spec) {}
  Collectives::RankDone recorder(std::vector<Time>& out) {
    out.assign(spec.gpu_count(), Time::max());
    return [this, &out](int gpu) { out[gpu] = engine.now(); };
  }
  ClusterSpec spec;
  Engine engine;
  Topology topo;
  Network net;
  Collectives coll;
};

void expect_time(Time actual, double expected_s) {
  EXPECT_NEAR(actual.seconds(), expected_s, 1e-10 + expected_s * 1e-12) << "expected " << expected_s << " s";
}

Time latest(const std::vector<Time>& v) { return *std::max_element(v.begin(), v.end()); }

TEST(Collectives, RingAllreduceClosedForm) {
  // P ranks, one per node: every ring step crosses one NIC up and one NIC down link, uncontended.
  const int P = 4;
  const double M = 40e6, alpha = 10e-6, L = 4e-6;
  Harness h(cluster(P, 1, Time::us(10)));
  std::vector<Time> done;
  auto id = h.coll.allreduce(iota(P), M, Collectives::Algo::kRing, 0, h.recorder(done));
  h.coll.launch_all(id);
  h.engine.run();
  // Synchronized-step model: 2(P-1) steps of alpha + L + (M/P)/B.
  for (int r = 0; r < P; ++r) expect_time(done[r], 2 * (P - 1) * (alpha + L + (M / P) / kNic));
  EXPECT_EQ(h.coll.active(), 0u);
}

TEST(Collectives, RingAllreduceWithoutLatencyMatchesDesignOracle) {
  ClusterSpec c = cluster(8, 1, Time::us(5));
  c.nic.latency = Time::zero();
  Harness h(c);
  const int P = 8;
  const double M = 80e6;
  std::vector<Time> done;
  h.coll.launch_all(h.coll.allreduce(iota(P), M, Collectives::Algo::kRing, 0, h.recorder(done)));
  h.engine.run();
  // DESIGN.md 2.4: 2(P-1)/P * M / B + 2(P-1) * alpha.
  expect_time(latest(done), 2.0 * (P - 1) / P * M / kNic + 2 * (P - 1) * 5e-6);
}

TEST(Collectives, UniformDirectAllToAll) {
  // One GPU per node: each rank sends M/P to each of the P-1 others over its NIC (B/(P-1) each), receives likewise.
  const int P = 6;
  const double M = 60e6;
  Harness h(cluster(P, 1, Time::us(10)));
  std::vector<Time> done;
  h.coll.launch_all(h.coll.alltoall(iota(P), M, Collectives::Algo::kDirect, 0, h.recorder(done)));
  h.engine.run();
  // alpha + L + (P-1)/P * M / B.
  for (int r = 0; r < P; ++r) expect_time(done[r], 10e-6 + 4e-6 + (P - 1.0) / P * M / kNic);
}

TEST(Collectives, UniformDirectAllToAllEightGpusPerNode) {
  // Issue topology, 4 nodes x 8: the 7 local peers go over NVSwitch (far faster); the NIC carries (P-8) pairs.
  const int P = 32;
  const double M = 32e6;
  Harness h(cluster(4, 8, Time::us(10)));
  std::vector<Time> done;
  h.coll.launch_all(h.coll.alltoall(iota(P), M, Collectives::Algo::kDirect, 0, h.recorder(done)));
  h.engine.run();
  // alpha + L_inter + (P-8)(M/P)/B.
  expect_time(latest(done), 10e-6 + 4e-6 + (P - 8) * (M / P) / kNic);
}

TEST(Collectives, HierarchicalAllToAll) {
  // 2 nodes x 4 GPUs, uniform M. Step 1 (intra): GPU (n,l) sends to each of its 3 local peers the data for that
  // local rank on both nodes, 2 M/P, sharing its NVSwitch up link: 3 * 2M/P / B_intra. Step 2 (inter): to (m,l) the
  // 4 GPUs' data for it, 4 M/P = M/2, alone on the NIC: M/2 / B. Each step adds alpha and its route latency.
  const int P = 8;
  const double M = 64e6, alpha = 10e-6;
  Harness h(cluster(2, 4, Time::us(10)));
  std::vector<Time> done;
  h.coll.launch_all(h.coll.alltoall(iota(P), M, Collectives::Algo::kHierarchical, 0, h.recorder(done)));
  h.engine.run();
  const double t = alpha + 2e-6 + 3 * 2 * M / P / kIntra + alpha + 4e-6 + (M / 2) / kNic;
  for (int r = 0; r < P; ++r) expect_time(done[r], t);
}

TEST(Collectives, AllToAllVLowerBoundAndPerRankCompletion) {
  // One GPU per node, only NICs limit. Random sizes: the collective cannot end before
  // alpha + L + max over ranks of max(sent, received) / B.
  const int P = 8;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0, 10e6);
  for (int trial = 0; trial < 5; ++trial) {
    Harness h(cluster(P, 1, Time::us(10)));
    std::vector<double> m(P * P);
    for (double& x : m) x = u(rng);
    double worst = 0;
    for (int i = 0; i < P; ++i) {
      double sent = 0, recv = 0;
      for (int j = 0; j < P; ++j) {
        if (j == i) continue;
        sent += m[i * P + j];
        recv += m[j * P + i];
      }
      worst = std::max({worst, sent, recv});
    }
    std::vector<Time> done;
    h.coll.launch_all(h.coll.alltoallv(iota(P), m, Collectives::Algo::kDirect, 0, h.recorder(done)));
    h.engine.run();
    EXPECT_GE(latest(done).seconds(), 14e-6 + worst / kNic - 1e-12);
  }
  {
    // Incast: ranks 1..P-2 send S to rank 0 only. Rank 0 receives (P-2) S: the bound alpha + L + (P-2) S / B is met.
    // The senders finish at the same time (they share rank 0's NIC fairly), a rank with nothing to do finishes at
    // the rendezvous.
    Harness h(cluster(P, 1, Time::us(10)));
    const double S = 5e6;
    std::vector<double> m(P * P, 0.0);
    for (int i = 1; i < P - 1; ++i) m[i * P + 0] = S;  // rank P-1 sends nothing
    std::vector<Time> done;
    h.coll.launch_all(h.coll.alltoallv(iota(P), m, Collectives::Algo::kDirect, 0, h.recorder(done)));
    h.engine.run();
    expect_time(done[0], 14e-6 + (P - 2) * S / kNic);
    EXPECT_EQ(done[P - 1], Time::zero());
  }
}

TEST(Collectives, StrictPriorityAllToAllOverAllreduce) {
  // Two ranks on two nodes, one bottleneck B (each NIC). All-to-all: V bytes each way (M = 2V). Allreduce of
  // A >= V per rank: its ring steps move A/2 >= V over the same NICs.
  const double V = 10e6, A = 40e6, alpha = 10e-6, L = 4e-6;
  for (int prio : {1, 0}) {
    Harness h(cluster(2, 1, Time::us(10)));
    std::vector<Time> a2a, ar;
    h.coll.launch_all(h.coll.alltoall({0, 1}, 2 * V, Collectives::Algo::kDirect, 0, h.recorder(a2a)));
    h.coll.launch_all(h.coll.allreduce({0, 1}, A, Collectives::Algo::kRing, prio, h.recorder(ar)));
    h.engine.run();
    if (prio == 1) {
      // With priority the all-to-all sees the whole link: V / B.
      expect_time(latest(a2a), alpha + L + V / kNic);
    } else {
      // Fair-shared with the allreduce's first step (A/2 >= V bytes): 2V / B.
      expect_time(latest(a2a), alpha + L + 2 * V / kNic);
    }
  }
}

TEST(Collectives, ConcurrentCollectivesShareALinkPerCollectiveOrPerFlow) {
  // Node 0 (GPUs 0, 1) sends to node 1 (GPUs 2, 3) over one NIC per node. All-to-all from GPUs {0, 1} to {2, 3}
  // only: its direct step puts 4 flows of V on the NIC (0->2, 0->3, 1->2, 1->3); a ring allreduce over {0, 2}
  // puts 1 flow of A/2 per step on it. Without latency and alpha:
  //   collective sharing: the all-to-all takes half the NIC while both run: its 4V bytes end at 8V / B.
  //   flow sharing:       it takes 4/5 of the NIC: 4V / (4B/5) = 5V / B.
  const double V = 5e6, A = 80e6;  // the allreduce's first step (A/2 = 40 MB) outlasts the all-to-all
  for (auto sharing : {ClusterSpec::Sharing::kCollective, ClusterSpec::Sharing::kFlow}) {
    ClusterSpec c = cluster(2, 2, Time::zero());
    c.nic_per = ClusterSpec::NicPer::kNode;
    c.intra.latency = Time::zero();
    c.nic.latency = Time::zero();
    c.sharing = sharing;
    Harness h(c);
    std::vector<Time> a2a, ar;
    std::vector<double> m(16, 0.0);
    for (int src : {0, 1})
      for (int dst : {2, 3}) m[static_cast<size_t>(src) * 4 + dst] = V;
    h.coll.launch_all(h.coll.alltoallv(iota(4), m, Collectives::Algo::kDirect, 0, h.recorder(a2a)));
    h.coll.launch_all(h.coll.allreduce({0, 2}, A, Collectives::Algo::kRing, 0, h.recorder(ar)));
    h.engine.run();
    const double expected = sharing == ClusterSpec::Sharing::kCollective ? 8 * V / kNic : 5 * V / kNic;
    EXPECT_NEAR(latest(a2a).seconds(), expected, 1e-9) << (sharing == ClusterSpec::Sharing::kFlow ? "flow" : "coll");
  }
}

TEST(Collectives, RendezvousWaitsForTheLastRank) {
  Harness h(cluster(4, 1, Time::zero()));
  std::vector<Time> done;
  auto id = h.coll.allreduce(iota(4), 4e6, Collectives::Algo::kRing, 0, h.recorder(done));
  h.coll.launch(id, 0);
  h.coll.launch(id, 1);
  h.coll.launch(id, 2);
  h.engine.schedule_at(Time::ms(1), [&] { h.coll.launch(id, 3); });
  h.engine.run();
  // Nothing moves before the last launch at 1 ms: 1 ms + 6 steps of (L + 1 MB / B).
  expect_time(latest(done), 1e-3 + 6 * (4e-6 + 1e6 / kNic));
  EXPECT_THROW(h.coll.launch(99, 0), std::logic_error);
}

TEST(Collectives, ReduceScatterAllGatherTreeAndHierarchical) {
  const double M = 16e6;
  {
    Harness h(cluster(4, 1, Time::zero()));
    std::vector<Time> rs, ag;
    h.coll.launch_all(h.coll.reduce_scatter(iota(4), M, 0, h.recorder(rs)));
    h.engine.run();
    // P-1 steps of L + (M/P)/B.
    expect_time(latest(rs), 3 * (4e-6 + (M / 4) / kNic));
    Time t0 = h.engine.now();
    h.coll.launch_all(h.coll.all_gather(iota(4), M, 0, h.recorder(ag)));
    h.engine.run();
    expect_time(latest(ag) - t0, 3 * (4e-6 + (M / 4) / kNic));
  }
  {
    // Double binary tree over 4 ranks on 4 nodes. Tree A: 0 <- {1, 2}, 1 <- {3}; tree B (mirrored): 3 <- {2, 1},
    // 2 <- {0}. Reduce step: rank 0 sends M/2 to 2 (tree B) and receives M/2 from 1 and 2 over its NIC down link:
    // M / B; rank 1 sends to 0 (A) and 3 (B): M / B out; so the step takes L + M/B, and the broadcast step mirrors
    // it: 2 (L + M/B) in total.
    Harness h(cluster(4, 1, Time::zero()));
    std::vector<Time> done;
    h.coll.launch_all(h.coll.allreduce(iota(4), M, Collectives::Algo::kTree, 0, h.recorder(done)));
    h.engine.run();
    expect_time(latest(done), 2 * (4e-6 + M / kNic));
  }
  {
    // Node-aware tree on 2 nodes x 2 GPUs with one NIC per GPU: two channels of M/2 each. In channel c the node heads
    // are local rank c (the other GPU chains to it over NVSwitch, fast); tree A is rooted at node 0, tree B at node 1,
    // so in the reduce step each head sends M/4 (its half of its channel) to the other node's head, and every NIC
    // carries exactly one such flow: L + (M/4)/B. The broadcast step mirrors it (the chain copies, 2 us + M/2 over
    // 300 GB/s, end before): 2 (L + (M/4)/B) for every rank.
    Harness h(cluster(2, 2, Time::zero()));
    std::vector<Time> done;
    h.coll.launch_all(h.coll.allreduce(iota(4), M, Collectives::Algo::kTree, 0, h.recorder(done)));
    h.engine.run();
    for (int r = 0; r < 4; ++r) expect_time(done[r], 2 * (4e-6 + (M / 4) / kNic));
  }
  {
    // Multi-channel ring on 2 nodes x 2 GPUs: channel 0 orders node 0 as (0, 1) and crosses 1 -> 2, 3 -> 0; channel 1
    // orders it (1, 0) and crosses 0 -> 3, 2 -> 1. Each step moves M/P/2 per channel; every NIC carries one flow
    // of M/8, alone: 2(P-1) steps of L + (M/8)/B (the intra-node hops are shorter).
    Harness h(cluster(2, 2, Time::zero()));
    std::vector<Time> done;
    h.coll.launch_all(h.coll.allreduce(iota(4), M, Collectives::Algo::kRing, 0, h.recorder(done)));
    h.engine.run();
    expect_time(latest(done), 6 * (4e-6 + (M / 8) / kNic));
  }
  {
    // Hierarchical allreduce on 2 nodes x 2 GPUs: intra reduce-scatter (1 step of M/2 over NVSwitch), inter ring
    // allreduce of M/2 between the 2 nodes (2 steps of M/4 over the NICs), intra all-gather (1 step of M/2).
    Harness h(cluster(2, 2, Time::zero()));
    std::vector<Time> done;
    h.coll.launch_all(h.coll.allreduce(iota(4), M, Collectives::Algo::kHierarchical, 0, h.recorder(done)));
    h.engine.run();
    const double intra = 2e-6 + (M / 2) / kIntra, inter = 4e-6 + (M / 4) / kNic;
    for (int r = 0; r < 4; ++r) expect_time(done[r], 2 * intra + 2 * inter);
  }
}

// Completion time of one allreduce run alone.
Time allreduce_alone(const ClusterSpec& c, double bytes, Collectives::Algo algo) {
  Harness h(c);
  std::vector<Time> done;
  h.coll.launch_all(h.coll.allreduce(iota(c.gpu_count()), bytes, algo, 0, h.recorder(done)));
  h.engine.run();
  return latest(done);
}

TEST(Collectives, AutoAllreduceIsTheFastestAlone) {
  // 4 nodes x 4 GPUs, one NIC per node, 10 us per step (the Lina testbed). A ring pays 2(P-1) = 30 steps of
  // alpha: 8 KB takes ~0.3 ms by ring but two steps by the tree. Large messages are bandwidth-bound, and the
  // hierarchical algorithm moves the least over the shared NIC: 2 (N-1)/N * M instead of the ring's 2 (P-1)/P * M.
  ClusterSpec c = cluster(4, 4, Time::us(10));
  Harness h(c);
  EXPECT_EQ(h.coll.fastest_allreduce(iota(16), 8e3), Collectives::Algo::kTree);
  EXPECT_EQ(h.coll.fastest_allreduce(iota(16), 100e6), Collectives::Algo::kHierarchical);
  for (double bytes : {8e3, 1e6, 30e6, 100e6}) {
    Time best = std::min({allreduce_alone(c, bytes, Collectives::Algo::kRing),
                          allreduce_alone(c, bytes, Collectives::Algo::kTree),
                          allreduce_alone(c, bytes, Collectives::Algo::kHierarchical)});
    EXPECT_EQ(allreduce_alone(c, bytes, Collectives::Algo::kAuto), best) << bytes;
  }
  // The trials simulate rings pipelined (P flows, not O(P^2)); the choice still matches the fastest of the full
  // step-by-step runs on 32 nodes x 4 GPUs (128 ranks), from latency-bound to bandwidth-bound sizes.
  {
    ClusterSpec big = cluster(32, 4, Time::us(10));
    Harness hb(big);
    for (double bytes : {8e3, 1e6, 30e6, 300e6}) {
      const Time ring = allreduce_alone(big, bytes, Collectives::Algo::kRing),
                 tree = allreduce_alone(big, bytes, Collectives::Algo::kTree),
                 hier = allreduce_alone(big, bytes, Collectives::Algo::kHierarchical);
      const Time best = std::min({ring, tree, hier});
      Collectives::Algo chosen = hb.coll.fastest_allreduce(iota(128), bytes);
      EXPECT_EQ(allreduce_alone(big, bytes, chosen), best) << bytes;
    }
  }
  // A group that does not fill its nodes evenly cannot run hierarchical: auto chooses among the others.
  std::vector<int> uneven = {0, 1, 2, 4};
  EXPECT_NE(h.coll.fastest_allreduce(uneven, 100e6), Collectives::Algo::kHierarchical);
  // The trial runs on a scratch network: nothing is left running on the live one.
  EXPECT_EQ(h.coll.active(), 0u);
  EXPECT_EQ(h.engine.now(), Time::zero());
}

// ClusterSpec::ring_model = pipelined: each ring phase is one transfer per edge with its steps' overheads and
// latencies up front, and it ends for the whole ring when its slowest edge is done. Alone on the network the
// collective takes the step model's time (to rounding: each step rounds up to a picosecond), with one flow per edge
// and channel instead of one per step. The ranks of a ring finish together (in the step model those behind fast
// edges finish up to a step earlier).
TEST(Collectives, PipelinedRingsTakeTheStepModelsTimeAlone) {
  struct Case {
    int nodes, gpus;
    bool nic_per_node;
  };
  for (const Case& k : {Case{4, 1, false}, Case{2, 2, false}, Case{4, 4, true}, Case{3, 4, false}}) {
    ClusterSpec steps = cluster(k.nodes, k.gpus, Time::us(10));
    if (k.nic_per_node) steps.nic_per = ClusterSpec::NicPer::kNode;
    ClusterSpec pipelined = steps;
    pipelined.ring_model = ClusterSpec::RingModel::kPipelined;
    const int P = steps.gpu_count();
    enum Kind { kRing, kHierarchical, kReduceScatter, kAllGather };
    for (Kind kind : {kRing, kHierarchical, kReduceScatter, kAllGather}) {
      SCOPED_TRACE(::testing::Message() << k.nodes << "x" << k.gpus << " kind " << kind);
      auto run = [&](const ClusterSpec& c, std::vector<Time>& done) {
        Harness h(c);
        auto rec = h.recorder(done);
        const Collectives::CollId id = kind == kRing ? h.coll.allreduce(iota(P), 24e6, Collectives::Algo::kRing, 0, rec)
                                       : kind == kHierarchical
                                           ? h.coll.allreduce(iota(P), 24e6, Collectives::Algo::kHierarchical, 0, rec)
                                       : kind == kReduceScatter ? h.coll.reduce_scatter(iota(P), 24e6, 0, rec)
                                                                : h.coll.all_gather(iota(P), 24e6, 0, rec);
        h.coll.launch_all(id);
        h.engine.run();
        EXPECT_EQ(h.net.stats().bytes_completed, h.net.stats().bytes_started);
        return h.net.stats().flows;
      };
      std::vector<Time> a, b;
      const uint64_t flows_steps = run(steps, a), flows_pipelined = run(pipelined, b);
      EXPECT_NEAR(latest(a).seconds(), latest(b).seconds(), 1e-9);
      EXPECT_GT(latest(b).seconds(), 0);
      for (int r = 0; r < P; ++r) {
        EXPECT_LE(a[r].seconds(), b[r].seconds() + 1e-9) << "rank " << r;
        // Rings of the last phase: the whole group, or (hierarchical all-gather) each node.
        const int peer = kind == kHierarchical ? r / k.gpus * k.gpus : 0;
        EXPECT_EQ(b[r], b[static_cast<size_t>(peer)]) << "rank " << r;
      }
      // A ring's steps are 2(P-1) or P-1 per phase; hierarchical has 2(G-1) intra and 2(N-1) inter steps in 3 phases.
      if (kind != kHierarchical) {
        const uint64_t per_step = flows_pipelined;  // one flow per rank and channel
        EXPECT_EQ(flows_steps, per_step * static_cast<uint64_t>(kind == kRing ? 2 * (P - 1) : P - 1));
      } else if (k.gpus > 1 && k.nodes > 1) {
        EXPECT_EQ(flows_pipelined, 3u * static_cast<uint64_t>(P));
      }
    }
  }
}

// Random groups (any GPUs of any cluster shape, several nodes or one, one NIC per GPU or per node), sizes and ring
// algorithms: alone, the pipelined model ends when the step model does; run together, every collective of either
// model completes and every byte is delivered.
TEST(Collectives, PipelinedRingsOnRandomGroups) {
  std::mt19937_64 rng(7);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 60; ++trial) {
    ClusterSpec steps = cluster(pick(1, 5), pick(1, 4), Time::us(pick(0, 10)));
    if (pick(0, 1)) steps.nic_per = ClusterSpec::NicPer::kNode;
    ClusterSpec pipelined = steps;
    pipelined.ring_model = ClusterSpec::RingModel::kPipelined;
    std::vector<int> gpus = iota(steps.gpu_count());
    std::shuffle(gpus.begin(), gpus.end(), rng);
    std::vector<std::vector<int>> groups(3);
    std::vector<int> kinds(3);
    for (int c = 0; c < 3; ++c) {
      const int n = pick(1, steps.gpu_count());
      groups[static_cast<size_t>(c)].assign(gpus.begin(), gpus.begin() + n);
      std::shuffle(gpus.begin(), gpus.end(), rng);
      kinds[static_cast<size_t>(c)] = pick(0, 3);
    }
    const double bytes = pick(1, 64) * 1e6;
    SCOPED_TRACE(::testing::Message() << "trial " << trial << ": " << steps.nodes << "x" << steps.gpus_per_node);
    // Starts collective c (hierarchical falls back to ring on a group that does not fill its nodes evenly).
    auto start = [&](Harness& h, int c, std::vector<Time>& done) {
      const auto& g = groups[static_cast<size_t>(c)];
      auto rec = h.recorder(done);
      switch (kinds[static_cast<size_t>(c)]) {
        case 0:
          return h.coll.allreduce(g, bytes, Collectives::Algo::kRing, 0, rec);
        case 1:
          try {
            return h.coll.allreduce(g, bytes, Collectives::Algo::kHierarchical, 0, rec);
          } catch (const std::invalid_argument&) {
            return h.coll.allreduce(g, bytes, Collectives::Algo::kRing, 0, rec);
          }
        case 2:
          return h.coll.reduce_scatter(g, bytes, 0, rec);
        default:
          return h.coll.all_gather(g, bytes, 0, rec);
      }
    };
    auto finish = [](const std::vector<Time>& done, const std::vector<int>& g) {
      Time t = Time::zero();
      for (int gpu : g) t = std::max(t, done[static_cast<size_t>(gpu)]);
      return t;
    };
    for (int c = 0; c < 3; ++c) {  // alone
      std::vector<Time> a, b;
      Harness hs(steps), hp(pipelined);
      hs.coll.launch_all(start(hs, c, a));
      hp.coll.launch_all(start(hp, c, b));
      hs.engine.run();
      hp.engine.run();
      const auto& g = groups[static_cast<size_t>(c)];
      EXPECT_NEAR(finish(a, g).seconds(), finish(b, g).seconds(), 1e-9) << "collective " << c;
      EXPECT_NE(finish(b, g), Time::max());
      EXPECT_EQ(hp.coll.active(), 0u);
      if (kinds[static_cast<size_t>(c)] != 1) {  // one ring: its ranks finish together
        for (int gpu : g) EXPECT_EQ(b[static_cast<size_t>(gpu)], finish(b, g)) << "GPU " << gpu;
      }
    }
    for (const ClusterSpec* spec : {&steps, &pipelined}) {  // together
      Harness h(*spec);
      std::vector<std::vector<Time>> done(3);
      for (int c = 0; c < 3; ++c) h.coll.launch_all(start(h, c, done[static_cast<size_t>(c)]));
      h.engine.run();
      for (int c = 0; c < 3; ++c) EXPECT_NE(finish(done[c], groups[c]), Time::max()) << "collective " << c;
      EXPECT_EQ(h.coll.active(), 0u);
      EXPECT_NEAR(h.net.stats().bytes_completed, h.net.stats().bytes_started, 1e-6 * h.net.stats().bytes_started);
    }
  }
}

// Under contention the pipelined model drops the lockstep: a ring edge no longer waits at every step for the
// slowest one. It moves the same bytes, is never faster than alone, and here (a hierarchical allreduce beside an
// all-to-all on 4 DGX-like nodes) it is at most as slow as the step model.
TEST(Collectives, PipelinedRingsUnderContention) {
  ClusterSpec steps = cluster(4, 8, Time::us(10));
  ClusterSpec pipelined = steps;
  pipelined.ring_model = ClusterSpec::RingModel::kPipelined;
  auto run = [&](const ClusterSpec& c) {
    Harness h(c);
    std::vector<Time> ar, a2a;
    h.coll.launch_all(h.coll.allreduce(iota(32), 256e6, Collectives::Algo::kHierarchical, 0, h.recorder(ar)));
    h.coll.launch_all(h.coll.alltoall(iota(32), 64e6, Collectives::Algo::kHierarchical, 0, h.recorder(a2a)));
    h.engine.run();
    EXPECT_EQ(h.net.stats().bytes_completed, h.net.stats().bytes_started);
    return std::make_pair(latest(ar), latest(a2a));
  };
  const auto [ar_steps, a2a_steps] = run(steps);
  const auto [ar_pipe, a2a_pipe] = run(pipelined);
  EXPECT_GE(ar_pipe, allreduce_alone(pipelined, 256e6, Collectives::Algo::kHierarchical));
  EXPECT_LE(ar_pipe, ar_steps);
  // Both all-to-alls complete (the recorder starts every rank at Time::max()).
  EXPECT_NE(a2a_pipe, Time::max());
  EXPECT_NE(a2a_steps, Time::max());
}

TEST(Collectives, RejectsBadGroups) {
  Harness h(cluster(2, 4, Time::zero()));
  EXPECT_THROW(h.coll.alltoall({0, 0}, 1, Collectives::Algo::kDirect, 0, nullptr), std::invalid_argument);
  EXPECT_THROW(h.coll.alltoall({0, 9}, 1, Collectives::Algo::kDirect, 0, nullptr), std::invalid_argument);
  EXPECT_THROW(h.coll.alltoall({0, 1, 4}, 1, Collectives::Algo::kHierarchical, 0, nullptr), std::invalid_argument);
  EXPECT_THROW(h.coll.alltoallv({0, 1}, {1, 2, 3}, Collectives::Algo::kDirect, 0, nullptr), std::invalid_argument);
  EXPECT_THROW(h.coll.allreduce({0, 1}, 1, Collectives::Algo::kDirect, 0, nullptr), std::invalid_argument);
}

}  // namespace
}  // namespace lina::sim

#include <gtest/gtest.h>

#include <set>

#include "sched/error.hpp"
#include "sim/topology.hpp"

namespace lina::sim {
namespace {

// The shape of issue 3: nodes x 8 GPUs, NVSwitch 300 GB/s 1 us, one 100 Gb/s 2 us NIC per GPU, non-blocking switch.
ClusterSpec issue_cluster(int nodes) {
  ClusterSpec c;
  c.name = "test";
  c.nodes = nodes;
  c.gpus_per_node = 8;
  c.intra = {300e9, Time::us(1)};
  c.nic = {100e9 / 8, Time::us(2)};
  c.host_pcie = {24e9, Time::us(2)};
  return c;
}

TEST(Topology, IssueShapeRoutesAndLatencies) {
  Topology t(issue_cluster(8));
  EXPECT_EQ(t.gpu_count(), 64);
  // 64 GPUs x (2 intra + 2 NIC + 2 host) directed links.
  EXPECT_EQ(t.link_count(), 64u * 6);
  // Intra-node: GPU -> NVSwitch -> GPU, 1 us + 1 us.
  auto r = t.route(1, 2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(t.link_name(r[0]), "node0/gpu1->nvswitch");
  EXPECT_EQ(t.link_name(r[1]), "node0/nvswitch->gpu2");
  EXPECT_DOUBLE_EQ(t.link_capacity(r[0]), 300e9);
  EXPECT_EQ(t.route_latency(1, 2), Time::us(2));
  // Inter-node: GPU -> fabric -> GPU over the two NIC links, 2 us + 2 us; the switch adds nothing.
  r = t.route(3, 8 * 5 + 6);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(t.link_name(r[0]), "node0/gpu3->fabric");
  EXPECT_EQ(t.link_name(r[1]), "fabric->node5/gpu6");
  EXPECT_DOUBLE_EQ(t.link_capacity(r[1]), 12.5e9);
  EXPECT_EQ(t.route_latency(3, 46), Time::us(4));
  // Same GPU: no links, no latency.
  EXPECT_TRUE(t.route(7, 7).empty());
  EXPECT_EQ(t.route_latency(7, 7), Time::zero());
  // Cached: the same storage is returned.
  EXPECT_EQ(t.route(3, 46).data(), t.route(3, 46).data());
  // Host -> GPU over PCIe.
  auto h = t.host_route(9);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(t.link_name(h[0]), "node1/host->gpu1");
  EXPECT_DOUBLE_EQ(t.link_capacity(h[0]), 24e9);
  // The Boost graph has one edge per direction of each link.
  EXPECT_EQ(boost::num_edges(t.graph()), t.link_count());
  EXPECT_THROW(t.route(0, 64), std::out_of_range);
}

TEST(Topology, SharedNicPerNodeCrossesIntraLinks) {
  ClusterSpec c = issue_cluster(2);
  c.gpus_per_node = 4;
  c.nic_per = ClusterSpec::NicPer::kNode;
  c.intra_kind = ClusterSpec::IntraKind::kPcie;
  c.intra = {32e9, Time::us(1)};
  Topology t(c);
  auto r = t.route(1, 6);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(t.link_name(r[0]), "node0/gpu1->pcie");
  EXPECT_EQ(t.link_name(r[1]), "node0/nic->fabric");
  EXPECT_EQ(t.link_name(r[2]), "fabric->node1/nic");
  EXPECT_EQ(t.link_name(r[3]), "node1/pcie->gpu2");
  // 1 + 2 + 2 + 1 us.
  EXPECT_EQ(t.route_latency(1, 6), Time::us(6));
  // Every GPU of node 0 sends through the same NIC link.
  EXPECT_EQ(t.route(0, 5)[1], t.route(3, 7)[1]);
}

TEST(Topology, LeafSpineEcmpAndOversubscription) {
  ClusterSpec c = issue_cluster(16);
  c.fabric_kind = ClusterSpec::FabricKind::kLeafSpine;
  c.spines = 4;
  c.oversubscription = 2;
  c.fabric_latency = Time::ns(500);
  Topology t(c);
  auto r = t.route(0, 8 * 3 + 1);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(t.link_name(r[0]), "node0/gpu0->leaf0");
  int s = t.ecmp_spine(0, 25);
  EXPECT_EQ(t.link_name(r[1]), "leaf0->spine" + std::to_string(s));
  EXPECT_EQ(t.link_name(r[2]), "spine" + std::to_string(s) + "->leaf3");
  EXPECT_EQ(t.link_name(r[3]), "leaf3->node3/gpu1");
  // Up link: 8 NICs x 12.5 GB/s / (oversubscription 2 x 4 spines) = 12.5 GB/s.
  EXPECT_DOUBLE_EQ(t.link_capacity(r[1]), 8 * 12.5e9 / (2 * 4));
  // 2 us + 0.5 us + 0.5 us + 2 us.
  EXPECT_EQ(t.route_latency(0, 25), Time::ns(5000));
  // Deterministic, and every spine used by some pair.
  std::set<int> used;
  for (int a = 0; a < 8; ++a) {
    for (int b = 8; b < 128; ++b) used.insert(t.ecmp_spine(a, b));
  }
  EXPECT_EQ(used.size(), 4u);
  Topology t2(c);
  EXPECT_EQ(t2.ecmp_spine(5, 77), t.ecmp_spine(5, 77));
  // Intra-node traffic stays off the fabric.
  EXPECT_EQ(t.route(8, 9).size(), 2u);
}

TEST(Topology, RejectsNonPositiveBandwidth) {
  ClusterSpec c = issue_cluster(2);
  c.nic.bytes_per_s = 0;
  EXPECT_THROW(Topology{c}, InputError);
}

}  // namespace
}  // namespace lina::sim

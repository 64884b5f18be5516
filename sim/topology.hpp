// The cluster as a graph of full-duplex links, and the routes flows take through it (DESIGN.md 2.2).
//
// Vertices are GPUs, node switches (NVSwitch or PCIe switch), fabric switches (one non-blocking switch, or one leaf
// per node plus spines) and hosts; every full-duplex link is two directed edges, each with its own capacity
// (bytes/s) and latency. The graph is a Boost.Graph adjacency_list for inspection and tooling; the flow solver only
// sees the flat per-link arrays (capacity, latency, name) indexed by LinkId, which is also the edge property.
//
// Route shapes follow the comments of ClusterSpec:
//   same GPU:            no links (a local copy, no network)
//   same node:           gpu -> node switch -> gpu                         (two intra links)
//   nic per gpu:         gpu -> fabric ... fabric -> gpu                   (two NIC links)
//   nic per node:        gpu -> node switch -> fabric ... fabric -> node switch -> gpu  (intra, NIC, NIC, intra)
//   fabric switch:       "..." is nothing: the switch is non-blocking and adds no latency
//   fabric leaf_spine:   "..." is leaf -> spine -> leaf; the NICs are the leaf's down links, the spine is chosen by a
//                        deterministic hash of (src, dst) (ECMP), and each up/down link between a leaf and a spine
//                        has nic_total / (oversubscription * spines) bytes/s and fabric_latency.
//   host -> gpu:         one host_pcie link per GPU (expert weights loaded from host memory)
// A route is computed on first use and cached; the returned spans stay valid for the topology's lifetime.
#pragma once

#include <boost/graph/adjacency_list.hpp>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sched/time.hpp"

namespace lina::sim {

using LinkId = uint32_t;

class Topology {
 public:
  enum class VertexKind { kGpu, kNodeSwitch, kFabricSwitch, kLeaf, kSpine, kHost };
  struct VertexProps {
    VertexKind kind = VertexKind::kGpu;
    int node = -1;   // node of a GPU, node switch, leaf or host; -1 for fabric switch and spines
    int index = -1;  // global GPU id, spine index, ...
  };
  struct EdgeProps {
    LinkId link = 0;
  };
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, VertexProps, EdgeProps>;

  // Throws InputError when a bandwidth is not positive or the shape is inconsistent.
  explicit Topology(const ClusterSpec& spec);
  ~Topology();
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  const ClusterSpec& spec() const { return spec_; }
  int gpu_count() const { return gpus_; }

  // Links from src_gpu to dst_gpu, in order. Empty when src == dst. Cached: the first call computes it. The cache is
  // mutable state behind a const interface, so a Topology must not be shared between threads.
  std::span<const LinkId> route(int src_gpu, int dst_gpu) const {
    // The cached case inline: collectives look routes up for every flow.
    if (src_gpu < 0 || src_gpu >= gpus_ || dst_gpu < 0 || dst_gpu >= gpus_) [[unlikely]]
      check_gpu(src_gpu < 0 || src_gpu >= gpus_ ? src_gpu : dst_gpu);
    if (const auto& row = rows_[static_cast<size_t>(src_gpu)]) {
      const RouteRef& r = row[dst_gpu];
      if (r.size != UINT32_MAX) return {r.data, r.size};
    }
    return compute_and_cache_route(src_gpu, dst_gpu);
  }
  // host memory of gpu's node -> gpu, and back.
  std::span<const LinkId> host_route(int gpu) const;
  std::span<const LinkId> to_host_route(int gpu) const;
  // Sum of the latencies of route(src, dst).
  Time route_latency(int src_gpu, int dst_gpu) const;
  Time latency_of(std::span<const LinkId> route) const;

  size_t link_count() const { return capacity_.size(); }
  double link_capacity(LinkId l) const { return capacity_[l]; }
  Time link_latency(LinkId l) const { return latency_[l]; }
  const std::string& link_name(LinkId l) const { return names_[l]; }
  const std::vector<double>& capacities() const { return capacity_; }

  // The spine ECMP picks for an inter-node (src, dst) pair on a leaf-spine fabric.
  int ecmp_spine(int src_gpu, int dst_gpu) const;

  const Graph& graph() const { return graph_; }

 private:
  using Vertex = Graph::vertex_descriptor;
  LinkId add_link(Vertex from, Vertex to, double bytes_per_s, Time latency, std::string name);
  void compute_route(int src, int dst, std::vector<LinkId>& out) const;
  std::span<const LinkId> store(const std::vector<LinkId>& links) const;
  void check_gpu(int gpu) const;
  std::span<const LinkId> compute_and_cache_route(int src, int dst) const;

  ClusterSpec spec_;
  int gpus_ = 0;
  Graph graph_;
  std::vector<Vertex> gpu_v_, node_switch_v_, leaf_v_, spine_v_, host_v_;
  Vertex fabric_v_ = 0;
  std::vector<double> capacity_;
  std::vector<Time> latency_;
  std::vector<std::string> names_;
  // Link ids by role, for O(1) route construction without searching the graph.
  std::vector<LinkId> gpu_up_, gpu_down_;     // gpu <-> node switch
  std::vector<LinkId> nic_up_, nic_down_;     // per GPU or per node, to/from the fabric (switch or leaf)
  std::vector<LinkId> leaf_up_, spine_down_;  // [leaf * spines + spine]
  std::vector<LinkId> host_down_, host_up_;   // host -> gpu, gpu -> host

  // Route cache: one row of offsets per source GPU (allocated on first use), into a pool of stable chunks.
  struct RouteRef {
    const LinkId* data = nullptr;
    uint32_t size = UINT32_MAX;  // UINT32_MAX: not computed yet
  };
  mutable std::vector<std::unique_ptr<RouteRef[]>> rows_;
  mutable std::vector<std::unique_ptr<LinkId[]>> chunks_;
  mutable size_t chunk_used_ = 0;
  mutable std::vector<LinkId> scratch_;
  std::vector<std::vector<LinkId>> host_routes_, to_host_routes_;
};

}  // namespace lina::sim

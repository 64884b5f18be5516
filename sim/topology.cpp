#include "sim/topology.hpp"

#include <fmt/format.h>

#include <cassert>
#include <stdexcept>

#include "sched/error.hpp"

namespace lina::sim {
namespace {

constexpr size_t kChunkLinks = 1 << 16;

void check_link(const LinkSpec& l, const ClusterSpec& spec, const char* what) {
  if (!(l.bytes_per_s > 0)) {
    throw InputError(
        fmt::format("cluster {}: {}: expected a positive bandwidth, got {} bytes/s", spec.name, what, l.bytes_per_s));
  }
  if (l.latency < Time::zero()) {
    throw InputError(fmt::format("cluster {}: {}: expected a non-negative latency", spec.name, what));
  }
}

// splitmix64: a fixed, platform-independent hash, so ECMP choices are identical on every machine.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

Topology::~Topology() = default;

Topology::Topology(const ClusterSpec& spec) : spec_(spec) {
  if (spec.nodes < 1 || spec.gpus_per_node < 1) {
    throw InputError(fmt::format("cluster {}: expected at least one node and one GPU per node", spec.name));
  }
  check_link(spec.intra, spec, "intra_node");
  if (spec.nodes > 1) check_link(spec.nic, spec, "nic");
  const bool leaf_spine = spec.fabric_kind == ClusterSpec::FabricKind::kLeafSpine;
  if (leaf_spine && spec.nodes > 1) {
    if (spec.spines < 1) throw InputError(fmt::format("cluster {}: fabric.spines: expected >= 1", spec.name));
    if (!(spec.oversubscription > 0)) {
      throw InputError(fmt::format("cluster {}: fabric.oversubscription: expected > 0", spec.name));
    }
  }
  const bool has_host = spec.host_pcie.bytes_per_s > 0;
  gpus_ = spec.gpu_count();
  const int G = spec.gpus_per_node;
  const char* sw = spec.intra_kind == ClusterSpec::IntraKind::kNvSwitch ? "nvswitch" : "pcie";

  for (int g = 0; g < gpus_; ++g) {
    gpu_v_.push_back(boost::add_vertex(VertexProps{VertexKind::kGpu, g / G, g}, graph_));
  }
  for (int n = 0; n < spec.nodes; ++n) {
    node_switch_v_.push_back(boost::add_vertex(VertexProps{VertexKind::kNodeSwitch, n, n}, graph_));
  }
  if (has_host) {
    for (int n = 0; n < spec.nodes; ++n) {
      host_v_.push_back(boost::add_vertex(VertexProps{VertexKind::kHost, n, n}, graph_));
    }
  }
  if (leaf_spine) {
    for (int n = 0; n < spec.nodes; ++n)
      leaf_v_.push_back(boost::add_vertex(VertexProps{VertexKind::kLeaf, n, n}, graph_));
    for (int s = 0; s < spec.spines; ++s) {
      spine_v_.push_back(boost::add_vertex(VertexProps{VertexKind::kSpine, -1, s}, graph_));
    }
  } else {
    fabric_v_ = boost::add_vertex(VertexProps{VertexKind::kFabricSwitch, -1, 0}, graph_);
  }
  auto fabric_of_node = [&](int n) { return leaf_spine ? leaf_v_[n] : fabric_v_; };
  auto fabric_label = [&](int n) { return leaf_spine ? fmt::format("leaf{}", n) : std::string("fabric"); };

  // Intra-node: one full-duplex link per GPU to its node switch.
  gpu_up_.resize(gpus_);
  gpu_down_.resize(gpus_);
  for (int g = 0; g < gpus_; ++g) {
    int n = g / G, l = g % G;
    gpu_up_[g] = add_link(gpu_v_[g], node_switch_v_[n], spec.intra.bytes_per_s, spec.intra.latency,
                          fmt::format("node{}/gpu{}->{}", n, l, sw));
    gpu_down_[g] = add_link(node_switch_v_[n], gpu_v_[g], spec.intra.bytes_per_s, spec.intra.latency,
                            fmt::format("node{}/{}->gpu{}", n, sw, l));
  }
  // NICs: per GPU (GPU <-> fabric) or per node (node switch <-> fabric).
  if (spec.nodes > 1) {
    if (spec.nic_per == ClusterSpec::NicPer::kGpu) {
      nic_up_.resize(gpus_);
      nic_down_.resize(gpus_);
      for (int g = 0; g < gpus_; ++g) {
        int n = g / G, l = g % G;
        nic_up_[g] = add_link(gpu_v_[g], fabric_of_node(n), spec.nic.bytes_per_s, spec.nic.latency,
                              fmt::format("node{}/gpu{}->{}", n, l, fabric_label(n)));
        nic_down_[g] = add_link(fabric_of_node(n), gpu_v_[g], spec.nic.bytes_per_s, spec.nic.latency,
                                fmt::format("{}->node{}/gpu{}", fabric_label(n), n, l));
      }
    } else {
      nic_up_.resize(spec.nodes);
      nic_down_.resize(spec.nodes);
      for (int n = 0; n < spec.nodes; ++n) {
        nic_up_[n] = add_link(node_switch_v_[n], fabric_of_node(n), spec.nic.bytes_per_s, spec.nic.latency,
                              fmt::format("node{}/nic->{}", n, fabric_label(n)));
        nic_down_[n] = add_link(fabric_of_node(n), node_switch_v_[n], spec.nic.bytes_per_s, spec.nic.latency,
                                fmt::format("{}->node{}/nic", fabric_label(n), n));
      }
    }
    if (leaf_spine) {
      const double nic_total =
          spec.nic.bytes_per_s * (spec.nic_per == ClusterSpec::NicPer::kGpu ? static_cast<double>(G) : 1.0);
      const double up = nic_total / (spec.oversubscription * spec.spines);
      leaf_up_.resize(static_cast<size_t>(spec.nodes) * spec.spines);
      spine_down_.resize(leaf_up_.size());
      for (int n = 0; n < spec.nodes; ++n) {
        for (int s = 0; s < spec.spines; ++s) {
          size_t k = static_cast<size_t>(n) * spec.spines + s;
          leaf_up_[k] =
              add_link(leaf_v_[n], spine_v_[s], up, spec.fabric_latency, fmt::format("leaf{}->spine{}", n, s));
          spine_down_[k] =
              add_link(spine_v_[s], leaf_v_[n], up, spec.fabric_latency, fmt::format("spine{}->leaf{}", s, n));
        }
      }
    }
  }
  // Host <-> GPU PCIe.
  if (has_host) {
    host_down_.resize(gpus_);
    host_up_.resize(gpus_);
    host_routes_.resize(gpus_);
    to_host_routes_.resize(gpus_);
    for (int g = 0; g < gpus_; ++g) {
      int n = g / G, l = g % G;
      host_down_[g] = add_link(host_v_[n], gpu_v_[g], spec.host_pcie.bytes_per_s, spec.host_pcie.latency,
                               fmt::format("node{}/host->gpu{}", n, l));
      host_up_[g] = add_link(gpu_v_[g], host_v_[n], spec.host_pcie.bytes_per_s, spec.host_pcie.latency,
                             fmt::format("node{}/gpu{}->host", n, l));
      host_routes_[g] = {host_down_[g]};
      to_host_routes_[g] = {host_up_[g]};
    }
  }
  rows_.resize(gpus_);
}

LinkId Topology::add_link(Vertex from, Vertex to, double bytes_per_s, Time latency, std::string name) {
  LinkId id = static_cast<LinkId>(capacity_.size());
  boost::add_edge(from, to, EdgeProps{id}, graph_);
  capacity_.push_back(bytes_per_s);
  latency_.push_back(latency);
  names_.push_back(std::move(name));
  return id;
}

int Topology::ecmp_spine(int src, int dst) const {
  if (spec_.fabric_kind != ClusterSpec::FabricKind::kLeafSpine) return -1;
  uint64_t h = mix((static_cast<uint64_t>(static_cast<uint32_t>(src)) << 32) | static_cast<uint32_t>(dst));
  return static_cast<int>(h % static_cast<uint64_t>(spec_.spines));
}

void Topology::check_gpu(int gpu) const {
  if (gpu < 0 || gpu >= gpus_) {
    throw std::out_of_range(fmt::format("GPU {} outside the cluster (0..{})", gpu, gpus_ - 1));
  }
}

void Topology::compute_route(int src, int dst, std::vector<LinkId>& out) const {
  out.clear();
  if (src == dst) return;
  const int G = spec_.gpus_per_node;
  const int ns = src / G, nd = dst / G;
  if (ns == nd) {
    out.push_back(gpu_up_[src]);
    out.push_back(gpu_down_[dst]);
    return;
  }
  const bool per_gpu = spec_.nic_per == ClusterSpec::NicPer::kGpu;
  if (per_gpu) {
    out.push_back(nic_up_[src]);
  } else {
    out.push_back(gpu_up_[src]);
    out.push_back(nic_up_[ns]);
  }
  if (spec_.fabric_kind == ClusterSpec::FabricKind::kLeafSpine) {
    int s = ecmp_spine(src, dst);
    out.push_back(leaf_up_[static_cast<size_t>(ns) * spec_.spines + s]);
    out.push_back(spine_down_[static_cast<size_t>(nd) * spec_.spines + s]);
  }
  if (per_gpu) {
    out.push_back(nic_down_[dst]);
  } else {
    out.push_back(nic_down_[nd]);
    out.push_back(gpu_down_[dst]);
  }
}

std::span<const LinkId> Topology::store(const std::vector<LinkId>& links) const {
  if (links.empty()) return {};
  if (chunks_.empty() || chunk_used_ + links.size() > kChunkLinks) {
    chunks_.push_back(std::make_unique<LinkId[]>(kChunkLinks));
    chunk_used_ = 0;
  }
  LinkId* p = chunks_.back().get() + chunk_used_;
  std::copy(links.begin(), links.end(), p);
  chunk_used_ += links.size();
  return {p, links.size()};
}

std::span<const LinkId> Topology::compute_and_cache_route(int src, int dst) const {
  auto& row = rows_[static_cast<size_t>(src)];
  if (!row) row = std::make_unique<RouteRef[]>(gpus_);
  RouteRef& r = row[dst];
  if (r.size == UINT32_MAX) {
    compute_route(src, dst, scratch_);
    auto s = store(scratch_);
    r.data = s.data();
    r.size = static_cast<uint32_t>(s.size());
  }
  return {r.data, r.size};
}

std::span<const LinkId> Topology::host_route(int gpu) const {
  check_gpu(gpu);
  if (host_routes_.empty()) throw InputError(fmt::format("cluster {}: no host_pcie link configured", spec_.name));
  return host_routes_[gpu];
}

std::span<const LinkId> Topology::to_host_route(int gpu) const {
  check_gpu(gpu);
  if (to_host_routes_.empty()) throw InputError(fmt::format("cluster {}: no host_pcie link configured", spec_.name));
  return to_host_routes_[gpu];
}

Time Topology::latency_of(std::span<const LinkId> r) const {
  Time t = Time::zero();
  for (LinkId l : r) t += latency_[l];
  return t;
}

Time Topology::route_latency(int src, int dst) const { return latency_of(route(src, dst)); }

}  // namespace lina::sim

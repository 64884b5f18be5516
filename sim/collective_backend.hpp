// Runs a Plan's collectives on the network for the executor, through sim::Collectives (DESIGN.md 2.4). The
// executor already waits for every participant to launch (NCCL rendezvous), so each collective is launched on all
// its ranks at once here. A host load (one rank, host memory to GPU over PCIe) is a single flow on the host link.
#pragma once

#include <functional>

#include "sched/cluster_spec.hpp"
#include "sim/collectives.hpp"
#include "sim/engine.hpp"
#include "sim/executor.hpp"
#include "sim/network.hpp"
#include "sim/topology.hpp"

namespace lina::sim {

class NetworkCollectives : public CollectiveBackend {
 public:
  NetworkCollectives(Engine& engine, Network& network, const Topology& topology, const ClusterSpec& cluster)
      : network_(network), collectives_(engine, network, topology, cluster), gpus_(cluster.gpu_count()) {}
  void start(const Collective& c, std::function<void(int position)> on_rank_done) override;

 private:
  Network& network_;
  Collectives collectives_;
  int gpus_;
};

}  // namespace lina::sim

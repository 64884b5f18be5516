// Runs a Plan's collectives on the network for the executor, through sim::Collectives (DESIGN.md 2.4). The
// executor already waits for every participant to launch (NCCL rendezvous), so each collective is launched on all
// its ranks at once here. A host load (one rank, host memory to GPU over PCIe) is a single flow on the host link.
#pragma once

#include <functional>
#include <memory>

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
  // The training `ideal` bound: allreduce, reduce-scatter and all-gather run on a network of their own (a copy of
  // the same topology), so all-to-all and gradient synchronisation never contend, yet each still shares its own
  // network with collectives of its kind.
  NetworkCollectives(Engine& engine, Network& network, Network& gradient_network, const Topology& topology,
                     const ClusterSpec& cluster)
      : NetworkCollectives(engine, network, topology, cluster) {
    gradient_collectives_ = std::make_unique<Collectives>(engine, gradient_network, topology, cluster);
  }
  void start(const Collective& c, std::function<void(int position)> on_rank_done) override;

 private:
  Network& network_;
  Collectives collectives_;
  std::unique_ptr<Collectives> gradient_collectives_;
  int gpus_;
};

}  // namespace lina::sim

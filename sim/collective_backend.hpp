// Runs a Plan's collectives as flows on the network (DESIGN.md 2.4), for the executor.
//
// All-to-all: direct (every pair at once, as NCCL's grouped send/recv; a rank is done when all its sends and
// receives are) or hierarchical (intra-node exchange to the GPU of the destination's local rank, then inter-node
// exchange among GPUs of equal local rank, as in DeepSpeed/Tutel; the phases are synchronised). Allreduce and
// reduce-scatter / all-gather: ring, 2(P-1) (or P-1) synchronised steps of M/P bytes. Each step or phase pays the
// cluster's collective_alpha (protocol overhead) before its flows start.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sim/engine.hpp"
#include "sim/executor.hpp"
#include "sim/network.hpp"
#include "sim/topology.hpp"

namespace lina::sim {

class NetworkCollectives : public CollectiveBackend {
 public:
  NetworkCollectives(Engine& engine, Network& network, const Topology& topology, const ClusterSpec& cluster)
      : engine_(engine), network_(network), cluster_(cluster) {
    (void)topology;
  }
  void start(const Collective& c, std::function<void(int position)> on_rank_done) override;

 private:
  struct Run;
  void run_phase(std::shared_ptr<Run> run);

  Engine& engine_;
  Network& network_;
  const ClusterSpec& cluster_;
};

}  // namespace lina::sim

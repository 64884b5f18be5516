// Collectives as flows in steps (DESIGN.md 2.4).
//
// A collective instance is created over a group of ranks (GPU ids) and started by each rank calling launch(): data
// only moves once every rank has launched it (NCCL rendezvous, so a late rank delays all). Each rank then runs a
// sequence of steps; a step waits the per-step protocol overhead alpha (ClusterSpec::collective_alpha), starts its
// sends as network flows, and completes when its sends are delivered and the data it expects in that step has
// arrived (data for a later step may arrive early and is counted). A rank's callback runs when its last step
// completes, so ranks of an all-to-all-v finish at different times. Steps whose rank neither sends nor receives are
// skipped without alpha. Sub-collectives of hierarchical algorithms start with a rendezvous of their sub-group.
//
// Algorithms (P ranks, M bytes as in nccl-tests: the send buffer of one rank; for all-gather the gathered output):
//   all-to-all(-v) direct:        one step, every pair at once (NCCL grouped send/recv). Oracle without contention:
//                                 alpha + L + (P-1)/P * M / B_inj.
//   all-to-all(-v) hierarchical:  step 1: intra-node exchange that gathers, at GPU (node n, local l), everything its
//                                 node sends to local rank l of any node; step 2 (rendezvous of the GPUs of equal
//                                 local rank): inter-node exchange among them (DeepSpeed/Tutel). Needs every node of
//                                 the group to hold the same number of ranks.
//   allreduce ring:               2(P-1) steps of M/P to the ring successor: 2(P-1) (alpha + L + (M/P)/B).
//   allreduce tree:               NCCL's double binary tree, pipelined: M/2 per tree; step 1 every rank sends its
//                                 half to its parent in each tree, step 2 every rank forwards to its children. GPUs
//                                 of a node form a chain; the node heads form two complementary binary trees over
//                                 nodes (mirrored order), so a node is a leaf in at most one.
//   allreduce hierarchical:       intra-node ring reduce-scatter (M/G chunks), inter-node ring allreduce of M/G among
//                                 GPUs of equal local rank, intra-node ring all-gather.
//   reduce-scatter, all-gather:   ring, P-1 steps of M/P.
//   allreduce auto:               what NCCL's tuner does: the algorithm (ring, tree, hierarchical where the group
//                                 fills its nodes evenly) that finishes first when run alone on the idle network.
//                                 Small messages go to the tree (2 steps of latency instead of 2(P-1)), large ones
//                                 to ring or hierarchical (bandwidth). Each (group, size) is tried once and
//                                 remembered, so a training step's many gradient allreduces cost one trial each.
//                                 The trials simulate rings pipelined (below): the same time alone, in P flows.
// Ring model (ClusterSpec::ring_model): `steps` simulates every step of a ring; `pipelined` simulates each phase of
// consecutive ring steps (a ring allreduce, reduce-scatter or all-gather; the three rings of hierarchical allreduce)
// as one transfer per edge of all their bytes, paying the steps' alphas and latencies up front, and ending for every
// rank of the ring when its slowest edge is done (docs/network.md).
// Sharing (ClusterSpec::sharing): with `collective` (the default) every flow of one collective step gets the weight
// 1 / (number of flows of that step on the step's busiest link), so on a contended link each collective takes one
// share whatever its number of peers, and its own flows still share equally among themselves (a collective alone
// runs exactly as under plain max-min). This is what makes an all-to-all under a concurrent allreduce about 2x
// slower, as the Lina paper measures (section 2.2, Figure 3: 1.83x at the median); with `flow` a hierarchical
// all-to-all's 12 flows per NIC would take 12/13 of it from a 1-channel ring.
// Ring and tree run one channel per GPU of a node when each GPU has its own NIC and the group spans several nodes
// evenly (NCCL opens a channel per NIC): channel c enters and leaves each node through different GPUs and carries
// 1/C of the data, so every NIC is used. A rank's step waits for all its channels.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sched/cluster_spec.hpp"
#include "sim/engine.hpp"
#include "sim/network.hpp"
#include "sim/topology.hpp"

namespace lina::sim {

class Collectives {
 public:
  enum class Algo { kDirect, kHierarchical, kRing, kTree, kAuto };
  enum class Op { kAllToAll, kAllReduce, kReduceScatter, kAllGather };
  using CollId = uint32_t;
  using RankDone = std::function<void(int gpu)>;

  Collectives(Engine& engine, Network& network, const Topology& topology, const ClusterSpec& spec);
  ~Collectives();
  Collectives(const Collectives&) = delete;
  Collectives& operator=(const Collectives&) = delete;

  // bytes[i * P + j]: bytes from ranks[i] to ranks[j] (the diagonal is a local copy, no network). Algo kDirect or
  // kHierarchical. std::invalid_argument on a malformed group or matrix.
  CollId alltoallv(std::vector<int> ranks, std::vector<double> bytes, Algo algo, int priority_class, RankDone on_done,
                   double weight = 1.0);
  // Uniform: each rank's send buffer is `bytes`, bytes / P to every rank.
  CollId alltoall(std::vector<int> ranks, double bytes, Algo algo, int priority_class, RankDone on_done,
                  double weight = 1.0);
  CollId allreduce(std::vector<int> ranks, double bytes, Algo algo, int priority_class, RankDone on_done,
                   double weight = 1.0);
  // The algorithm kAuto resolves to for this group and size (see the file comment).
  Algo fastest_allreduce(const std::vector<int>& ranks, double bytes);
  CollId reduce_scatter(std::vector<int> ranks, double bytes, int priority_class, RankDone on_done,
                        double weight = 1.0);
  CollId all_gather(std::vector<int> ranks, double bytes, int priority_class, RankDone on_done, double weight = 1.0);

  // Rank `gpu` of the collective launches it now. Launching twice, or a GPU outside the group, is a logic error.
  void launch(CollId id, int gpu);
  void launch_all(CollId id);

  Time alpha() const { return alpha_; }
  size_t active() const { return active_; }

  static const char* name(Algo a);
  static const char* name(Op o);

  struct Instance;  // one collective in flight (defined in collectives.cpp)

 private:
  CollId add(std::unique_ptr<Instance> inst);
  // A blank instance, recycled when one is spare; release() ends a finished collective: frees its id, counts it out of
  // active() and keeps the instance for reuse.
  std::unique_ptr<Instance> acquire();
  void release(CollId id);
  int channels(const Instance& in) const;
  void start_step(Instance& in, int r);
  void issue(Instance& in, int r);
  double step_weight(Instance& in, int s);
  void check_step(Instance& in, int r);
  void on_flow(Instance& in, int r, int d, int s);
  void issue_after_alpha(Instance& in, int r);

  // Ranks waiting for their step's alpha. Ranks that start a step at the same instant (a rendezvous releases a
  // whole group) share one engine event while no other event was scheduled between them, so the order of work is
  // the one separate events would give: an all-to-all step costs one event instead of one per rank.
  struct AlphaWait {
    Engine::EventId event;
    Time at;
    std::vector<std::pair<Instance*, int>> ranks;
  };
  std::vector<AlphaWait> alpha_waits_;
  std::vector<uint32_t> free_alpha_waits_;
  uint32_t open_alpha_wait_ = UINT32_MAX;  // the wait that can still take ranks, if its event is the engine's last

  Engine& engine_;
  Network& net_;
  const Topology& topo_;
  Time alpha_;
  int gpus_per_node_;
  bool nic_per_gpu_;
  bool share_per_collective_;
  bool pipelined_rings_;
  // step_weight's scratch: flows per link, the links it touched.
  std::vector<int> link_load_;
  std::vector<LinkId> touched_links_;
  std::vector<std::unique_ptr<Instance>> instances_;
  std::vector<CollId> free_ids_;
  static constexpr size_t kSpareInstances = 64;
  std::vector<std::unique_ptr<Instance>> spare_;
  std::map<std::pair<std::vector<int>, double>, Algo> tuned_;  // fastest_allreduce's memory
  size_t active_ = 0;
};

}  // namespace lina::sim

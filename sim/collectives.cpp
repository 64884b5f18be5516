#include "sim/collectives.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>

#include "sim/slots.hpp"

namespace lina::sim {

struct Collectives::Instance {
  Collectives* owner = nullptr;  // lets callbacks capture only the instance (16 bytes: no allocation per flow)
  CollId id = 0;
  Op op = Op::kAllToAll;
  Algo algo = Algo::kDirect;
  int P = 0;
  std::vector<int> ranks;     // rank index -> GPU
  std::vector<int> index_of;  // GPU -> rank index, -1 outside the group
  RankDone on_done;
  int cls = 0;
  double weight = 1;
  double M = 0;                // ring/tree ops: bytes per rank (nccl-tests convention)
  std::vector<double> matrix;  // all-to-all(-v): P x P
  // Node structure (hierarchical algorithms): G ranks on each of N nodes.
  int G = 1, N = 1;
  int C = 1;                                    // channels of ring and tree algorithms
  std::vector<int> node_idx, local_idx, by_nl;  // by_nl[n * G + l] -> rank index
  int nsteps = 0;
  // Pipelined rings (ClusterSpec::ring_model): step s stands for the algorithm's steps [first, first + len) of
  // phases[s], which all send the same bytes to the same neighbours. Empty: one step each.
  enum class RingOf : uint8_t { kGroup, kLocalRank, kNode };  // which ranks form the rings of a phase
  struct Phase {
    int first, len;
    RingOf rings;
  };
  std::vector<Phase> phases;
  int first_of(int s) const { return phases.empty() ? s : phases[static_cast<size_t>(s)].first; }
  int repeat(int s) const { return phases.empty() ? 1 : phases[static_cast<size_t>(s)].len; }
  // A pipelined phase ends for all the ranks of its ring at once, when the ring's last transfer is delivered: a rank
  // forwards data it has received, so no edge of a ring finishes its phase before the slowest one. The rings of a
  // phase: the whole group (ring, reduce-scatter, all-gather), or for hierarchical allreduce each node (intra-node
  // phases, index G + node) and each local rank (inter-node phase, index local rank). Flows per (step, ring) and
  // those delivered: [s * (G + N) + ring].
  std::vector<uint32_t> ring_flows, ring_delivered;
  int ring_of(int r, int s) const {
    switch (phases[static_cast<size_t>(s)].rings) {
      case RingOf::kGroup:
        return 0;
      case RingOf::kLocalRank:
        return local_idx[r];
      case RingOf::kNode:
        return G + node_idx[r];
    }
    return 0;
  }
  size_t ring_at(int r, int s) const { return static_cast<size_t>(s) * (G + N) + static_cast<size_t>(ring_of(r, s)); }
  // Per-rank state.
  std::vector<int> step, pending;
  std::vector<uint8_t> issued, passed, launched, finished;
  std::vector<uint32_t> recv_count, expected;  // [r * nsteps + s]
  std::vector<int> barrier_arrived;  // [s * (G + N) + g]: members arrived at rendezvous g of step s (lazily sized)
  int launched_count = 0, done_count = 0;
  // Sends of every (rank, step), computed once when the collective is added: they are read when the step starts,
  // when it is issued and for its weight. Rows: send_list[send_at[r * nsteps + s] .. send_at[r * nsteps + s + 1]).
  std::vector<uint32_t> send_at;
  std::vector<std::pair<int, double>> send_list;
  std::vector<double> step_weight;  // per step, 0 until computed (Collectives::step_weight)

  std::span<const std::pair<int, double>> sends_of(int r, int s) const {
    const size_t i = static_cast<size_t>(r) * static_cast<size_t>(nsteps) + static_cast<size_t>(s);
    return {send_list.data() + send_at[i], send_list.data() + send_at[i + 1]};
  }

  // Back to a blank instance, keeping the vectors' memory: instances are recycled (Collectives::acquire), so a run of
  // many collectives does not allocate a dozen vectors for each.
  void clear() {
    for (auto* v : {&ranks, &index_of, &node_idx, &local_idx, &by_nl, &step, &pending}) v->clear();
    for (auto* v : {&issued, &passed, &launched, &finished}) v->clear();
    for (auto* v : {&recv_count, &expected, &send_at}) v->clear();
    phases.clear();
    ring_flows.clear();
    ring_delivered.clear();
    matrix.clear();
    send_list.clear();
    step_weight.clear();
    barrier_arrived.clear();
    on_done = nullptr;
    op = Op::kAllToAll;
    algo = Algo::kDirect;
    P = 0;
    cls = 0;
    weight = 1;
    M = 0;
    G = N = C = 1;
    nsteps = 0;
    launched_count = done_count = 0;
  }

  int at(int n, int l) const { return by_nl[static_cast<size_t>(n) * G + l]; }
  bool node_aware() const { return !by_nl.empty(); }

  // Channels (NCCL runs one ring or tree per NIC): channel c orders the GPUs of each node starting at local rank c,
  // so each channel crosses between nodes through different GPUs and all NICs carry traffic. pos_in_node() is a
  // rank's position in its node for channel c, local_at() the inverse.
  int pos_in_node(int c, int r) const { return (local_idx[r] - c % G + G) % G; }
  int local_at(int c, int k) const { return (c + k) % G; }
  int ring_next(int c, int r) const {
    if (C == 1 || !node_aware()) return (r + 1) % P;
    const int n = node_idx[r], k = pos_in_node(c, r);
    return k + 1 < G ? at(n, local_at(c, k + 1)) : at((n + 1) % N, local_at(c, 0));
  }

  // Double binary tree as NCCL builds it: in each channel the GPUs of a node form a chain (position k's parent is
  // k-1) and the node heads (position 0) form two complementary binary trees over nodes (the second over the
  // mirrored node order, so that a node is a leaf in at most one of them). Without a uniform node structure the
  // trees are built over rank order. Returns -1 for a root.
  int tree_parent(int t, int c, int r) const {
    int n, count;
    if (node_aware()) {
      const int k = pos_in_node(c, r);
      if (k > 0) return at(node_idx[r], local_at(c, k - 1));
      n = node_idx[r];
      count = N;
    } else {
      n = r;
      count = P;
    }
    const int pos = t == 0 ? n : count - 1 - n;
    if (pos == 0) return -1;
    const int pp = (pos - 1) / 2, pn = t == 0 ? pp : count - 1 - pp;
    return node_aware() ? at(pn, local_at(c, 0)) : pn;
  }
  template <typename Fn>
  void tree_children(int t, int c, int r, Fn&& fn) const {
    int n, count;
    if (node_aware()) {
      const int k = pos_in_node(c, r);
      if (k + 1 < G) fn(at(node_idx[r], local_at(c, k + 1)));
      if (k > 0) return;
      n = node_idx[r];
      count = N;
    } else {
      n = r;
      count = P;
    }
    const int pos = t == 0 ? n : count - 1 - n;
    for (int ch = 2 * pos + 1; ch <= 2 * pos + 2 && ch < count; ++ch) {
      const int cn = t == 0 ? ch : count - 1 - ch;
      fn(node_aware() ? at(cn, local_at(c, 0)) : cn);
    }
  }

  // Sends of rank r in step s, as (destination rank index, bytes); zero-byte sends are left out.
  void step_sends(int r, int s, std::vector<std::pair<int, double>>& out) const {
    out.clear();
    auto add = [&](int d, double b) {
      if (b > 0 && d >= 0 && d != r) out.emplace_back(d, b);
    };
    switch (op) {
      case Op::kAllToAll:
        if (algo == Algo::kDirect) {
          for (int j = 0; j < P; ++j) add(j, matrix[static_cast<size_t>(r) * P + j]);
        } else {
          const int n = node_idx[r], l = local_idx[r];
          if (s == 0) {  // gather at local rank l2 what this GPU sends to local rank l2 of every node
            for (int l2 = 0; l2 < G; ++l2) {
              double b = 0;
              for (int m = 0; m < N; ++m) b += matrix[static_cast<size_t>(r) * P + at(m, l2)];
              add(at(n, l2), b);
            }
          } else {  // send to (m, l) what node n's GPUs have for it
            for (int m = 0; m < N; ++m) {
              double b = 0;
              for (int l2 = 0; l2 < G; ++l2) b += matrix[static_cast<size_t>(at(n, l2)) * P + at(m, l)];
              add(at(m, l), b);
            }
          }
        }
        return;
      case Op::kReduceScatter:
      case Op::kAllGather:
        for (int c = 0; c < C; ++c) add(ring_next(c, r), M / P / C);
        return;
      case Op::kAllReduce:
        if (algo == Algo::kRing) {
          for (int c = 0; c < C; ++c) add(ring_next(c, r), M / P / C);
        } else if (algo == Algo::kTree) {
          for (int c = 0; c < C; ++c) {
            for (int t = 0; t < 2; ++t) {
              if (s == 0) {
                add(tree_parent(t, c, r), M / 2 / C);
              } else {
                tree_children(t, c, r, [&](int d) { add(d, M / 2 / C); });
              }
            }
          }
        } else {  // hierarchical: intra reduce-scatter, inter allreduce, intra all-gather
          const int n = node_idx[r], l = local_idx[r];
          const int p1 = G - 1, p2 = 2 * (N - 1);
          if (s < p1 || s >= p1 + p2) {
            add(at(n, (l + 1) % G), M / G);
          } else {
            add(at((n + 1) % N, l), M / G / N);
          }
        }
        return;
    }
  }

  // Rendezvous group of a sub-collective starting at step s for rank r, or -1.
  int barrier(int r, int s) const {
    s = first_of(s);
    if (algo == Algo::kHierarchical && op == Op::kAllToAll && s == 1 && N > 1) return local_idx[r];
    if (algo == Algo::kHierarchical && op == Op::kAllReduce) {
      const int p1 = G - 1, p2 = 2 * (N - 1);
      if (s == p1 && p2 > 0 && p1 > 0) return local_idx[r];          // inter-node allreduce among equal local rank
      if (s == p1 + p2 && p2 > 0 && p1 > 0) return G + node_idx[r];  // intra-node all-gather
    }
    return -1;
  }
  template <typename Out>
  void barrier_members(int r, int g, Out& out) const {
    out.clear();
    if (g < G) {
      for (int m = 0; m < N; ++m) out.push_back(at(m, local_idx[r]));
    } else {
      for (int l = 0; l < G; ++l) out.push_back(at(node_idx[r], l));
    }
  }
};

Collectives::Collectives(Engine& engine, Network& network, const Topology& topology, const ClusterSpec& spec)
    : engine_(engine),
      net_(network),
      topo_(topology),
      alpha_(spec.collective_alpha),
      gpus_per_node_(spec.gpus_per_node),
      nic_per_gpu_(spec.nic_per == ClusterSpec::NicPer::kGpu),
      share_per_collective_(spec.sharing == ClusterSpec::Sharing::kCollective),
      pipelined_rings_(spec.ring_model == ClusterSpec::RingModel::kPipelined) {}

Collectives::~Collectives() = default;

const char* Collectives::name(Algo a) {
  switch (a) {
    case Algo::kDirect:
      return "direct";
    case Algo::kHierarchical:
      return "hierarchical";
    case Algo::kRing:
      return "ring";
    case Algo::kTree:
      return "tree";
    case Algo::kAuto:
      return "auto";
  }
  return "?";
}

const char* Collectives::name(Op o) {
  switch (o) {
    case Op::kAllToAll:
      return "alltoall";
    case Op::kAllReduce:
      return "allreduce";
    case Op::kReduceScatter:
      return "reducescatter";
    case Op::kAllGather:
      return "allgather";
  }
  return "?";
}

// One channel per GPU of a node when every GPU has its own NIC and the group spans several nodes evenly (as NCCL
// opens one channel per NIC); otherwise one.
int Collectives::channels(const Instance& in) const {
  if (!nic_per_gpu_ || in.by_nl.empty() || in.N < 2 || in.G < 2) return 1;
  return in.G;
}

std::unique_ptr<Collectives::Instance> Collectives::acquire() {
  if (spare_.empty()) return std::make_unique<Instance>();
  std::unique_ptr<Instance> in = std::move(spare_.back());
  spare_.pop_back();
  return in;
}

void Collectives::release(CollId id) {
  std::unique_ptr<Instance> in = std::move(instances_[id]);
  free_ids_.push_back(id);
  --active_;
  in->clear();
  if (spare_.size() < kSpareInstances) spare_.push_back(std::move(in));
}

Collectives::CollId Collectives::add(std::unique_ptr<Instance> in) {
  const int P = in->P;
  if (in->nsteps >= (1 << 22) || P >= (1 << 21)) throw std::invalid_argument("lina collectives: group too large");
  const size_t cells = static_cast<size_t>(P) * in->nsteps;
  in->step.assign(P, 0);
  in->pending.assign(P, 0);
  in->issued.assign(P, 0);
  in->passed.assign(P, 0);
  in->launched.assign(P, 0);
  in->finished.assign(P, 0);
  in->recv_count.assign(cells, 0);
  in->expected.assign(cells, 0);
  // Every rank's sends in every step, and the expected receives: the sends aimed at each rank in each step.
  in->send_at.assign(cells + 1, 0);
  in->send_list.clear();
  if (!in->phases.empty()) {
    in->ring_flows.assign(static_cast<size_t>(in->nsteps) * (in->G + in->N), 0);
    in->ring_delivered.assign(in->ring_flows.size(), 0);
  }
  std::vector<std::pair<int, double>> sends;
  for (int r = 0; r < P; ++r) {
    for (int s = 0; s < in->nsteps; ++s) {
      in->step_sends(r, in->first_of(s), sends);
      for (auto& [d, b] : sends) b *= in->repeat(s);
      if (in->repeat(s) > 1) in->ring_flows[in->ring_at(r, s)] += static_cast<uint32_t>(sends.size());
      for (auto [d, b] : sends) ++in->expected[static_cast<size_t>(d) * in->nsteps + s];
      in->send_list.insert(in->send_list.end(), sends.begin(), sends.end());
      in->send_at[static_cast<size_t>(r) * in->nsteps + s + 1] = static_cast<uint32_t>(in->send_list.size());
    }
  }
  in->owner = this;
  const CollId id = take_slot(instances_, free_ids_);
  in->id = id;
  instances_[id] = std::move(in);
  ++active_;
  return id;
}

namespace {

// Validates a group and fills the rank <-> GPU maps and the node structure.
void init_group(Collectives::Instance& in, std::vector<int> ranks, const Topology& topo, int gpus_per_node,
                bool need_uniform_nodes) {
  if (ranks.empty()) throw std::invalid_argument("lina collectives: empty group of ranks");
  in.P = static_cast<int>(ranks.size());
  in.index_of.assign(topo.gpu_count(), -1);
  for (int i = 0; i < in.P; ++i) {
    int g = ranks[i];
    if (g < 0 || g >= topo.gpu_count()) {
      throw std::invalid_argument(fmt::format("lina collectives: GPU {} outside the cluster", g));
    }
    if (in.index_of[g] >= 0) throw std::invalid_argument(fmt::format("lina collectives: GPU {} listed twice", g));
    in.index_of[g] = i;
  }
  in.ranks = std::move(ranks);
  // Node structure: nodes in increasing order, local index = order of GPU id within the node. Sorting the ranks by
  // GPU id lists each node's members together, in that order.
  thread_local std::vector<std::pair<int, int>> order;  // (GPU, rank index)
  order.clear();
  for (int i = 0; i < in.P; ++i) order.emplace_back(in.ranks[i], i);
  std::sort(order.begin(), order.end());
  in.N = 0;
  in.G = 0;
  bool uniform = true;
  for (size_t i = 0, run = 0; i < order.size(); i = run) {
    const int node = order[i].first / gpus_per_node;
    for (run = i; run < order.size() && order[run].first / gpus_per_node == node; ++run) {
    }
    const int members = static_cast<int>(run - i);
    if (in.N++ == 0) in.G = members;
    uniform = uniform && members == in.G;
  }
  in.node_idx.assign(in.P, 0);
  in.local_idx.assign(in.P, 0);
  if (!uniform) {
    if (need_uniform_nodes) {
      throw std::invalid_argument(
          "lina collectives: hierarchical algorithms need the same number of ranks on every node of the group");
    }
    return;
  }
  in.by_nl.assign(in.P, 0);
  for (int k = 0; k < in.P; ++k) {
    const int member = order[static_cast<size_t>(k)].second, n = k / in.G, l = k % in.G;
    in.node_idx[member] = n;
    in.local_idx[member] = l;
    in.by_nl[static_cast<size_t>(n) * in.G + l] = member;
  }
}

// ClusterSpec::ring_model = pipelined: the algorithm's steps, in order, become phases of consecutive steps (a count
// and the rings they run on; zero-length phases left out), each simulated as one step that sends all their bytes.
using RingOf = Collectives::Instance::RingOf;
void collapse_into_phases(Collectives::Instance& in, std::initializer_list<std::pair<int, RingOf>> phases) {
  in.phases.clear();
  int first = 0;
  for (auto [k, rings] : phases) {
    if (k > 0) in.phases.push_back({first, k, rings});
    first += k;
  }
  in.nsteps = static_cast<int>(in.phases.size());
}

void check_common(double bytes, int cls, double weight) {
  if (!(bytes >= 0)) throw std::invalid_argument("lina collectives: bytes must be >= 0");
  if (cls < 0 || cls > Network::kMaxClass) throw std::invalid_argument("lina collectives: bad priority class");
  if (!(weight > 0)) throw std::invalid_argument("lina collectives: weight must be > 0");
}

}  // namespace

Collectives::CollId Collectives::alltoallv(std::vector<int> ranks, std::vector<double> bytes, Algo algo, int cls,
                                           RankDone on_done, double weight) {
  if (algo != Algo::kDirect && algo != Algo::kHierarchical) {
    throw std::invalid_argument("lina collectives: all-to-all algorithms are direct and hierarchical");
  }
  check_common(0, cls, weight);
  auto in = acquire();
  in->op = Op::kAllToAll;
  in->algo = algo;
  init_group(*in, std::move(ranks), topo_, gpus_per_node_, algo == Algo::kHierarchical);
  if (bytes.size() != static_cast<size_t>(in->P) * in->P) {
    throw std::invalid_argument("lina collectives: all-to-all-v size matrix must be P x P");
  }
  for (double b : bytes) check_common(b, cls, weight);
  in->matrix = std::move(bytes);
  in->cls = cls;
  in->weight = weight;
  in->on_done = std::move(on_done);
  in->nsteps = algo == Algo::kDirect ? 1 : 2;
  return add(std::move(in));
}

Collectives::CollId Collectives::alltoall(std::vector<int> ranks, double bytes, Algo algo, int cls, RankDone on_done,
                                          double weight) {
  check_common(bytes, cls, weight);
  const size_t P = ranks.size();
  std::vector<double> m(P * P, P ? bytes / static_cast<double>(P) : 0.0);
  return alltoallv(std::move(ranks), std::move(m), algo, cls, std::move(on_done), weight);
}

Collectives::CollId Collectives::allreduce(std::vector<int> ranks, double bytes, Algo algo, int cls, RankDone on_done,
                                           double weight) {
  check_common(bytes, cls, weight);
  if (algo == Algo::kDirect)
    throw std::invalid_argument("lina collectives: allreduce algorithms are ring, tree, hierarchical, auto");
  if (algo == Algo::kAuto) algo = fastest_allreduce(ranks, bytes);
  auto in = acquire();
  in->op = Op::kAllReduce;
  in->algo = algo;
  init_group(*in, std::move(ranks), topo_, gpus_per_node_, algo == Algo::kHierarchical);
  in->M = bytes;
  in->cls = cls;
  in->weight = weight;
  in->on_done = std::move(on_done);
  const int P = in->P;
  if (algo != Algo::kHierarchical) in->C = channels(*in);
  if (bytes == 0 || P == 1) {
    in->nsteps = 0;
  } else if (algo == Algo::kRing) {
    in->nsteps = 2 * (P - 1);
  } else if (algo == Algo::kTree) {
    in->nsteps = 2;
  } else {
    in->nsteps = 2 * (in->G - 1) + 2 * (in->N - 1);
  }
  if (pipelined_rings_ && in->nsteps > 0) {
    if (algo == Algo::kRing) collapse_into_phases(*in, {{in->nsteps, RingOf::kGroup}});
    // Intra-node reduce-scatter, inter-node ring allreduce, intra-node all-gather: three rings.
    if (algo == Algo::kHierarchical) {
      collapse_into_phases(
          *in, {{in->G - 1, RingOf::kNode}, {2 * (in->N - 1), RingOf::kLocalRank}, {in->G - 1, RingOf::kNode}});
    }
  }
  return add(std::move(in));
}

Collectives::Algo Collectives::fastest_allreduce(const std::vector<int>& ranks, double bytes) {
  auto key = std::make_pair(ranks, bytes);
  if (auto it = tuned_.find(key); it != tuned_.end()) return it->second;
  // Each candidate runs alone on a scratch engine and network over the same topology (the live network's flows
  // must not see the trial). Ties go to the earlier candidate: ring, then tree, then hierarchical. The trials
  // simulate rings pipelined (ClusterSpec::ring_model): alone on the network that gives a ring's time (to rounding,
  // a few picoseconds) in P flows, where its steps would take O(P^2) (24 s for the trials at 2,048 GPUs).
  ClusterSpec trial_spec = topo_.spec();
  trial_spec.ring_model = ClusterSpec::RingModel::kPipelined;
  auto alone = [&](const std::vector<int>& group, double m, Algo a) -> std::optional<Time> {
    Engine engine;
    Network network(engine, topo_);
    Collectives trial(engine, network, topo_, trial_spec);
    Time done;
    try {
      CollId id = trial.allreduce(group, m, a, 0, [&](int) { done = engine.now(); });
      trial.launch_all(id);
    } catch (const std::invalid_argument&) {
      return std::nullopt;  // hierarchical on a group that does not fill its nodes evenly
    }
    engine.run();
    return done;
  };
  std::optional<Time> ring = alone(ranks, bytes, Algo::kRing);
  Algo best = Algo::kRing;
  Time best_time = ring.value_or(Time::max());
  for (Algo a : {Algo::kTree, Algo::kHierarchical}) {
    auto t = alone(ranks, bytes, a);
    if (t && *t < best_time) {
      best_time = *t;
      best = a;
    }
  }
  tuned_.emplace(std::move(key), best);
  return best;
}

Collectives::CollId Collectives::reduce_scatter(std::vector<int> ranks, double bytes, int cls, RankDone on_done,
                                                double weight) {
  check_common(bytes, cls, weight);
  auto in = acquire();
  in->op = Op::kReduceScatter;
  in->algo = Algo::kRing;
  init_group(*in, std::move(ranks), topo_, gpus_per_node_, false);
  in->C = channels(*in);
  in->M = bytes;
  in->cls = cls;
  in->weight = weight;
  in->on_done = std::move(on_done);
  in->nsteps = bytes == 0 ? 0 : in->P - 1;
  if (pipelined_rings_ && in->nsteps > 0) collapse_into_phases(*in, {{in->nsteps, RingOf::kGroup}});
  return add(std::move(in));
}

Collectives::CollId Collectives::all_gather(std::vector<int> ranks, double bytes, int cls, RankDone on_done,
                                            double weight) {
  CollId id = reduce_scatter(std::move(ranks), bytes, cls, std::move(on_done), weight);
  instances_[id]->op = Op::kAllGather;
  return id;
}

void Collectives::launch(CollId id, int gpu) {
  if (id >= instances_.size() || !instances_[id]) throw std::logic_error("lina collectives: unknown collective");
  Instance& in = *instances_[id];
  int r = gpu >= 0 && gpu < static_cast<int>(in.index_of.size()) ? in.index_of[gpu] : -1;
  if (r < 0) throw std::logic_error(fmt::format("lina collectives: GPU {} is not in the group", gpu));
  if (in.launched[r]) throw std::logic_error(fmt::format("lina collectives: GPU {} launched twice", gpu));
  in.launched[r] = 1;
  if (++in.launched_count < in.P) return;
  // Rendezvous complete: every rank starts its first step now.
  for (int k = 0; k < in.P; ++k) start_step(in, k);
  if (in.done_count == in.P) {
    release(id);
  }
}

void Collectives::launch_all(CollId id) {
  if (id >= instances_.size() || !instances_[id]) throw std::logic_error("lina collectives: unknown collective");
  std::vector<int> ranks = instances_[id]->ranks;
  for (int g : ranks) launch(id, g);
}

// Rank r wants to start step[r]: passes its rendezvous if the step has one, skips empty steps, waits alpha, issues.
void Collectives::start_step(Instance& in, int r) {
  for (;;) {
    const int s = in.step[r];
    if (s == in.nsteps) {
      in.finished[r] = 1;
      ++in.done_count;
      if (in.on_done) in.on_done(in.ranks[r]);
      return;
    }
    if (!in.passed[r]) {
      const int g = in.barrier(r, s);
      if (g >= 0) {
        if (in.barrier_arrived.empty()) in.barrier_arrived.assign(static_cast<size_t>(in.nsteps) * (in.G + in.N), 0);
        int& arrived = in.barrier_arrived[static_cast<size_t>(s) * (in.G + in.N) + static_cast<size_t>(g)];
        boost::container::small_vector<int, 16> members;  // start_step recurses: no shared scratch
        in.barrier_members(r, g, members);
        if (++arrived < static_cast<int>(members.size())) return;  // the last member to arrive releases us
        arrived = 0;
        for (int m : members) {
          if (m == r) continue;
          in.passed[m] = 1;
          start_step(in, m);
        }
      }
    }
    in.passed[r] = 0;
    if (in.sends_of(r, s).empty() && in.expected[static_cast<size_t>(r) * in.nsteps + s] == 0) {
      ++in.step[r];  // nothing to do in this step: no protocol overhead either
      continue;
    }
    if (const int k = in.repeat(s); k > 1) {
      // A pipelined phase of k ring steps pays their k overheads up front (and its flows their k latencies).
      Instance* p = &in;
      engine_.schedule_after(alpha_ * k, [this, p, r] {
        issue(*p, r);
        if (p->done_count == p->P) release(p->id);
      });
    } else if (alpha_ > Time::zero()) {
      issue_after_alpha(in, r);
    } else {
      issue(in, r);
    }
    return;
  }
}

void Collectives::issue_after_alpha(Instance& in, int r) {
  if (open_alpha_wait_ != UINT32_MAX) {
    AlphaWait& w = alpha_waits_[open_alpha_wait_];
    const Engine::EventId last = engine_.last_scheduled();
    // Nothing was scheduled after the open wait's event and it falls at the same instant: this rank's issue would
    // run right after the ranks already there, as a separate event would.
    if (last.seq == w.event.seq && last.slot == w.event.slot && w.at == engine_.now() + alpha_) {
      w.ranks.emplace_back(&in, r);
      return;
    }
  }
  const uint32_t i = take_slot(alpha_waits_, free_alpha_waits_);
  alpha_waits_[i].ranks.assign(1, {&in, r});
  alpha_waits_[i].at = engine_.now() + alpha_;
  alpha_waits_[i].event = engine_.schedule_after(alpha_, [this, i] {
    if (open_alpha_wait_ == i) open_alpha_wait_ = UINT32_MAX;
    // By index: issuing may add waits (and grow the vector).
    for (size_t k = 0; k < alpha_waits_[i].ranks.size(); ++k) {
      auto [p, rank] = alpha_waits_[i].ranks[k];
      issue(*p, rank);
      if (p->done_count == p->P) {
        CollId id = p->id;
        release(id);
      }
    }
    alpha_waits_[i].ranks.clear();
    free_alpha_waits_.push_back(i);
  });
  open_alpha_wait_ = i;
}

void Collectives::issue(Instance& in, int r) {
  const int s = in.step[r];
  const auto sends = in.sends_of(r, s);
  in.issued[r] = 1;
  in.pending[r] = static_cast<int>(sends.size());
  Instance* p = &in;
  const double w = share_per_collective_ ? step_weight(in, s) : in.weight;
  const int k = in.repeat(s);
  for (auto [d, b] : sends) {
    const uint64_t packed =
        static_cast<uint64_t>(r) | (static_cast<uint64_t>(d) << 21) | (static_cast<uint64_t>(s) << 42);
    auto done = [p, packed](Network::FlowId) {
      p->owner->on_flow(*p, static_cast<int>(packed & 0x1FFFFF), static_cast<int>((packed >> 21) & 0x1FFFFF),
                        static_cast<int>(packed >> 42));
    };
    const int src = in.ranks[r], dst = in.ranks[d];
    if (k == 1) {
      net_.start_flow(src, dst, b, in.cls, w, done);
    } else {  // a pipelined phase: the latency of each of its k steps
      net_.start_route_flow(topo_.route(src, dst), topo_.route_latency(src, dst) * k, b, in.cls, w, done);
    }
  }
  check_step(in, r);
}

// The weight of every flow of step s: the collective's weight over the number of the step's flows (all ranks) on
// its busiest link. Computed once per step, when its first rank issues it.
double Collectives::step_weight(Instance& in, int s) {
  if (in.step_weight.empty()) in.step_weight.assign(static_cast<size_t>(in.nsteps), 0.0);
  double& w = in.step_weight[static_cast<size_t>(s)];
  if (w > 0) return w;
  // Flows per link in a flat array (zeroed again through the touched list): this runs once per step of every
  // collective, over as many routes as the step has flows.
  if (link_load_.size() < topo_.link_count()) link_load_.assign(topo_.link_count(), 0);
  int busiest = 1;
  for (int r = 0; r < in.P; ++r) {
    for (auto [d, b] : in.sends_of(r, s)) {
      for (LinkId l : topo_.route(in.ranks[r], in.ranks[d])) {
        if (link_load_[l]++ == 0) touched_links_.push_back(l);
        busiest = std::max(busiest, link_load_[l]);
      }
    }
  }
  for (LinkId l : touched_links_) link_load_[l] = 0;
  touched_links_.clear();
  w = in.weight / busiest;
  return w;
}

void Collectives::check_step(Instance& in, int r) {
  const int s = in.step[r];
  if (!in.issued[r] || in.pending[r] > 0) return;
  if (in.repeat(s) > 1) {  // a pipelined phase ends when its whole ring is delivered
    const size_t ring = in.ring_at(r, s);
    if (in.ring_delivered[ring] < in.ring_flows[ring]) return;
  }
  if (in.recv_count[static_cast<size_t>(r) * in.nsteps + s] < in.expected[static_cast<size_t>(r) * in.nsteps + s]) {
    return;
  }
  in.issued[r] = 0;
  ++in.step[r];
  start_step(in, r);
}

void Collectives::on_flow(Instance& in, int r, int d, int s) {
  --in.pending[r];
  ++in.recv_count[static_cast<size_t>(d) * in.nsteps + s];
  if (in.repeat(s) > 1) {
    const size_t ring = in.ring_at(r, s);
    if (++in.ring_delivered[ring] == in.ring_flows[ring]) {  // the ring's phase is over: release its ranks
      if (in.phases[static_cast<size_t>(s)].rings == Instance::RingOf::kGroup) {
        for (int m = 0; m < in.P; ++m) {
          if (in.step[m] == s && m != r && m != d) check_step(in, m);
        }
      } else {
        boost::container::small_vector<int, 16> members;
        in.barrier_members(r, in.ring_of(r, s), members);
        for (int m : members) {
          if (in.step[m] == s && m != r && m != d) check_step(in, m);
        }
      }
    }
  }
  if (in.step[r] == s) check_step(in, r);
  if (in.step[d] == s) check_step(in, d);
  if (in.done_count == in.P) {
    CollId id = in.id;
    release(id);
  }
}

}  // namespace lina::sim

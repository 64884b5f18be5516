// Plan IR (DESIGN.md 3): per rank, a DAG of tasks that an executor (sim/ or hw/) runs.
//
// A task is compute (operator kind, FLOPs, bytes), communication (its rank's part of a collective instance shared
// by all participants) or host work (a fixed scheduling cost). Each task sits on one stream of its rank; a stream
// runs its tasks one at a time in issue order (the order of Plan::tasks), like a CUDA stream, and a task also waits
// for its dependencies, which may be on other streams of the same rank. Ranks interact only through collectives:
// a collective starts when every participant has launched its part (NCCL rendezvous).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

// GCC 12 reports a false -Wstringop-overread inside small_vector's copy at -O3.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstringop-overread"
#include <boost/container/small_vector.hpp>
#pragma GCC diagnostic pop

#include "sched/flops.hpp"  // OpKind: compute operator kinds, each with its own efficiency

namespace lina {

enum class TaskKind : uint8_t { kCompute, kComm, kHost };

// Streams of a rank. Communication kinds get their own streams so that they overlap with compute and each other.
enum class Stream : uint8_t { kCompute = 0, kAllToAll = 1, kAllReduce = 2, kHost = 3 };
inline constexpr int kStreamCount = 4;
const char* stream_name(Stream s);

enum class CommKind : uint8_t { kAllToAll, kAllReduce, kReduceScatter, kAllGather, kHostLoad };
const char* comm_name(CommKind k);

enum class Phase : uint8_t { kForward, kBackward, kStep };

// Classes of links a rank's traffic can cross (bits of Collective::links): its GPU's port into its node (NVLink to the
// NVSwitch, or PCIe) and the NIC with the inter-node fabric. A link-aware policy holds one collective behind another
// only when they share a class.
enum LinkClass : uint8_t { kNodeLinks = 1, kNicLinks = 2, kAllLinks = kNodeLinks | kNicLinks };

// What a task is in the MoE layer's structure; the Lina scheduler and the metrics read it.
enum class Role : uint8_t {
  kOther,
  kDispatch,     // all-to-all that sends tokens to experts (forward) or its mirror in backward
  kCombine,      // all-to-all that brings expert outputs back (forward) or its mirror in backward
  kExpert,       // expert FFN compute
  kPreAllToAll,  // compute whose end starts an all-to-all in backward (Lina holds allreduce from its start)
  kGradSync,     // gradient allreduce (non-expert over data parallel, or expert among replicas)
};

struct Collective {
  CommKind kind = CommKind::kAllToAll;
  std::vector<int> ranks;  // participants, global GPU ids; position i in `ranks` is the collective's rank i
  // All-to-all: bytes[i * P + j] sent from ranks[i] to ranks[j]. Allreduce and friends: one entry, the bytes of
  // each rank's buffer (the nccl-tests convention).
  std::vector<double> bytes;
  bool hierarchical = false;  // all-to-all: intra-node then inter-node; allreduce: hierarchical algorithm
  int priority_class = 0;     // network class, 0 highest
  Phase phase = Phase::kForward;
  Role role = Role::kOther;
  int layer = -1;
  int micro_op = -1;
  uint8_t links = kAllLinks;  // LinkClass bits its traffic crosses; every class unless the plan builder says less

  double total_bytes() const;
};

// A task's dependencies: almost always 1 to 5 (a dispatch waits for the gate and for scheduling and weight loads), so
// they live inside the task (an inference batch builds thousands of tasks, and a heap block for each one's list was a
// large part of building its plan).
using TaskDeps = boost::container::small_vector<int, 5>;

struct Task {
  int rank = 0;
  TaskKind kind = TaskKind::kCompute;
  Stream stream = Stream::kCompute;
  OpKind op = OpKind::kElementwise;  // compute
  double flops = 0;                  // compute
  double bytes = 0;                  // compute: HBM bytes; host: unused
  double host_seconds = 0;           // host work duration
  int collective = -1;               // comm: index into Plan::collectives
  TaskDeps deps;                     // task ids that must finish first (same rank)
  Phase phase = Phase::kForward;
  Role role = Role::kOther;
  int layer = -1;
  int micro_op = -1;  // chunk index for pipelined / partitioned tasks
  int step = 0;
};

struct Plan {
  int ranks = 0;
  std::vector<Task> tasks;
  std::vector<Collective> collectives;

  // Appends a task; returns its id. (Two overloads rather than one by value: a plan of thousands of tasks per
  // inference batch is built from temporaries, which are then moved once.)
  int add_task(Task&& t);
  int add_task(const Task& t) { return add_task(Task(t)); }
  int add_collective(Collective c);
  // Rank `rank`'s part of collective `collective` on `stream`, after `deps`; phase, layer, role and micro-op are
  // the collective's. Returns the task id.
  int add_comm_task(int rank, int collective, Stream stream, TaskDeps deps, int step = 0);
  // A host -> GPU transfer of `bytes` over the rank's PCIe link (expert weights kept in host memory): a
  // one-rank kHostLoad collective and its task on `stream`, after `deps`. Returns the task id.
  int add_host_load(int rank, double bytes, Stream stream, Phase phase, int layer, TaskDeps deps, int step = 0);
  // A short human-readable name for timelines: "fwd L3 dispatch a2a #1".
  std::string task_name(int id) const;
};

// Checks the plan before any executor runs it: dependencies refer to earlier tasks of the same rank (so the task order
// is a topological order and the graph is acyclic by construction), every collective names each of its ranks once and
// has exactly one task per participant, sizes are finite and non-negative. Throws std::logic_error: a
// bad plan is a bug in a policy, not a user error.
void validate_plan(const Plan& plan);

}  // namespace lina

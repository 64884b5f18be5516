// Lowering a Plan to device work (DESIGN.md 7): what each task becomes on a GPU, independent of CUDA so that it is
// tested on the CPU through the recording backend.
//
// - GEMM-like tasks (gemm, attention_proj, attention_scores, gate) become one bf16 GEMM C[m x n] = A[m x k] B[k x n]
//   with the task's FLOPs (2 m n k) and inner dimension k = the model's hidden size. m and n are solved from the
//   task's FLOPs and HBM bytes ((m k + k n + m n) * 2 = bytes, the convention of sched/flops.hpp), which recovers the
//   exact shape of a single-GEMM operator (gate: tokens x experts; LM head: tokens x vocab); where bytes and FLOPs
//   admit no such shape (several GEMMs fused in one task) the GEMM is square (m = n). n is rounded up to a multiple
//   of 8 (tensor-core alignment) and m chosen to keep the FLOPs within a row's worth. HBM bytes the GEMM does not
//   move (unfused attention's score matrix) run as a memory kernel after it.
// - Elementwise and embedding tasks become one streaming kernel reading and writing bytes / 2 each.
// - Host tasks become a host function that spins for host_seconds on the task's stream.
// - All-to-all(-v): the rank's row and column of the byte matrix as one NCCL group of ncclSend/ncclRecv (peers in
//   the communicator over all GPUs, which is the global rank), its own share as a device-to-device copy.
// - Allreduce: ncclAllReduce of bytes / 2 bf16 elements on the communicator of the collective's rank set;
//   reduce-scatter and all-gather likewise (the byte count is the full buffer, nccl-tests convention); host loads a
//   pinned host-to-device copy.
// - Streams: one CUDA stream per Plan stream and rank. Communication streams get the CUDA priority of the best
//   (lowest) network priority class of the collectives they carry: class 0 the greatest CUDA priority, each further
//   class one step lower, never below the least; compute and host streams the least (default) priority.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sched/plan.hpp"

namespace lina::hw {

struct GemmShape {
  int64_t m = 0, n = 0, k = 0;
  double flops() const { return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k); }
  double bytes(int elem) const { return static_cast<double>(m * k + k * n + m * n) * elem; }
};

// The GEMM with `flops` FLOPs and inner dimension k that moves `bytes` (see the file comment). k >= 1.
GemmShape gemm_shape(double flops, double bytes, int64_t k, int elem_bytes = 2);

struct P2POp {
  bool send = true;
  int peer = 0;  // global rank (= NCCL rank in the all-GPU communicator)
  int64_t bytes = 0;
};

struct DeviceWork {
  enum class Kind : uint8_t { kGemm, kMemory, kHost, kAllToAll, kAllReduce, kReduceScatter, kAllGather, kHostCopy };
  Kind kind = Kind::kMemory;
  GemmShape gemm;            // kGemm
  int64_t memory_bytes = 0;  // kMemory: bytes read plus written; kGemm: extra bytes run as a memory kernel after it
  double host_seconds = 0;   // kHost
  std::vector<P2POp> p2p;    // kAllToAll: sends and receives, in NCCL issue order
  int64_t local_bytes = 0;   // kAllToAll: the rank's own share (device copy)
  int64_t elements = 0;      // collectives: bf16 elements of the full buffer; kHostCopy: bytes
  int group = -1;            // collectives: index into LoweredPlan::groups
};
const char* work_kind_name(DeviceWork::Kind k);

struct LoweringOptions {
  int64_t hidden = 1024;  // the model's hidden size: inner dimension of the GEMMs
  int elem_bytes = 2;     // bf16
  // CUDA's stream priority range (cudaDeviceGetStreamPriorityRange): least is the default, greatest < least.
  int least_priority = 0;
  int greatest_priority = -5;
};

struct LoweredPlan {
  std::vector<DeviceWork> work;                     // per task
  std::vector<std::vector<int>> groups;             // communicators: sorted global ranks, groups[0] = all ranks
  std::array<int, kStreamCount> stream_priority{};  // CUDA priority per Plan stream
  // Per rank, the largest buffers a stream needs (bytes), for the backend to allocate once.
  struct Buffers {
    int64_t gemm_a = 0, gemm_b = 0, gemm_c = 0, memory = 0, send = 0, recv = 0, reduce = 0, host = 0;
  };
  std::vector<Buffers> buffers;  // per rank
};

LoweredPlan lower_plan(const Plan& plan, const LoweringOptions& options);

// One line per work item, for logs and tests: "gemm 4096x1024x1024 (+0 B)", "a2a send 1->2 65536 B ...".
std::string describe(const DeviceWork& w);

}  // namespace lina::hw

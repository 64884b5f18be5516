#include "hw/cuda_backend.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>

#include "hw/check.hpp"
#include "hw/kernels.hpp"

namespace lina::hw {

struct CudaBackend::Impl {
  struct Device {
    std::array<cudaStream_t, kStreamCount> streams{};
    cublasHandle_t blas = nullptr;
    cudaEvent_t origin = nullptr;
    void *a = nullptr, *b = nullptr, *c = nullptr, *mem = nullptr, *send = nullptr, *recv = nullptr, *reduce = nullptr,
         *host_dev = nullptr, *host = nullptr;
  };
  const Plan* plan = nullptr;
  const LoweredPlan* lowered = nullptr;
  std::vector<Device> dev;
  std::vector<cudaEvent_t> start, end;
  std::map<std::pair<int, int>, std::vector<ncclComm_t>> comms;  // (group, stream) -> comm per group position

  Where where(int task) const {
    const Task& t = plan->tasks[static_cast<size_t>(task)];
    return Where{t.rank, plan->task_name(task)};
  }
};

CudaBackend::CudaBackend() : impl_(std::make_unique<Impl>()) { LINA_CHECK(cudaGetDeviceCount(&devices_), Where{}); }

CudaBackend::~CudaBackend() {
  try {
    finish(false);
  } catch (...) {  // a destructor never throws; finish() has reported what it could
  }
}

void CudaBackend::setup(const Plan& plan, const LoweredPlan& lowered) {
  Impl& m = *impl_;
  m.plan = &plan;
  m.lowered = &lowered;
  m.dev.assign(static_cast<size_t>(plan.ranks), {});
  m.start.assign(plan.tasks.size(), nullptr);
  m.end.assign(plan.tasks.size(), nullptr);
  for (int r = 0; r < plan.ranks; ++r) {
    const Where w{r, ""};
    auto& d = m.dev[static_cast<size_t>(r)];
    const auto& need = lowered.buffers[static_cast<size_t>(r)];
    LINA_CHECK(cudaSetDevice(r), w);
    size_t free = 0, total = 0;
    LINA_CHECK(cudaMemGetInfo(&free, &total), w);
    const int64_t want =
        need.gemm_a + need.gemm_b + need.gemm_c + need.memory + need.send + need.recv + 2 * need.reduce + need.host;
    if (static_cast<double>(want) > 0.9 * static_cast<double>(free)) {
      throw HwError(fmt::format("device {}: the plan's scratch buffers need {:.2f} GB, {:.2f} GB free", r,
                                static_cast<double>(want) / 1e9, static_cast<double>(free) / 1e9));
    }
    for (int s = 0; s < kStreamCount; ++s) {
      LINA_CHECK(cudaStreamCreateWithPriority(&d.streams[static_cast<size_t>(s)], cudaStreamNonBlocking,
                                              lowered.stream_priority[static_cast<size_t>(s)]),
                 w);
    }
    LINA_CHECK(cublasCreate(&d.blas), w);
    LINA_CHECK(cudaEventCreate(&d.origin), w);
    auto alloc = [&](void** p, int64_t bytes, uint64_t seed) {
      if (bytes <= 0) return;
      LINA_CHECK(cudaMalloc(p, static_cast<size_t>(bytes)), w);
      LINA_CHECK(fill_random_bf16(*p, bytes, seed, d.streams[0]), w);
    };
    alloc(&d.a, need.gemm_a, 1);
    alloc(&d.b, need.gemm_b, 2);
    alloc(&d.c, need.gemm_c, 3);
    alloc(&d.mem, need.memory, 4);
    alloc(&d.send, need.send, 5);
    alloc(&d.recv, need.recv, 6);
    alloc(&d.reduce, 2 * need.reduce, 7);
    alloc(&d.host_dev, need.host, 8);
    if (need.host > 0) LINA_CHECK(cudaMallocHost(&d.host, static_cast<size_t>(need.host)), w);
    LINA_CHECK(cudaStreamSynchronize(d.streams[0]), w);
  }
  for (size_t i = 0; i < plan.tasks.size(); ++i) {
    const int r = plan.tasks[i].rank;
    LINA_CHECK(cudaSetDevice(r), m.where(static_cast<int>(i)));
    LINA_CHECK(cudaEventCreate(&m.start[i]), m.where(static_cast<int>(i)));
    LINA_CHECK(cudaEventCreate(&m.end[i]), m.where(static_cast<int>(i)));
    const DeviceWork& wk = lowered.work[i];
    if (wk.group < 0) continue;
    auto key = std::make_pair(wk.group, static_cast<int>(plan.tasks[i].stream));
    if (m.comms.count(key)) continue;
    const auto& members = lowered.groups[static_cast<size_t>(wk.group)];
    std::vector<ncclComm_t> comms(members.size(), nullptr);
    LINA_CHECK(ncclCommInitAll(comms.data(), static_cast<int>(members.size()), members.data()),
               m.where(static_cast<int>(i)));
    m.comms[key] = std::move(comms);
  }
}

void CudaBackend::bind(int rank) { LINA_CHECK(cudaSetDevice(rank), Where{rank, ""}); }

void CudaBackend::start_clock(int rank) {
  auto& d = impl_->dev[static_cast<size_t>(rank)];
  for (auto s : d.streams) LINA_CHECK(cudaStreamSynchronize(s), Where{rank, ""});
  LINA_CHECK(cudaEventRecord(d.origin, d.streams[0]), Where{rank, ""});
  LINA_CHECK(cudaEventSynchronize(d.origin), Where{rank, ""});
}

namespace {
void CUDART_CB spin(void* seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(*static_cast<double*>(seconds));
  while (std::chrono::steady_clock::now() < until) {
  }
}
}  // namespace

void CudaBackend::enqueue(int task, const std::vector<int>& waits) {
  Impl& m = *impl_;
  const Task& t = m.plan->tasks[static_cast<size_t>(task)];
  const DeviceWork& wk = m.lowered->work[static_cast<size_t>(task)];
  auto& d = m.dev[static_cast<size_t>(t.rank)];
  cudaStream_t s = d.streams[static_cast<size_t>(t.stream)];
  const Where w = m.where(task);
  for (int dep : waits) LINA_CHECK(cudaStreamWaitEvent(s, m.end[static_cast<size_t>(dep)], 0), w);
  LINA_CHECK(cudaEventRecord(m.start[static_cast<size_t>(task)], s), w);
  auto comm = [&]() {
    const auto& members = m.lowered->groups[static_cast<size_t>(wk.group)];
    const auto pos = std::find(members.begin(), members.end(), t.rank) - members.begin();
    return m.comms.at({wk.group, static_cast<int>(t.stream)})[static_cast<size_t>(pos)];
  };
  auto* send = static_cast<char*>(d.send);
  auto* recv = static_cast<char*>(d.recv);
  switch (wk.kind) {
    case DeviceWork::Kind::kGemm: {
      if (wk.gemm.m > 0) {
        const float alpha = 1.0f, beta = 0.0f;
        const auto M = static_cast<int>(wk.gemm.m), N = static_cast<int>(wk.gemm.n), K = static_cast<int>(wk.gemm.k);
        LINA_CHECK(cublasSetStream(d.blas, s), w);
        LINA_CHECK(cublasGemmEx(d.blas, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &alpha, d.a, CUDA_R_16BF, M, d.b,
                                CUDA_R_16BF, K, &beta, d.c, CUDA_R_16BF, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   w);
      }
      if (wk.memory_bytes > 0) {
        LINA_CHECK(scale_bf16(d.mem, static_cast<char*>(d.mem) + wk.memory_bytes / 2, wk.memory_bytes / 4, s), w);
      }
      break;
    }
    case DeviceWork::Kind::kMemory:
      LINA_CHECK(scale_bf16(d.mem, static_cast<char*>(d.mem) + wk.memory_bytes / 2, wk.memory_bytes / 4, s), w);
      break;
    case DeviceWork::Kind::kHost:
      LINA_CHECK(cudaLaunchHostFunc(s, spin, const_cast<double*>(&wk.host_seconds)), w);
      break;
    case DeviceWork::Kind::kAllToAll: {
      ncclComm_t c = comm();
      int64_t so = wk.local_bytes, ro = wk.local_bytes;
      LINA_CHECK(ncclGroupStart(), w);
      for (const auto& op : wk.p2p) {
        if (op.send) {
          LINA_CHECK(ncclSend(send + so, static_cast<size_t>(op.bytes), ncclUint8, op.peer, c, s), w, c);
          so += op.bytes;
        } else {
          LINA_CHECK(ncclRecv(recv + ro, static_cast<size_t>(op.bytes), ncclUint8, op.peer, c, s), w, c);
          ro += op.bytes;
        }
      }
      LINA_CHECK(ncclGroupEnd(), w, c);
      if (wk.local_bytes > 0) {
        LINA_CHECK(cudaMemcpyAsync(recv, send, static_cast<size_t>(wk.local_bytes), cudaMemcpyDeviceToDevice, s), w);
      }
      break;
    }
    case DeviceWork::Kind::kAllReduce: {
      ncclComm_t c = comm();
      LINA_CHECK(ncclAllReduce(d.reduce, d.reduce, static_cast<size_t>(wk.elements), ncclBfloat16, ncclSum, c, s), w,
                 c);
      break;
    }
    case DeviceWork::Kind::kReduceScatter: {
      ncclComm_t c = comm();
      const auto p = static_cast<int64_t>(m.lowered->groups[static_cast<size_t>(wk.group)].size());
      auto* out = static_cast<char*>(d.reduce) + wk.elements * 2;
      LINA_CHECK(ncclReduceScatter(d.reduce, out, static_cast<size_t>(wk.elements / p), ncclBfloat16, ncclSum, c, s), w,
                 c);
      break;
    }
    case DeviceWork::Kind::kAllGather: {
      ncclComm_t c = comm();
      const auto p = static_cast<int64_t>(m.lowered->groups[static_cast<size_t>(wk.group)].size());
      auto* in = static_cast<char*>(d.reduce) + wk.elements * 2;
      LINA_CHECK(ncclAllGather(in, d.reduce, static_cast<size_t>(wk.elements / p), ncclBfloat16, c, s), w, c);
      break;
    }
    case DeviceWork::Kind::kHostCopy:
      if (wk.elements > 0) {
        LINA_CHECK(cudaMemcpyAsync(d.host_dev, d.host, static_cast<size_t>(wk.elements), cudaMemcpyHostToDevice, s), w);
      }
      break;
  }
  LINA_CHECK(cudaEventRecord(m.end[static_cast<size_t>(task)], s), w);
}

namespace {
std::optional<Time> poll(cudaEvent_t origin, cudaEvent_t ev, const Where& w) {
  cudaError_t e = cudaEventQuery(ev);
  if (e == cudaErrorNotReady) return std::nullopt;
  check(e, "cudaEventQuery", w);
  float ms = 0;
  LINA_CHECK(cudaEventElapsedTime(&ms, origin, ev), w);
  return Time::from_seconds(static_cast<double>(ms) * 1e-3);
}
}  // namespace

std::optional<Time> CudaBackend::poll_start(int task) {
  Impl& m = *impl_;
  const int r = m.plan->tasks[static_cast<size_t>(task)].rank;
  return poll(m.dev[static_cast<size_t>(r)].origin, m.start[static_cast<size_t>(task)], m.where(task));
}

std::optional<Time> CudaBackend::poll_end(int task) {
  Impl& m = *impl_;
  const int r = m.plan->tasks[static_cast<size_t>(task)].rank;
  return poll(m.dev[static_cast<size_t>(r)].origin, m.end[static_cast<size_t>(task)], m.where(task));
}

void CudaBackend::finish(bool ok) {
  Impl& m = *impl_;
  if (!m.plan) return;
  if (ok) {
    for (size_t r = 0; r < m.dev.size(); ++r) {
      LINA_CHECK(cudaSetDevice(static_cast<int>(r)), Where{static_cast<int>(r), ""});
      for (auto s : m.dev[r].streams) LINA_CHECK(cudaStreamSynchronize(s), Where{static_cast<int>(r), ""});
    }
  }
  for (auto& [key, comms] : m.comms) {
    for (auto c : comms) {
      if (ok) {
        LINA_CHECK(ncclCommDestroy(c), Where{}, c);
      } else {
        ncclCommAbort(c);  // peers may be waiting: abort, and report the first error (already thrown)
      }
    }
  }
  m.comms.clear();
  for (size_t r = 0; r < m.dev.size(); ++r) {
    auto& d = m.dev[r];
    cudaSetDevice(static_cast<int>(r));
    for (void* p : {d.a, d.b, d.c, d.mem, d.send, d.recv, d.reduce, d.host_dev}) {
      if (p) cudaFree(p);
    }
    if (d.host) cudaFreeHost(d.host);
    if (d.blas) cublasDestroy(d.blas);
    for (auto s : d.streams) {
      if (s) cudaStreamDestroy(s);
    }
    if (d.origin) cudaEventDestroy(d.origin);
  }
  for (auto e : m.start) {
    if (e) cudaEventDestroy(e);
  }
  for (auto e : m.end) {
    if (e) cudaEventDestroy(e);
  }
  m.start.clear();
  m.end.clear();
  m.dev.clear();
  m.plan = nullptr;
}

}  // namespace lina::hw

#include "hw/microbench.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>
#include <functional>

#include "hw/check.hpp"
#include "hw/device.hpp"
#include "hw/kernels.hpp"

namespace lina::hw {
namespace {

// Times `body` (enqueued on `s`) `reps` times after `warmup` runs; seconds per run.
std::vector<double> time_runs(cudaStream_t s, int warmup, int reps, const std::function<void()>& body, const Where& w) {
  cudaEvent_t a, b;
  LINA_CHECK(cudaEventCreate(&a), w);
  LINA_CHECK(cudaEventCreate(&b), w);
  for (int i = 0; i < warmup; ++i) body();
  std::vector<double> out;
  for (int i = 0; i < reps; ++i) {
    LINA_CHECK(cudaEventRecord(a, s), w);
    body();
    LINA_CHECK(cudaEventRecord(b, s), w);
    LINA_CHECK(cudaEventSynchronize(b), w);
    float ms = 0;
    LINA_CHECK(cudaEventElapsedTime(&ms, a, b), w);
    out.push_back(std::max(static_cast<double>(ms) * 1e-3, 1e-9));
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return out;
}

struct Buffer {
  void* p = nullptr;
  explicit Buffer(size_t bytes, const Where& w) {
    LINA_CHECK(cudaMalloc(&p, bytes), w);
    LINA_CHECK(fill_random_bf16(p, static_cast<int64_t>(bytes), bytes, nullptr), w);
  }
  ~Buffer() { cudaFree(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

void gemm(cublasHandle_t h, const GemmShape& g, void* a, void* b, void* c, const Where& w) {
  const float alpha = 1.0f, beta = 0.0f;
  const auto M = static_cast<int>(g.m), N = static_cast<int>(g.n), K = static_cast<int>(g.k);
  LINA_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &alpha, a, CUDA_R_16BF, M, b, CUDA_R_16BF, K, &beta, c,
                          CUDA_R_16BF, M, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             w);
}

}  // namespace

Measurements run_microbenchmarks(const MicrobenchOptions& o) {
  Measurements m;
  m.gpu = o.gpu;
  m.peak_bf16_flops = o.peak_bf16_flops;
  const SystemInfo si = system_info();
  if (si.devices.empty()) throw HwError("no CUDA device: " + si.query.reason);
  m.device_name = si.devices[0].name;
  m.source = fmt::format("lina hw calibrate on {} x {}, CUDA runtime {}, driver {}, cuBLAS {}, NCCL {}",
                         si.devices.size(), m.device_name, version_text(si.runtime_version),
                         version_text(si.driver_version), si.cublas_version, si.nccl_version);
  const Where w{0, ""};
  LINA_CHECK(cudaSetDevice(0), w);
  cudaStream_t s, s2;
  LINA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), w);
  LINA_CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking), w);
  cublasHandle_t h;
  LINA_CHECK(cublasCreate(&h), w);
  LINA_CHECK(cublasSetStream(h, s), w);

  // Launch overhead.
  auto empties = time_runs(
      s, o.warmup, o.reps,
      [&] {
        for (int i = 0; i < 1000; ++i) LINA_CHECK(empty_kernel(s), w);
      },
      w);
  m.launch_overhead_s = median(empties) / 1000;

  // GEMMs.
  const std::vector<int64_t> hidden =
      o.quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{768, 1024, 2048, 4096};
  const std::vector<int64_t> tokens =
      o.quick ? std::vector<int64_t>{512, 8192} : std::vector<int64_t>{128, 512, 2048, 8192, 32768};
  const std::vector<int64_t> experts = {16, 64};
  std::vector<std::pair<OpKind, GemmShape>> shapes;
  for (int64_t d : hidden) {
    for (int64_t t : tokens) {
      shapes.push_back({OpKind::kGemm, GemmShape{t, 4 * d, d}});
      if (d == hidden.front()) {
        for (int64_t e : experts) shapes.push_back({OpKind::kGate, GemmShape{t, e, d}});
      }
    }
  }
  int64_t max_a = 0, max_b = 0, max_c = 0;
  for (const auto& [op, g] : shapes) {
    max_a = std::max(max_a, g.m * g.k);
    max_b = std::max(max_b, g.k * g.n);
    max_c = std::max(max_c, g.m * g.n);
  }
  {
    Buffer a(static_cast<size_t>(max_a) * 2, w), b(static_cast<size_t>(max_b) * 2, w),
        c(static_cast<size_t>(max_c) * 2, w);
    for (const auto& [op, g] : shapes) {
      KernelMeasurement k;
      k.op = op;
      k.shape = g;
      k.flops = g.flops();
      k.bytes = g.bytes(2);
      k.seconds = time_runs(
          s, o.warmup, o.reps, [&] { gemm(h, g, a.p, b.p, c.p, w); }, w);
      m.kernels.push_back(std::move(k));
    }
  }
  // Elementwise.
  {
    const int64_t top = o.quick ? (int64_t{1} << 26) : (int64_t{1} << 30);
    Buffer buf(static_cast<size_t>(top), w);
    for (int64_t bytes = 4096; bytes <= top; bytes *= 4) {
      KernelMeasurement k;
      k.op = OpKind::kElementwise;
      k.bytes = static_cast<double>(bytes);
      char* base = static_cast<char*>(buf.p);
      k.seconds = time_runs(
          s, o.warmup, o.reps, [&] { LINA_CHECK(scale_bf16(base, base + bytes / 2, bytes / 4, s), w); }, w);
      m.kernels.push_back(std::move(k));
    }
  }
  // Host to device over PCIe.
  {
    const int64_t top = o.quick ? (int64_t{1} << 24) : (int64_t{1} << 28);
    void* host = nullptr;
    LINA_CHECK(cudaMallocHost(&host, static_cast<size_t>(top)), w);
    Buffer dev(static_cast<size_t>(top), w);
    for (int64_t bytes = 65536; bytes <= top; bytes *= 4) {
      LinkMeasurement l;
      l.link_class = "host_pcie";
      l.op = "copy";
      l.bytes = l.wire_bytes = static_cast<double>(bytes);
      l.steps = 1;
      l.seconds = time_runs(
          s, o.warmup, o.reps,
          [&] { LINA_CHECK(cudaMemcpyAsync(dev.p, host, static_cast<size_t>(bytes), cudaMemcpyHostToDevice, s), w); },
          w);
      m.links.push_back(std::move(l));
    }
    cudaFreeHost(host);
  }
  // NCCL over all GPUs (one thread, grouped calls), and interference on device 0.
  const int n = static_cast<int>(si.devices.size());
  std::vector<int> devs(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) devs[static_cast<size_t>(i)] = i;
  std::vector<ncclComm_t> comms(static_cast<size_t>(n));
  LINA_CHECK(ncclCommInitAll(comms.data(), n, devs.data()), w);
  std::vector<cudaStream_t> streams(static_cast<size_t>(n));
  std::vector<void*> sendb(static_cast<size_t>(n)), recvb(static_cast<size_t>(n));
  const int64_t top = o.quick ? (int64_t{1} << 24) : (int64_t{1} << 28);
  for (int i = 0; i < n; ++i) {
    const Where wi{i, ""};
    LINA_CHECK(cudaSetDevice(i), wi);
    LINA_CHECK(cudaStreamCreateWithFlags(&streams[static_cast<size_t>(i)], cudaStreamNonBlocking), wi);
    LINA_CHECK(cudaMalloc(&sendb[static_cast<size_t>(i)], static_cast<size_t>(top)), wi);
    LINA_CHECK(cudaMalloc(&recvb[static_cast<size_t>(i)], static_cast<size_t>(top)), wi);
    LINA_CHECK(fill_random_bf16(sendb[static_cast<size_t>(i)], top, 11 + static_cast<uint64_t>(i), nullptr), wi);
  }
  auto all_ranks = [&](const std::function<void(int)>& call) {
    LINA_CHECK(ncclGroupStart(), w);
    for (int i = 0; i < n; ++i) call(i);
    LINA_CHECK(ncclGroupEnd(), w);
  };
  auto allreduce = [&](int64_t bytes) {
    all_ranks([&](int i) {
      const auto u = static_cast<size_t>(i);
      LINA_CHECK(ncclAllReduce(sendb[u], recvb[u], static_cast<size_t>(bytes / 2), ncclBfloat16, ncclSum, comms[u],
                               streams[u]),
                 Where{i, ""}, comms[u]);
    });
  };
  auto alltoall = [&](int64_t bytes) {
    const int64_t chunk = bytes / n;
    all_ranks([&](int i) {
      const auto u = static_cast<size_t>(i);
      for (int j = 0; j < n; ++j) {
        LINA_CHECK(ncclSend(static_cast<char*>(sendb[u]) + j * chunk, static_cast<size_t>(chunk), ncclUint8, j,
                            comms[u], streams[u]),
                   Where{i, ""}, comms[u]);
        LINA_CHECK(ncclRecv(static_cast<char*>(recvb[u]) + j * chunk, static_cast<size_t>(chunk), ncclUint8, j,
                            comms[u], streams[u]),
                   Where{i, ""}, comms[u]);
      }
    });
  };
  // Times a collective over all GPUs: the slowest GPU's time between events around it.
  auto time_collective = [&](const std::function<void()>& body) {
    std::vector<cudaEvent_t> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      LINA_CHECK(cudaSetDevice(i), Where{i, ""});
      LINA_CHECK(cudaEventCreate(&a[static_cast<size_t>(i)]), Where{i, ""});
      LINA_CHECK(cudaEventCreate(&b[static_cast<size_t>(i)]), Where{i, ""});
    }
    for (int r = 0; r < o.warmup; ++r) body();
    std::vector<double> out;
    for (int r = 0; r < o.reps; ++r) {
      for (int i = 0; i < n; ++i) {
        LINA_CHECK(cudaSetDevice(i), Where{i, ""});
        LINA_CHECK(cudaStreamSynchronize(streams[static_cast<size_t>(i)]), Where{i, ""});
        LINA_CHECK(cudaEventRecord(a[static_cast<size_t>(i)], streams[static_cast<size_t>(i)]), Where{i, ""});
      }
      body();
      double worst = 0;
      for (int i = 0; i < n; ++i) {
        LINA_CHECK(cudaSetDevice(i), Where{i, ""});
        LINA_CHECK(cudaEventRecord(b[static_cast<size_t>(i)], streams[static_cast<size_t>(i)]), Where{i, ""});
        LINA_CHECK(cudaEventSynchronize(b[static_cast<size_t>(i)]), Where{i, ""});
        float ms = 0;
        LINA_CHECK(cudaEventElapsedTime(&ms, a[static_cast<size_t>(i)], b[static_cast<size_t>(i)]), Where{i, ""});
        worst = std::max(worst, static_cast<double>(ms) * 1e-3);
      }
      out.push_back(std::max(worst, 1e-9));
    }
    for (int i = 0; i < n; ++i) {
      cudaEventDestroy(a[static_cast<size_t>(i)]);
      cudaEventDestroy(b[static_cast<size_t>(i)]);
    }
    return out;
  };
  if (n >= 2) {
    for (int64_t bytes = 65536; bytes <= top; bytes *= 4) {
      LinkMeasurement ar = ring_allreduce_record(n, static_cast<double>(bytes));
      ar.seconds = time_collective([&] { allreduce(bytes); });
      m.links.push_back(ar);
      LinkMeasurement aa = alltoall_record(n, static_cast<double>(bytes));
      aa.seconds = time_collective([&] { alltoall(bytes); });
      m.links.push_back(aa);
    }
  }
  {
    LINA_CHECK(cudaSetDevice(0), w);
    const GemmShape g = o.quick ? GemmShape{2048, 2048, 1024} : GemmShape{4096, 4096, 1024};
    Buffer a(static_cast<size_t>(g.m * g.k) * 2, w), b(static_cast<size_t>(g.k * g.n) * 2, w),
        c(static_cast<size_t>(g.m * g.n) * 2, w);
    m.gemm_alone_s = time_runs(
        s, o.warmup, o.reps, [&] { gemm(h, g, a.p, b.p, c.p, w); }, w);
    // The allreduce is enqueued first on every GPU so that it runs for the whole GEMM (it is much longer).
    m.gemm_with_comm_s = time_runs(
        s, o.warmup, o.reps,
        [&] {
          allreduce(top);
          LINA_CHECK(cudaSetDevice(0), w);
          gemm(h, g, a.p, b.p, c.p, w);
        },
        w);
    for (int i = 0; i < n; ++i) {
      LINA_CHECK(cudaSetDevice(i), Where{i, ""});
      LINA_CHECK(cudaDeviceSynchronize(), Where{i, ""});
    }
  }
  for (int i = 0; i < n; ++i) {
    cudaSetDevice(i);
    LINA_CHECK(ncclCommDestroy(comms[static_cast<size_t>(i)]), Where{i, ""});
    cudaFree(sendb[static_cast<size_t>(i)]);
    cudaFree(recvb[static_cast<size_t>(i)]);
    cudaStreamDestroy(streams[static_cast<size_t>(i)]);
  }
  cudaSetDevice(0);
  cublasDestroy(h);
  cudaStreamDestroy(s);
  cudaStreamDestroy(s2);
  return m;
}

}  // namespace lina::hw

// The few device kernels the backend needs besides cuBLAS and NCCL (hw/kernels.cu). Each returns the launch error.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace lina::hw {

// Fills `bytes` of device memory with pseudo-random bf16 values in [-1, 1) from `seed` (a hash per element).
cudaError_t fill_random_bf16(void* data, int64_t bytes, uint64_t seed, cudaStream_t stream);
// A streaming elementwise kernel: y[i] = x[i] * 1.0001 + 0.5 over `elements` bf16 values (reads and writes
// 2 * elements * 2 bytes). x and y may alias.
cudaError_t scale_bf16(const void* x, void* y, int64_t elements, cudaStream_t stream);
// An empty kernel (launch overhead).
cudaError_t empty_kernel(cudaStream_t stream);

}  // namespace lina::hw

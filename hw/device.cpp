#include "hw/device.hpp"

#include <cuda_runtime_api.h>

namespace lina::hw {

DeviceQuery query_devices() {
  DeviceQuery q;
  cudaError_t err = cudaGetDeviceCount(&q.count);
  if (err != cudaSuccess) {
    q.count = 0;
    q.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
  } else if (q.count == 0) {
    q.reason = "no CUDA device visible";
  }
  return q;
}

}  // namespace lina::hw

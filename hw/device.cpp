#include "hw/device.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nccl.h>

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

std::string version_text(int v) { return v > 0 ? fmt::format("{}.{}", v / 1000, (v % 1000) / 10) : "unknown"; }

SystemInfo system_info() {
  SystemInfo s;
  s.query = query_devices();
  cudaDriverGetVersion(&s.driver_version);
  cudaRuntimeGetVersion(&s.runtime_version);
  ncclGetVersion(&s.nccl_version);
  int major = 0, minor = 0, patch = 0;
  cublasGetProperty(MAJOR_VERSION, &major);
  cublasGetProperty(MINOR_VERSION, &minor);
  cublasGetProperty(PATCH_LEVEL, &patch);
  s.cublas_version = major * 10000 + minor * 100 + patch;
  for (int d = 0; d < s.query.count; ++d) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
    DeviceInfo i;
    i.index = d;
    i.name = p.name;
    i.memory_bytes = static_cast<double>(p.totalGlobalMem);
    i.cc_major = p.major;
    i.cc_minor = p.minor;
    i.sms = p.multiProcessorCount;
    i.pci_bus = fmt::format("{:04x}:{:02x}:{:02x}", p.pciDomainID, p.pciBusID, p.pciDeviceID);
    s.devices.push_back(i);
  }
  const auto n = static_cast<int>(s.devices.size());
  s.links.assign(static_cast<size_t>(n), std::vector<std::string>(static_cast<size_t>(n), "-"));
  for (int a = 0; a < n; ++a) {
    for (int b = 0; b < n; ++b) {
      if (a == b) continue;
      int access = 0, atomics = 0;
      cudaDeviceGetP2PAttribute(&access, cudaDevP2PAttrAccessSupported, a, b);
      cudaDeviceGetP2PAttribute(&atomics, cudaDevP2PAttrNativeAtomicSupported, a, b);
      s.links[static_cast<size_t>(a)][static_cast<size_t>(b)] = !access ? "none" : atomics ? "nvlink" : "pcie";
    }
  }
  return s;
}

std::pair<int, int> stream_priority_range() {
  int least = 0, greatest = 0;
  if (cudaDeviceGetStreamPriorityRange(&least, &greatest) != cudaSuccess) return {0, 0};
  return {least, greatest};
}

std::string gpu_preset_for(const std::string& name, double memory_bytes) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return "H200";
  if (has("H100")) return "H100-SXM";
  if (has("A100") && memory_bytes < 60e9) return "A100-40GB";
  return "";
}

}  // namespace lina::hw

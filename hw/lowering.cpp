#include "hw/lowering.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace lina::hw {
namespace {

int64_t round_up8(double x) {
  const auto v = static_cast<int64_t>(std::ceil(x / 8.0)) * 8;
  return std::max<int64_t>(8, v);
}

int64_t to_bytes(double b) { return b > 0 ? static_cast<int64_t>(std::llround(b)) : 0; }

int group_of(std::vector<std::vector<int>>& groups, std::vector<int> ranks) {
  std::sort(ranks.begin(), ranks.end());
  for (size_t g = 0; g < groups.size(); ++g) {
    if (groups[g] == ranks) return static_cast<int>(g);
  }
  groups.push_back(std::move(ranks));
  return static_cast<int>(groups.size() - 1);
}

}  // namespace

GemmShape gemm_shape(double flops, double bytes, int64_t k, int elem_bytes) {
  if (k < 1) throw std::invalid_argument("gemm_shape: inner dimension must be >= 1");
  GemmShape s;
  s.k = k;
  if (!(flops > 0)) return s;  // nothing to run
  const double kd = static_cast<double>(k);
  const double product = flops / (2 * kd);                 // m * n
  const double sum = (bytes / elem_bytes - product) / kd;  // m + n
  const double disc = sum * sum - 4 * product;
  double n_real;
  if (disc >= 0 && sum > 0 && (sum - std::sqrt(disc)) / 2 >= 1) {
    n_real = (sum - std::sqrt(disc)) / 2;  // the smaller side; m the larger
  } else {
    n_real = std::sqrt(product);  // several GEMMs fused in one task: an equivalent square GEMM
  }
  s.n = round_up8(n_real);
  s.m = std::max<int64_t>(1, static_cast<int64_t>(std::llround(product / static_cast<double>(s.n))));
  return s;
}

const char* work_kind_name(DeviceWork::Kind k) {
  switch (k) {
    case DeviceWork::Kind::kGemm:
      return "gemm";
    case DeviceWork::Kind::kMemory:
      return "memory";
    case DeviceWork::Kind::kHost:
      return "host";
    case DeviceWork::Kind::kAllToAll:
      return "alltoall";
    case DeviceWork::Kind::kAllReduce:
      return "allreduce";
    case DeviceWork::Kind::kReduceScatter:
      return "reduce_scatter";
    case DeviceWork::Kind::kAllGather:
      return "all_gather";
    case DeviceWork::Kind::kHostCopy:
      return "host_copy";
  }
  return "?";
}

LoweredPlan lower_plan(const Plan& plan, const LoweringOptions& o) {
  if (o.greatest_priority > o.least_priority) throw std::invalid_argument("lower_plan: greatest > least priority");
  LoweredPlan lp;
  lp.work.resize(plan.tasks.size());
  lp.buffers.resize(static_cast<size_t>(plan.ranks));
  std::vector<int> all(static_cast<size_t>(plan.ranks));
  for (int r = 0; r < plan.ranks; ++r) all[static_cast<size_t>(r)] = r;
  lp.groups.push_back(all);
  std::array<int, kStreamCount> best_class;
  best_class.fill(-1);

  for (size_t id = 0; id < plan.tasks.size(); ++id) {
    const Task& t = plan.tasks[id];
    DeviceWork& w = lp.work[id];
    auto& buf = lp.buffers[static_cast<size_t>(t.rank)];
    if (t.kind == TaskKind::kHost) {
      w.kind = DeviceWork::Kind::kHost;
      w.host_seconds = t.host_seconds;
      continue;
    }
    if (t.kind == TaskKind::kCompute) {
      if (uses_tensor_cores(t.op)) {
        w.kind = DeviceWork::Kind::kGemm;
        w.gemm = gemm_shape(t.flops, t.bytes, o.hidden, o.elem_bytes);
        const double extra = t.bytes - w.gemm.bytes(o.elem_bytes);
        if (w.gemm.m > 0 && extra > 0.05 * t.bytes) w.memory_bytes = to_bytes(extra);
        const int64_t e = o.elem_bytes;
        buf.gemm_a = std::max(buf.gemm_a, w.gemm.m * w.gemm.k * e);
        buf.gemm_b = std::max(buf.gemm_b, w.gemm.k * w.gemm.n * e);
        buf.gemm_c = std::max(buf.gemm_c, w.gemm.m * w.gemm.n * e);
      } else {
        w.kind = DeviceWork::Kind::kMemory;
        w.memory_bytes = to_bytes(t.bytes);
      }
      buf.memory = std::max(buf.memory, w.memory_bytes);
      continue;
    }
    const Collective& c = plan.collectives[static_cast<size_t>(t.collective)];
    auto& bc = best_class[static_cast<size_t>(t.stream)];
    bc = bc < 0 ? c.priority_class : std::min(bc, c.priority_class);
    const auto P = c.ranks.size();
    switch (c.kind) {
      case CommKind::kAllToAll: {
        w.kind = DeviceWork::Kind::kAllToAll;
        w.group = 0;
        const auto pos = static_cast<size_t>(std::find(c.ranks.begin(), c.ranks.end(), t.rank) - c.ranks.begin());
        int64_t sent = 0, received = 0;
        for (size_t j = 0; j < P; ++j) {
          if (j == pos) {
            w.local_bytes = to_bytes(c.bytes[pos * P + pos]);
            continue;
          }
          const int64_t s = to_bytes(c.bytes[pos * P + j]), r = to_bytes(c.bytes[j * P + pos]);
          if (s > 0) w.p2p.push_back(P2POp{true, c.ranks[j], s});
          if (r > 0) w.p2p.push_back(P2POp{false, c.ranks[j], r});
          sent += s;
          received += r;
        }
        buf.send = std::max(buf.send, sent + w.local_bytes);
        buf.recv = std::max(buf.recv, received + w.local_bytes);
        break;
      }
      case CommKind::kAllReduce:
      case CommKind::kReduceScatter:
      case CommKind::kAllGather: {
        w.kind = c.kind == CommKind::kAllReduce       ? DeviceWork::Kind::kAllReduce
                 : c.kind == CommKind::kReduceScatter ? DeviceWork::Kind::kReduceScatter
                                                      : DeviceWork::Kind::kAllGather;
        w.group = group_of(lp.groups, c.ranks);
        // Whole multiples of the group size so that reduce-scatter and all-gather split evenly.
        const auto p = static_cast<int64_t>(P);
        const int64_t elems = to_bytes(c.bytes.empty() ? 0 : c.bytes[0] / o.elem_bytes);
        w.elements = (elems + p - 1) / p * p;
        buf.reduce = std::max(buf.reduce, w.elements * o.elem_bytes);
        break;
      }
      case CommKind::kHostLoad:
        w.kind = DeviceWork::Kind::kHostCopy;
        w.elements = to_bytes(c.bytes.empty() ? 0 : c.bytes[0]);
        buf.host = std::max(buf.host, w.elements);
        break;
    }
  }
  for (int s = 0; s < kStreamCount; ++s) {
    const int cls = best_class[static_cast<size_t>(s)];
    lp.stream_priority[static_cast<size_t>(s)] =
        cls < 0 ? o.least_priority : std::min(o.least_priority, o.greatest_priority + cls);
  }
  return lp;
}

std::string describe(const DeviceWork& w) {
  switch (w.kind) {
    case DeviceWork::Kind::kGemm:
      return fmt::format("gemm {}x{}x{} (+{} B)", w.gemm.m, w.gemm.n, w.gemm.k, w.memory_bytes);
    case DeviceWork::Kind::kMemory:
      return fmt::format("memory {} B", w.memory_bytes);
    case DeviceWork::Kind::kHost:
      return fmt::format("host {:g} s", w.host_seconds);
    case DeviceWork::Kind::kAllToAll: {
      std::string s = fmt::format("alltoall local {} B", w.local_bytes);
      for (const auto& op : w.p2p) s += fmt::format(", {} {} {} B", op.send ? "send" : "recv", op.peer, op.bytes);
      return s;
    }
    default:
      return fmt::format("{} {} elements group {}", work_kind_name(w.kind), w.elements, w.group);
  }
}

}  // namespace lina::hw

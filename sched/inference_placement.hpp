// Expert placement for MoE inference (DESIGN.md 3.2): which devices hold which experts of one MoE layer, and how a
// layer's tokens are split over them. Used by every inference policy: the static DeepSpeed placement, Lina's
// popularity-based placement (from estimated or actual counts), the oracle and replicate-history.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lina {

struct Placement {
  int experts = 0;
  int devices = 0;
  // Per expert: the devices that hold a replica (distinct, ascending, never empty). Replicas split their expert's
  // tokens evenly: a source sends 1/n of its tokens for the expert to each of the n replicas.
  std::vector<std::vector<int>> replicas;
  // > 0: DeepSpeed's expert-parallel groups instead: devices form groups of `group_size` consecutive ones, each
  // group holds every expert once, and a source sends its tokens to the copy inside its own group.
  int group_size = 0;

  // Calls f(device, share) for the copies that get a source's tokens for expert e (shares sum to 1).
  template <class F>
  void targets(int source, int e, F&& f) const {
    const auto& reps = replicas[static_cast<size_t>(e)];
    if (group_size > 0) {
      for (int d : reps) {
        if (d / group_size == source / group_size) return f(d, 1.0);
      }
    }
    for (int d : reps) f(d, 1.0 / static_cast<double>(reps.size()));
  }

  // Per device: the experts it holds (ascending).
  std::vector<std::vector<int>> hosted() const;
  bool holds(int device, int expert) const;
  bool operator==(const Placement&) const = default;
};

// DeepSpeed: expert e on device e mod N, one replica. With fewer experts than devices (N a multiple of E), DeepSpeed's
// layout instead: expert-parallel groups of E consecutive devices, expert e on device e of every group, and tokens
// stay inside their group (the training layout, sched/training_plan.hpp); DESIGN.md 3.2's e mod N would leave N - E
// devices without an expert and send every token to the first E.
Placement static_placement(int experts, int devices);

// Which (device, expert) weights are in a device's memory: [device * experts + expert].
struct Residency {
  int experts = 0;
  int devices = 0;
  std::vector<uint8_t> resident;
  bool has(int device, int expert) const {
    return resident[static_cast<size_t>(device) * static_cast<size_t>(experts) + static_cast<size_t>(expert)] != 0;
  }
  void set(int device, int expert) {
    resident[static_cast<size_t>(device) * static_cast<size_t>(experts) + static_cast<size_t>(expert)] = 1;
  }
  void clear(int device, int expert) {
    resident[static_cast<size_t>(device) * static_cast<size_t>(experts) + static_cast<size_t>(expert)] = 0;
  }
};
// What the static placement holds: every device keeps its home experts (e mod N, or its group's copy) of every layer.
Residency home_residency(int experts, int devices);

// Lina's placement (paper section 5.2; DESIGN.md 3.2) from expected tokens per expert (`load`, any scale):
//  1. devices per expert s_e = N * load_e / sum(load);
//  2. a popular expert (s_e >= 1) gets floor(s_e) devices of its own;
//  3. the unpopular ones (0 < s_e < 1) are packed first-fit decreasing into devices of capacity 1, at most
//     `max_per_device` experts per device;
//  4. while devices are left, the unit (a popular expert, or a packed device's set of experts) with the highest
//     expected load per copy gets one more copy; while too many are needed, the popular expert whose per-copy load
//     grows least loses a copy, else the two lightest packed devices merge;
//  5. experts nobody is expected to pick are spread over the devices with a free slot (fewest experts, then least
//     expected load), else placed on a seeded random device.
// Copies go to devices where their experts are already resident when `resident` is given (fewer weight loads);
// among equally good devices, to the node with the least expected load so far when `devices_per_node` > 0 (the
// copies of a hot expert spread over nodes instead of crowding one node's NIC), then to the lowest device id.
// Deterministic for a seed. All loads zero: the static placement.
Placement popularity_placement(std::span<const double> load, int devices, int max_per_device, uint64_t seed,
                               const Residency* resident = nullptr, int devices_per_node = 0);

// (device, expert) pairs that `p` places on a device not holding the expert's weights.
std::vector<std::pair<int, int>> missing_weights(const Placement& p, const Residency& r);

// Top-2 comparison (DESIGN.md 3.2 Phase 2; the same semantics as `lina trace estimate`): the two experts with the
// largest estimates (ties: lower id) are a hit when their actual counts are the two largest actual counts.
// `ordered` additionally asks that the larger estimate is the larger actual count (the "top-2 list exact").
bool top2_hit(std::span<const double> estimate, std::span<const double> actual, bool ordered = false);

}  // namespace lina

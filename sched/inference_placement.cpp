#include "sched/inference_placement.hpp"

#include <algorithm>
#include <boost/container/small_vector.hpp>
#include <cmath>
#include <numeric>
#include <random>
#include <stdexcept>

#include "sched/random.hpp"

namespace lina {

std::vector<std::vector<int>> Placement::hosted() const {
  std::vector<std::vector<int>> h(static_cast<size_t>(devices));
  for (int e = 0; e < experts; ++e) {
    for (int d : replicas[static_cast<size_t>(e)]) h[static_cast<size_t>(d)].push_back(e);
  }
  return h;
}

bool Placement::holds(int device, int expert) const {
  const auto& r = replicas[static_cast<size_t>(expert)];
  return std::find(r.begin(), r.end(), device) != r.end();
}

Placement static_placement(int experts, int devices) {
  Placement p;
  p.experts = experts;
  p.devices = devices;
  p.replicas.resize(static_cast<size_t>(experts));
  if (experts < devices && devices % experts == 0) {
    p.group_size = experts;
    for (int e = 0; e < experts; ++e) {
      for (int d = e; d < devices; d += experts) p.replicas[static_cast<size_t>(e)].push_back(d);
    }
    return p;
  }
  for (int e = 0; e < experts; ++e) p.replicas[static_cast<size_t>(e)] = {e % devices};
  return p;
}

Residency home_residency(int experts, int devices) {
  Residency r;
  r.experts = experts;
  r.devices = devices;
  r.resident.assign(static_cast<size_t>(experts) * static_cast<size_t>(devices), 0);
  const Placement home = static_placement(experts, devices);
  for (int e = 0; e < experts; ++e) {
    for (int d : home.replicas[static_cast<size_t>(e)]) r.set(d, e);
  }
  return r;
}

namespace {

// A set of experts placed together on `copies` devices; each copy expects load / copies.
// Experts of a unit and of a device: at most max_per_device (4 by default), kept inline. A placement runs at every
// gate of every batch, and these were most of its allocations.
using ExpertList = boost::container::small_vector<int, 4>;

struct Unit {
  ExpertList experts;
  double load = 0;  // in devices (sum of s_e)
  int copies = 1;
  double per_copy() const { return load / copies; }
};

}  // namespace

Placement popularity_placement(std::span<const double> load, int N, int max_per_device, uint64_t seed,
                               const Residency* resident, int devices_per_node) {
  const int E = static_cast<int>(load.size());
  if (N <= 0 || E <= 0) throw std::invalid_argument("popularity_placement: no devices or experts");
  max_per_device = std::max(1, max_per_device);
  double total = 0;
  for (double x : load) total += std::max(0.0, x);
  if (!(total > 0)) return static_placement(E, N);

  std::vector<double> s(static_cast<size_t>(E));
  for (int e = 0; e < E; ++e) s[static_cast<size_t>(e)] = N * std::max(0.0, load[static_cast<size_t>(e)]) / total;

  std::vector<Unit> units;
  std::vector<int> small, zero;
  for (int e = 0; e < E; ++e) {
    double x = s[static_cast<size_t>(e)];
    if (x >= 1.0 - 1e-12) {
      units.push_back(Unit{{e}, x, std::max(1, static_cast<int>(std::floor(x + 1e-9)))});
    } else if (x > 0) {
      small.push_back(e);
    } else {
      zero.push_back(e);
    }
  }
  // First-fit decreasing of the unpopular experts into devices of capacity 1.
  std::stable_sort(small.begin(), small.end(),
                   [&](int a, int b) { return s[static_cast<size_t>(a)] > s[static_cast<size_t>(b)]; });
  const size_t first_bin = units.size();
  for (int e : small) {
    double x = s[static_cast<size_t>(e)];
    bool placed = false;
    for (size_t u = first_bin; u < units.size(); ++u) {
      if (static_cast<int>(units[u].experts.size()) < max_per_device && units[u].load + x <= 1.0 + 1e-9) {
        units[u].experts.push_back(e);
        units[u].load += x;
        placed = true;
        break;
      }
    }
    if (!placed) units.push_back(Unit{{e}, x, 1});
  }
  auto used = [&] {
    int n = 0;
    for (const auto& u : units) n += u.copies;
    return n;
  };
  // Too many devices: take a copy from the popular expert whose per-copy load grows least, else merge the two
  // lightest single-copy units.
  while (used() > N) {
    int best = -1;
    double best_after = 0;
    for (size_t u = 0; u < units.size(); ++u) {
      if (units[u].copies < 2) continue;
      double after = units[u].load / (units[u].copies - 1);
      if (best < 0 || after < best_after) {
        best = static_cast<int>(u);
        best_after = after;
      }
    }
    if (best >= 0) {
      --units[static_cast<size_t>(best)].copies;
      continue;
    }
    std::vector<size_t> idx(units.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return units[a].load < units[b].load; });
    size_t a = std::min(idx[0], idx[1]), b = std::max(idx[0], idx[1]);
    units[a].experts.insert(units[a].experts.end(), units[b].experts.begin(), units[b].experts.end());
    units[a].load += units[b].load;
    units.erase(units.begin() + static_cast<std::ptrdiff_t>(b));
  }
  // Devices left: one more copy for the unit with the highest load per copy (ties: the earlier unit).
  while (used() < N && !units.empty()) {
    size_t best = 0;
    for (size_t u = 1; u < units.size(); ++u) {
      if (units[u].per_copy() > units[best].per_copy() + 1e-12) best = u;
    }
    ++units[best].copies;
  }

  // Rebalancing (beyond the paper's capacity-1 packing, which leaves the load as it is when every unpopular expert
  // is above half a device): while the two lightest single-copy units fit on one device together with a load
  // below the heaviest per-copy load, merge them and give the freed device to the heaviest unit.
  while (units.size() >= 2) {
    size_t h = 0;
    for (size_t u = 1; u < units.size(); ++u) {
      if (units[u].per_copy() > units[h].per_copy() + 1e-12) h = u;
    }
    size_t a = units.size(), b = units.size();
    for (size_t u = 0; u < units.size(); ++u) {
      if (units[u].copies != 1 || u == h) continue;
      if (a == units.size() || units[u].load < units[a].load) {
        b = a;
        a = u;
      } else if (b == units.size() || units[u].load < units[b].load) {
        b = u;
      }
    }
    if (b == units.size()) break;
    const bool fits = static_cast<int>(units[a].experts.size() + units[b].experts.size()) <= max_per_device;
    if (!fits || units[a].load + units[b].load >= units[h].per_copy() - 1e-12) break;
    ++units[h].copies;
    size_t lo = std::min(a, b), hi = std::max(a, b);
    units[lo].experts.insert(units[lo].experts.end(), units[hi].experts.begin(), units[hi].experts.end());
    units[lo].load += units[hi].load;
    units.erase(units.begin() + static_cast<std::ptrdiff_t>(hi));
  }
  // Copies to devices: heaviest copies first, each to the free device holding most of its experts (lowest id).
  struct Copy {
    size_t unit;
    double load;
  };
  std::vector<Copy> copies;
  for (size_t u = 0; u < units.size(); ++u) {
    for (int c = 0; c < units[u].copies; ++c) copies.push_back({u, units[u].per_copy()});
  }
  std::stable_sort(copies.begin(), copies.end(), [](const Copy& a, const Copy& b) { return a.load > b.load; });
  std::vector<int> device_unit(static_cast<size_t>(N), -1);
  std::vector<double> device_load(static_cast<size_t>(N), 0.0);
  std::vector<ExpertList> device_experts(static_cast<size_t>(N));
  // Two passes: copies that can land where their weights already are, then the others on the lowest free devices.
  std::vector<uint8_t> assigned(copies.size(), 0);
  const int per_node = devices_per_node > 0 ? devices_per_node : N;
  std::vector<double> node_load(static_cast<size_t>((N + per_node - 1) / per_node), 0.0);
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < copies.size(); ++i) {
      if (assigned[i]) continue;
      const Copy& c = copies[i];
      int best = -1, best_score = pass == 0 ? 0 : -1;
      for (int d = 0; d < N; ++d) {
        if (device_unit[static_cast<size_t>(d)] >= 0) continue;
        int score = 0;
        if (resident) {
          for (int e : units[c.unit].experts) score += resident->has(d, e) ? 1 : 0;
        }
        bool better = score > best_score;
        if (!better && best >= 0 && score == best_score && devices_per_node > 0) {
          better =
              node_load[static_cast<size_t>(d / per_node)] < node_load[static_cast<size_t>(best / per_node)] - 1e-12;
        }
        if (better) {
          best = d;
          best_score = score;
        }
      }
      if (best < 0) continue;
      assigned[i] = 1;
      device_unit[static_cast<size_t>(best)] = static_cast<int>(c.unit);
      device_load[static_cast<size_t>(best)] = c.load;
      node_load[static_cast<size_t>(best / per_node)] += c.load;
      device_experts[static_cast<size_t>(best)] = units[c.unit].experts;
    }
  }
  // Experts nobody is expected to pick: a device with a free slot (fewest experts, then least load; prefer one that
  // holds the weights), else a seeded random device.
  std::mt19937_64 rng(seed);
  for (int e : zero) {
    int best = -1;
    for (int d = 0; d < N; ++d) {
      auto n = device_experts[static_cast<size_t>(d)].size();
      if (static_cast<int>(n) >= max_per_device) continue;
      if (best < 0) {
        best = d;
        continue;
      }
      auto nb = device_experts[static_cast<size_t>(best)].size();
      bool res_d = resident && resident->has(d, e), res_b = resident && resident->has(best, e);
      if (n < nb || (n == nb && device_load[static_cast<size_t>(d)] < device_load[static_cast<size_t>(best)]) ||
          (n == nb && device_load[static_cast<size_t>(d)] == device_load[static_cast<size_t>(best)] && res_d &&
           !res_b)) {
        best = d;
      }
    }
    if (best < 0) best = static_cast<int>(uniform_below(rng, static_cast<uint64_t>(N)));  // portable, unlike std::
    device_experts[static_cast<size_t>(best)].push_back(e);
  }
  Placement p;
  p.experts = E;
  p.devices = N;
  p.replicas.resize(static_cast<size_t>(E));
  for (int d = 0; d < N; ++d) {
    for (int e : device_experts[static_cast<size_t>(d)]) p.replicas[static_cast<size_t>(e)].push_back(d);
  }
  for (int e = 0; e < E; ++e) {
    auto& r = p.replicas[static_cast<size_t>(e)];
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    if (r.empty()) throw std::logic_error("popularity_placement: an expert was not placed");
  }
  return p;
}

std::vector<std::pair<int, int>> missing_weights(const Placement& p, const Residency& r) {
  std::vector<std::pair<int, int>> out;
  for (int e = 0; e < p.experts; ++e) {
    for (int d : p.replicas[static_cast<size_t>(e)]) {
      if (!r.has(d, e)) out.emplace_back(d, e);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool top2_hit(std::span<const double> est, std::span<const double> actual, bool ordered) {
  const size_t E = est.size();
  if (E < 2 || actual.size() != E) return true;
  size_t a = 0;
  for (size_t e = 1; e < E; ++e) {
    if (est[e] > est[a]) a = e;
  }
  size_t b = a == 0 ? 1 : 0;
  for (size_t e = 0; e < E; ++e) {
    if (e != a && est[e] > est[b]) b = e;
  }
  double c1 = -1, c2 = -1;
  for (double c : actual) {
    if (c > c1) {
      c2 = c1;
      c1 = c;
    } else if (c > c2) {
      c2 = c;
    }
  }
  if (ordered) return actual[a] == c1 && actual[b] == c2;
  double x = std::max(actual[a], actual[b]), y = std::min(actual[a], actual[b]);
  return x == c1 && y == c2;
}

}  // namespace lina

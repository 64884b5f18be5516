#include "sched/units.hpp"

#include <fmt/format.h>

#include <array>
#include <charconv>
#include <cmath>
#include <utility>

#include "sched/error.hpp"

namespace lina {
namespace {

struct UnitDef {
  std::string_view name;
  double factor;  // multiply the number by this to get the base unit
};

constexpr double kKi = 1024.0, kMi = kKi * 1024, kGi = kMi * 1024, kTi = kGi * 1024;

constexpr std::array kBytes = {
    UnitDef{"B", 1},     UnitDef{"KB", 1e3},  UnitDef{"MB", 1e6},  UnitDef{"GB", 1e9},  UnitDef{"TB", 1e12},
    UnitDef{"KiB", kKi}, UnitDef{"MiB", kMi}, UnitDef{"GiB", kGi}, UnitDef{"TiB", kTi},
};
constexpr std::array kRates = {
    UnitDef{"bps", 1 / 8.0},   UnitDef{"Kbps", 1e3 / 8}, UnitDef{"Mbps", 1e6 / 8}, UnitDef{"Gbps", 1e9 / 8},
    UnitDef{"Tbps", 1e12 / 8}, UnitDef{"B/s", 1},        UnitDef{"KB/s", 1e3},     UnitDef{"MB/s", 1e6},
    UnitDef{"GB/s", 1e9},      UnitDef{"TB/s", 1e12},    UnitDef{"KiB/s", kKi},    UnitDef{"MiB/s", kMi},
    UnitDef{"GiB/s", kGi},     UnitDef{"TiB/s", kTi},
};
constexpr std::array kTimes = {
    UnitDef{"ps", 1e-12}, UnitDef{"ns", 1e-9}, UnitDef{"us", 1e-6}, UnitDef{"ms", 1e-3}, UnitDef{"s", 1},
};
constexpr std::array kFlops = {
    UnitDef{"FLOPS", 1},     UnitDef{"KFLOPS", 1e3},  UnitDef{"MFLOPS", 1e6},   UnitDef{"GFLOPS", 1e9},
    UnitDef{"TFLOPS", 1e12}, UnitDef{"PFLOPS", 1e15}, UnitDef{"FLOP/s", 1},     UnitDef{"KFLOP/s", 1e3},
    UnitDef{"MFLOP/s", 1e6}, UnitDef{"GFLOP/s", 1e9}, UnitDef{"TFLOP/s", 1e12}, UnitDef{"PFLOP/s", 1e15},
};

std::pair<const UnitDef*, const UnitDef*> units_of(Dimension d) {
  switch (d) {
    case Dimension::kBytes:
      return {kBytes.data(), kBytes.data() + kBytes.size()};
    case Dimension::kBytesPerSecond:
      return {kRates.data(), kRates.data() + kRates.size()};
    case Dimension::kSeconds:
      return {kTimes.data(), kTimes.data() + kTimes.size()};
    case Dimension::kFlopsPerSecond:
      return {kFlops.data(), kFlops.data() + kFlops.size()};
    case Dimension::kNumber:
      break;
  }
  return {nullptr, nullptr};
}

std::string_view example_of(Dimension d) {
  switch (d) {
    case Dimension::kBytes:
      return "a size such as \"30MB\" or \"4GiB\"";
    case Dimension::kBytesPerSecond:
      return "a bandwidth such as \"100Gbps\" or \"12.5GB/s\"";
    case Dimension::kSeconds:
      return "a time such as \"2us\" or \"1.5ms\"";
    case Dimension::kFlopsPerSecond:
      return "a compute rate such as \"312TFLOPS\"";
    case Dimension::kNumber:
      return "a plain number";
  }
  return "";
}

}  // namespace

std::string_view base_unit_name(Dimension d) {
  switch (d) {
    case Dimension::kBytes:
      return "bytes";
    case Dimension::kBytesPerSecond:
      return "bytes/s";
    case Dimension::kSeconds:
      return "s";
    case Dimension::kFlopsPerSecond:
      return "FLOP/s";
    case Dimension::kNumber:
      return "";
  }
  return "";
}

double parse_quantity(std::string_view text, Dimension d) {
  auto fail = [&]() -> double { throw InputError(fmt::format("expected {}, got '{}'", example_of(d), text)); };
  std::string_view s = text;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  double value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || !std::isfinite(value)) return fail();
  std::string_view unit(end, static_cast<size_t>(s.data() + s.size() - end));
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  if (d == Dimension::kNumber) {
    if (!unit.empty()) return fail();
    return value;
  }
  if (unit.empty()) {
    throw InputError(fmt::format("expected {} (the unit is missing), got '{}'", example_of(d), text));
  }
  auto [first, last] = units_of(d);
  for (auto* u = first; u != last; ++u) {
    if (u->name == unit) return value * u->factor;
  }
  return fail();
}

std::string format_quantity(double value, Dimension d) {
  if (d == Dimension::kNumber) return fmt::format("{:g}", value);
  // Pick the largest decimal unit that keeps the number >= 1 (bits for none: bandwidth prints in bytes/s).
  static constexpr std::array<std::pair<double, std::string_view>, 5> prefixes = {
      {{1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "K"}}};
  std::string_view suffix = d == Dimension::kBytes            ? "B"
                            : d == Dimension::kBytesPerSecond ? "B/s"
                            : d == Dimension::kFlopsPerSecond ? "FLOPS"
                                                              : "s";
  if (d == Dimension::kSeconds) {
    if (value == 0) return "0s";
    static constexpr std::array<std::pair<double, std::string_view>, 4> sub = {
        {{1, "s"}, {1e-3, "ms"}, {1e-6, "us"}, {1e-9, "ns"}}};
    for (auto [f, name] : sub) {
      if (std::fabs(value) >= f) return fmt::format("{:g}{}", value / f, name);
    }
    return fmt::format("{:g}ps", value / 1e-12);
  }
  for (auto [f, p] : prefixes) {
    if (d == Dimension::kBytes && f > 1e12) continue;
    if (std::fabs(value) >= f) return fmt::format("{:g}{}{}", value / f, p, suffix);
  }
  return fmt::format("{:g}{}", value, suffix);
}

}  // namespace lina

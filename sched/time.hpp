// Simulated and measured time: an integer number of picoseconds (DESIGN.md 2.1).
//
// int64 picoseconds covers +-106 days, far beyond any training step or inference run, and keeps event ordering exact
// and runs byte-for-byte deterministic (no floating-point drift in the event queue). Rates stay doubles; converting a
// duration computed from a rate rounds *up* to the next tick, so a transfer never finishes before its bytes are in.
// All conversions between seconds and ticks live in this file.
//
// The simulator's clock stops at kLimitTicks (2^62 ps, 53 days): a duration converted from seconds and an event
// scheduled past it throw TimeRangeError, an input error (a bandwidth or FLOP rate given without its unit is a few
// bytes or FLOPs per second). Below the limit the sum of two times cannot overflow.
#pragma once

#include <cmath>
#include <compare>
#include <cstdint>
#include <limits>

#include "sched/error.hpp"

namespace lina {

// A time beyond the simulator's clock (Time::kLimitTicks), or not a number.
class TimeRangeError : public InputError {
 public:
  explicit TimeRangeError(double seconds);
};

class Time {
 public:
  static constexpr int64_t kTicksPerSecond = 1'000'000'000'000;  // picoseconds
  static constexpr int64_t kLimitTicks = int64_t{1} << 62;       // the clock's end, 53 days

  constexpr Time() = default;
  static constexpr Time ps(int64_t ticks) { return Time(ticks); }
  static constexpr Time ns(int64_t n) { return Time(n * 1'000); }
  static constexpr Time us(int64_t n) { return Time(n * 1'000'000); }
  static constexpr Time ms(int64_t n) { return Time(n * 1'000'000'000); }
  static constexpr Time zero() { return Time(0); }
  static constexpr Time max() { return Time(std::numeric_limits<int64_t>::max()); }

  // Nearest tick: for quantities given by a user ("2us", 1.5e-6).
  static Time from_seconds(double s) { return Time(static_cast<int64_t>(std::llround(checked_ticks(s)))); }
  // Next tick at or above: for completion times derived from bytes / rate or FLOPs / rate.
  static Time from_seconds_ceil(double s) { return Time(static_cast<int64_t>(std::ceil(checked_ticks(s)))); }

  constexpr int64_t ticks() const { return ticks_; }
  constexpr double seconds() const { return static_cast<double>(ticks_) / static_cast<double>(kTicksPerSecond); }

  constexpr auto operator<=>(const Time&) const = default;
  constexpr Time operator+(Time o) const { return Time(ticks_ + o.ticks_); }
  constexpr Time operator-(Time o) const { return Time(ticks_ - o.ticks_); }
  constexpr Time& operator+=(Time o) {
    ticks_ += o.ticks_;
    return *this;
  }
  constexpr Time& operator-=(Time o) {
    ticks_ -= o.ticks_;
    return *this;
  }
  constexpr Time operator*(int64_t k) const { return Time(ticks_ * k); }

 private:
  constexpr explicit Time(int64_t t) : ticks_(t) {}
  static double checked_ticks(double s) {
    const double x = s * static_cast<double>(kTicksPerSecond);
    if (!(x < static_cast<double>(kLimitTicks) && x > -static_cast<double>(kLimitTicks))) throw TimeRangeError(s);
    return x;
  }
  int64_t ticks_ = 0;
};

// Time to move `bytes` at `bytes_per_s`, rounded up to the tick.
inline Time transfer_time(double bytes, double bytes_per_s) { return Time::from_seconds_ceil(bytes / bytes_per_s); }

}  // namespace lina

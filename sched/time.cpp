#include "sched/time.hpp"

#include <fmt/format.h>

namespace lina {

TimeRangeError::TimeRangeError(double seconds)
    : InputError(fmt::format("simulated time of {:.3g} days is past the clock's {:.3g} days (or not a number): is a "
                             "bandwidth, FLOP rate or latency given without its unit, or far too small?",
                             seconds / 86400.0,
                             static_cast<double>(Time::kLimitTicks) / Time::kTicksPerSecond / 86400.0)) {}

}  // namespace lina

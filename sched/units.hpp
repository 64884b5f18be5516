// Quantities with units, parsed in one place (DESIGN.md 2.2): "100Gbps", "12.5GB/s", "2us", "30MB", "30MiB",
// "312TFLOPS".
//
// Decimal prefixes are powers of ten and binary prefixes powers of two: Gb = 10^9 bits, GB = 10^9 bytes,
// GiB = 2^30 bytes. Values are returned in the base unit of their dimension: bytes, bytes/s, seconds, FLOP/s.
// An unknown or missing unit, or a unit of the wrong dimension, is an InputError.
#pragma once

#include <string>
#include <string_view>

namespace lina {

enum class Dimension {
  kBytes,           // B, KB, MB, GB, TB, KiB, MiB, GiB, TiB
  kBytesPerSecond,  // bps, Kbps, Mbps, Gbps, Tbps (bits/s); B/s, KB/s, MB/s, GB/s, TB/s, KiB/s, MiB/s, GiB/s
  kSeconds,         // ps, ns, us, ms, s
  kFlopsPerSecond,  // FLOPS, KFLOPS, MFLOPS, GFLOPS, TFLOPS, PFLOPS (also written FLOP/s, TFLOP/s, ...)
  kNumber,          // a plain number without unit
};

// The base unit's name, used in documentation and column headers: "bytes", "bytes/s", "s", "FLOP/s", "".
std::string_view base_unit_name(Dimension d);

// Parses "<number><optional spaces><unit>". The number may be fractional or use an exponent ("1.5e3MB").
// Throws InputError("expected a <dimension> such as ..., got '...'") on failure; the caller adds the location.
double parse_quantity(std::string_view text, Dimension d);

// Formats a value of the dimension with a readable decimal unit, e.g. 12.5e9 bytes/s -> "12.5GB/s".
std::string format_quantity(double value, Dimension d);

}  // namespace lina

// Units parser (sched/units.hpp): every unit of every dimension, and every error class.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "sched/error.hpp"
#include "sched/units.hpp"

namespace lina {
namespace {

struct Case {
  const char* text;
  Dimension dim;
  double expected;  // in the base unit
};

// Every unit once, with the factor worked out by hand: decimal prefixes are powers of ten, binary prefixes powers
// of two, and bit rates are divided by 8 to give bytes/s.
const Case kCases[] = {
    {"1B", Dimension::kBytes, 1},
    {"3KB", Dimension::kBytes, 3e3},
    {"30MB", Dimension::kBytes, 30e6},
    {"2GB", Dimension::kBytes, 2e9},
    {"1.5TB", Dimension::kBytes, 1.5e12},
    {"2KiB", Dimension::kBytes, 2048},
    {"30MiB", Dimension::kBytes, 30.0 * 1048576},
    {"40GiB", Dimension::kBytes, 40.0 * 1073741824},
    {"1TiB", Dimension::kBytes, 1099511627776.0},
    {"8bps", Dimension::kBytesPerSecond, 1},
    {"8Kbps", Dimension::kBytesPerSecond, 1e3},
    {"8Mbps", Dimension::kBytesPerSecond, 1e6},
    {"100Gbps", Dimension::kBytesPerSecond, 12.5e9},
    {"1.6Tbps", Dimension::kBytesPerSecond, 0.2e12},
    {"5B/s", Dimension::kBytesPerSecond, 5},
    {"5KB/s", Dimension::kBytesPerSecond, 5e3},
    {"5MB/s", Dimension::kBytesPerSecond, 5e6},
    {"12.5GB/s", Dimension::kBytesPerSecond, 12.5e9},
    {"2TB/s", Dimension::kBytesPerSecond, 2e12},
    {"1KiB/s", Dimension::kBytesPerSecond, 1024},
    {"1MiB/s", Dimension::kBytesPerSecond, 1048576},
    {"1GiB/s", Dimension::kBytesPerSecond, 1073741824},
    {"1TiB/s", Dimension::kBytesPerSecond, 1099511627776.0},
    {"7ps", Dimension::kSeconds, 7e-12},
    {"7ns", Dimension::kSeconds, 7e-9},
    {"2us", Dimension::kSeconds, 2e-6},
    {"1.5ms", Dimension::kSeconds, 1.5e-3},
    {"3s", Dimension::kSeconds, 3},
    {"1FLOPS", Dimension::kFlopsPerSecond, 1},
    {"2KFLOPS", Dimension::kFlopsPerSecond, 2e3},
    {"2MFLOPS", Dimension::kFlopsPerSecond, 2e6},
    {"2GFLOPS", Dimension::kFlopsPerSecond, 2e9},
    {"312TFLOPS", Dimension::kFlopsPerSecond, 312e12},
    {"1PFLOPS", Dimension::kFlopsPerSecond, 1e15},
    {"4FLOP/s", Dimension::kFlopsPerSecond, 4},
    {"4KFLOP/s", Dimension::kFlopsPerSecond, 4e3},
    {"4MFLOP/s", Dimension::kFlopsPerSecond, 4e6},
    {"4GFLOP/s", Dimension::kFlopsPerSecond, 4e9},
    {"19.5TFLOP/s", Dimension::kFlopsPerSecond, 19.5e12},
    {"4PFLOP/s", Dimension::kFlopsPerSecond, 4e15},
    {"42", Dimension::kNumber, 42},
    {"-0.25", Dimension::kNumber, -0.25},
};

TEST(Units, EveryUnitParsesToItsBaseValue) {
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.text);
    EXPECT_DOUBLE_EQ(parse_quantity(c.text, c.dim), c.expected);
  }
}

TEST(Units, DecimalAndBinaryPrefixesDiffer) {
  // GB = 10^9 bytes, GiB = 2^30 bytes; Gb (in Gbps) = 10^9 bits = 1.25e8 bytes.
  EXPECT_DOUBLE_EQ(parse_quantity("1GiB", Dimension::kBytes) - parse_quantity("1GB", Dimension::kBytes),
                   1073741824.0 - 1e9);
  EXPECT_DOUBLE_EQ(
      parse_quantity("1GB/s", Dimension::kBytesPerSecond) / parse_quantity("1Gbps", Dimension::kBytesPerSecond), 8.0);
}

TEST(Units, SpacesExponentsAndFractions) {
  EXPECT_DOUBLE_EQ(parse_quantity("  30 MB ", Dimension::kBytes), 30e6);
  EXPECT_DOUBLE_EQ(parse_quantity("1.5e3MB", Dimension::kBytes), 1.5e9);
  EXPECT_DOUBLE_EQ(parse_quantity("2.5e-1s", Dimension::kSeconds), 0.25);
  EXPECT_DOUBLE_EQ(parse_quantity("0us", Dimension::kSeconds), 0);
}

TEST(Units, UnitsAreCaseSensitive) {
  // "mb" is not a unit (millibit?); "Ms" would be megaseconds; neither is accepted.
  EXPECT_THROW(parse_quantity("30mb", Dimension::kBytes), InputError);
  EXPECT_THROW(parse_quantity("1Ms", Dimension::kSeconds), InputError);
  EXPECT_THROW(parse_quantity("100gbps", Dimension::kBytesPerSecond), InputError);
}

void expect_error(const std::string& text, Dimension d, const std::string& needle) {
  try {
    parse_quantity(text, d);
    ADD_FAILURE() << "'" << text << "' parsed";
  } catch (const InputError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_NE(what.find("'" + text + "'"), std::string::npos) << "message should quote the input: " << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
  }
}

TEST(Units, MissingUnitIsAnError) {
  expect_error("30", Dimension::kBytes, "unit is missing");
  expect_error("100", Dimension::kBytesPerSecond, "unit is missing");
  expect_error("2", Dimension::kSeconds, "unit is missing");
  expect_error("312", Dimension::kFlopsPerSecond, "unit is missing");
}

TEST(Units, UnknownUnitIsAnError) {
  expect_error("30XB", Dimension::kBytes, "a size such as");
  expect_error("100Gbit/s", Dimension::kBytesPerSecond, "a bandwidth such as");
  expect_error("2min", Dimension::kSeconds, "a time such as");
  expect_error("1EFLOPS", Dimension::kFlopsPerSecond, "a compute rate such as");
}

TEST(Units, WrongDimensionIsAnError) {
  expect_error("30MB", Dimension::kSeconds, "a time such as");
  expect_error("2us", Dimension::kBytes, "a size such as");
  expect_error("100Gbps", Dimension::kBytes, "a size such as");
  expect_error("12GB", Dimension::kBytesPerSecond, "a bandwidth such as");
  expect_error("312TFLOPS", Dimension::kBytesPerSecond, "a bandwidth such as");
  expect_error("1GB/s", Dimension::kFlopsPerSecond, "a compute rate such as");
  expect_error("5MB", Dimension::kNumber, "a plain number");
}

TEST(Units, GarbageIsAnError) {
  for (const char* g : {"", "   ", "MB", "abc", "--1MB", "1..5MB", "+", "0x10MB"}) {
    SCOPED_TRACE(g);
    EXPECT_THROW(parse_quantity(g, Dimension::kBytes), InputError);
  }
  EXPECT_THROW(parse_quantity("1 2MB", Dimension::kBytes), InputError);
  EXPECT_THROW(parse_quantity("12MB extra", Dimension::kBytes), InputError);
}

TEST(Units, NonFiniteNumbersAreErrors) {
  for (const char* g : {"nanMB", "NaN MB", "infMB", "-infGbps", "inf", "nan", "1e400MB", "1e999"}) {
    SCOPED_TRACE(g);
    Dimension d = std::string(g).find("bps") != std::string::npos  ? Dimension::kBytesPerSecond
                  : std::string(g).find("MB") != std::string::npos ? Dimension::kBytes
                                                                   : Dimension::kNumber;
    EXPECT_THROW(parse_quantity(g, d), InputError);
  }
}

TEST(Units, BaseUnitNames) {
  EXPECT_EQ(base_unit_name(Dimension::kBytes), "bytes");
  EXPECT_EQ(base_unit_name(Dimension::kBytesPerSecond), "bytes/s");
  EXPECT_EQ(base_unit_name(Dimension::kSeconds), "s");
  EXPECT_EQ(base_unit_name(Dimension::kFlopsPerSecond), "FLOP/s");
  EXPECT_EQ(base_unit_name(Dimension::kNumber), "");
}

TEST(Units, FormatPicksReadableUnits) {
  EXPECT_EQ(format_quantity(12.5e9, Dimension::kBytesPerSecond), "12.5GB/s");
  EXPECT_EQ(format_quantity(30e6, Dimension::kBytes), "30MB");
  EXPECT_EQ(format_quantity(512, Dimension::kBytes), "512B");
  EXPECT_EQ(format_quantity(2e-6, Dimension::kSeconds), "2us");
  EXPECT_EQ(format_quantity(1.5e-3, Dimension::kSeconds), "1.5ms");
  EXPECT_EQ(format_quantity(3, Dimension::kSeconds), "3s");
  EXPECT_EQ(format_quantity(0, Dimension::kSeconds), "0s");
  EXPECT_EQ(format_quantity(5e-12, Dimension::kSeconds), "5ps");
  EXPECT_EQ(format_quantity(312e12, Dimension::kFlopsPerSecond), "312TFLOPS");
  EXPECT_EQ(format_quantity(2e15, Dimension::kFlopsPerSecond), "2PFLOPS");
  // Bytes stop at T: 2 PB prints as 2000TB.
  EXPECT_EQ(format_quantity(2e15, Dimension::kBytes), "2000TB");
  EXPECT_EQ(format_quantity(7, Dimension::kNumber), "7");
}

TEST(Units, FormatThenParseRoundTrips) {
  const std::pair<double, Dimension> values[] = {
      {12.5e9, Dimension::kBytesPerSecond},
      {30e6, Dimension::kBytes},
      {1.25e3, Dimension::kBytes},
      {2e-6, Dimension::kSeconds},
      {7.5e-9, Dimension::kSeconds},
      {156e12, Dimension::kFlopsPerSecond},
      {40e9, Dimension::kBytes},
      {3.5, Dimension::kNumber},
  };
  for (auto [v, d] : values) {
    std::string s = format_quantity(v, d);
    SCOPED_TRACE(s);
    EXPECT_NEAR(parse_quantity(s, d), v, std::fabs(v) * 1e-12);
  }
}

}  // namespace
}  // namespace lina

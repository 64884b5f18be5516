// Parameters: each declared once (path, unit, default, documentation, validator) and read from JSON specs through
// SpecReader, which applies the declaration: default when absent, unit parsing, range check, and "unknown field"
// errors with the nearest known name. `lina params` prints every declaration.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sched/time.hpp"
#include "sched/units.hpp"

namespace lina {

enum class ParamType {
  kQuantity,  // a number with a unit of `dim` ("100Gbps"), or a plain JSON number in the base unit
  kInteger,   // a JSON integer
  kNumber,    // a JSON number
  kBool,
  kChoice,  // a string among `choices`
  kString,  // free text (names, paths)
  kObject,  // a nested object or a reference (preset name / file) documented as a whole
  kList,    // a JSON array
};

struct ParamDef {
  std::string path;  // dotted path from the spec's root, e.g. "cluster.nic.bandwidth"
  ParamType type = ParamType::kQuantity;
  Dimension dim = Dimension::kNumber;
  nlohmann::json default_value;  // null: required
  std::string doc;
  double min = -1e308;  // inclusive bounds in the base unit, for quantities and numbers
  double max = 1e308;
  std::vector<std::string> choices;  // for kChoice

  bool required() const { return default_value.is_null(); }
  std::string unit_name() const;  // "bytes/s", "s", "", "one of a|b"
};

// Every parameter lina knows, in a stable order (clusters, GPUs, models, experiments, policies, ...).
std::vector<ParamDef> all_params();

// Reads one JSON object of a spec. Each accessor names a key relative to `prefix` in `table`, marks it consumed and
// returns its value in base units; finish() reports unconsumed keys as unknown fields. Errors are InputError:
// "FILE: /json/pointer: message".
class SpecReader {
 public:
  SpecReader(const nlohmann::json& object, std::string file, std::string pointer, const std::vector<ParamDef>& table,
             std::string prefix);

  bool has(std::string_view key) const;
  double quantity(std::string_view key);  // kQuantity, kNumber
  Time time(std::string_view key) { return Time::from_seconds(quantity(key)); }
  int64_t integer(std::string_view key);
  bool boolean(std::string_view key);
  std::string choice(std::string_view key);
  std::string string(std::string_view key);
  // The raw JSON of a key (marked consumed); its default when absent.
  const nlohmann::json& raw(std::string_view key);
  // A reader for a nested object (the key must hold an object, or be absent: then an empty object).
  SpecReader child(std::string_view key);
  // Throws on the first unknown key (with the nearest known key of the table as a suggestion).
  void finish() const;

  const std::string& file() const { return file_; }
  std::string pointer(std::string_view key) const;
  [[noreturn]] void fail(std::string_view key, const std::string& message) const;

 private:
  const ParamDef& def(std::string_view key) const;
  const nlohmann::json& value(std::string_view key);

  const nlohmann::json& object_;
  std::string file_, pointer_;
  const std::vector<ParamDef>& table_;
  std::string prefix_;
  std::vector<std::string> consumed_;
  nlohmann::json defaults_holder_;
};

// Levenshtein distance, for "did you mean" suggestions.
size_t edit_distance(std::string_view a, std::string_view b);
// The candidate nearest to `word`, or "" when none is close (distance > max(2, |word|/3)).
std::string nearest(std::string_view word, const std::vector<std::string>& candidates);

// Escapes a key for a JSON pointer (RFC 6901: ~ -> ~0, / -> ~1).
std::string pointer_escape(std::string_view key);

// Parses JSON text; a syntax error becomes InputError "FILE: byte N: ...". Reads the file when text is null.
nlohmann::json parse_json_file(const std::string& path);
nlohmann::json parse_json_text(const std::string& text, const std::string& origin);

// nlohmann::json::parse with both of its input errors, a syntax error and a number too large for a double (which it
// reports as out_of_range, not parse_error), handed to `fail(byte, message)`: byte is the 1-based offset of the
// error in `text` (of the number, for an overflow), message what was wrong. `fail` must throw.
template <class Fail>
nlohmann::json parse_json_checked(const std::string& text, Fail fail) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    std::string what = e.what();
    const auto pos = what.find("syntax error");
    fail(static_cast<uint64_t>(e.byte), pos == std::string::npos ? what : what.substr(pos));
  } catch (const nlohmann::json::out_of_range& e) {
    // "[json.exception.out_of_range.406] number overflow parsing '1e999'": find the number to say where it is.
    std::string what = e.what();
    const auto open = what.find('\'');
    const auto close = what.rfind('\'');
    uint64_t byte = 0;
    if (open != std::string::npos && close > open) {
      const auto at = text.find(what.substr(open + 1, close - open - 1));
      if (at != std::string::npos) byte = at + 1;
    }
    const auto pos = what.find("number overflow");
    fail(byte, (pos == std::string::npos ? what : what.substr(pos)) + " (beyond the range of a double)");
  }
  throw std::logic_error("parse_json_checked: fail() returned");
}

}  // namespace lina

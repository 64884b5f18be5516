// Parameters: each declared once (path, unit, default, documentation, validator) and read from JSON specs through
// SpecReader, which applies the declaration: default when absent, unit parsing, range check, and "unknown field"
// errors with the nearest known name. `lina params` prints every declaration.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
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

}  // namespace lina

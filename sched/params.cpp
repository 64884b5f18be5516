#include "sched/params.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "sched/error.hpp"

namespace lina {
namespace {

std::string json_type_name(const nlohmann::json& v) {
  if (v.is_string()) return fmt::format("string \"{}\"", v.get<std::string>());
  if (v.is_number()) return fmt::format("number {}", v.dump());
  return std::string(v.type_name());
}

std::string join_path(const std::string& prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
}

}  // namespace

std::string ParamDef::unit_name() const {
  switch (type) {
    case ParamType::kQuantity:
      return std::string(base_unit_name(dim));
    case ParamType::kChoice: {
      std::string s = "one of ";
      for (size_t i = 0; i < choices.size(); ++i) s += (i ? "|" : "") + choices[i];
      return s;
    }
    case ParamType::kInteger:
      return "integer";
    case ParamType::kNumber:
      return "number";
    case ParamType::kBool:
      return "true|false";
    case ParamType::kString:
      return "string";
    case ParamType::kObject:
      return "object";
    case ParamType::kList:
      return "list";
  }
  return "";
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (best_d > std::max<size_t>(2, word.size() / 3)) return "";
  return best;
}

std::string pointer_escape(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

nlohmann::json parse_json_text(const std::string& text, const std::string& origin) {
  return parse_json_checked(text, [&](uint64_t byte, const std::string& msg) {
    throw InputError(format_location(origin, fmt::format("byte {}", byte), "malformed JSON: " + msg));
  });
}

nlohmann::json parse_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(format_location(path, "", "cannot open file (does it exist?)"));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_json_text(ss.str(), path);
}

SpecReader::SpecReader(const nlohmann::json& object, std::string file, std::string pointer,
                       const std::vector<ParamDef>& table, std::string prefix)
    : object_(object), file_(std::move(file)), pointer_(std::move(pointer)), table_(table), prefix_(std::move(prefix)) {
  if (!object_.is_object()) {
    throw InputError(format_location(file_, pointer_.empty() ? "/" : pointer_,
                                     "expected an object, got " + json_type_name(object_)));
  }
}

std::string SpecReader::pointer(std::string_view key) const { return pointer_ + "/" + pointer_escape(key); }

void SpecReader::fail(std::string_view key, const std::string& message) const {
  throw InputError(format_location(file_, pointer(key), message));
}

const ParamDef& SpecReader::def(std::string_view key) const {
  std::string path = join_path(prefix_, key);
  for (const auto& d : table_) {
    if (d.path == path) return d;
  }
  // A programming error: the code reads a key it never declared.
  throw std::logic_error("lina: parameter '" + path + "' is read but not declared");
}

bool SpecReader::has(std::string_view key) const { return object_.contains(std::string(key)); }

const nlohmann::json& SpecReader::value(std::string_view key) {
  const ParamDef& d = def(key);
  consumed_.emplace_back(key);
  auto it = object_.find(std::string(key));
  if (it != object_.end()) return *it;
  if (d.required()) fail(key, fmt::format("missing required field '{}' ({})", key, d.doc));
  return d.default_value;
}

const nlohmann::json& SpecReader::raw(std::string_view key) { return value(key); }

double SpecReader::quantity(std::string_view key) {
  const ParamDef& d = def(key);
  const nlohmann::json& v = value(key);
  double x = 0;
  if (v.is_number()) {
    x = v.get<double>();
  } else if (v.is_string() && d.type == ParamType::kQuantity) {
    try {
      x = parse_quantity(v.get<std::string>(), d.dim);
    } catch (const InputError& e) {
      fail(key, e.what());
    }
  } else {
    fail(key, d.type == ParamType::kQuantity
                  ? fmt::format("expected a quantity in {} (e.g. a string with a unit), got {}", d.unit_name(),
                                json_type_name(v))
                  : "expected a number, got " + json_type_name(v));
  }
  if (!std::isfinite(x) || x < d.min || x > d.max) {
    std::string range = d.max >= 1e308    ? fmt::format(">= {:g}", d.min)
                        : d.min <= -1e308 ? fmt::format("<= {:g}", d.max)
                                          : fmt::format("in [{:g}, {:g}]", d.min, d.max);
    fail(key, fmt::format("value {:g} {} is out of range: must be {}", x, d.unit_name(), range));
  }
  return x;
}

int64_t SpecReader::integer(std::string_view key) {
  const ParamDef& d = def(key);
  const nlohmann::json& v = value(key);
  if (!v.is_number_integer()) fail(key, "expected an integer, got " + json_type_name(v));
  int64_t x = v.get<int64_t>();
  if (static_cast<double>(x) < d.min || static_cast<double>(x) > d.max) {
    std::string range = d.max >= 1e308 ? fmt::format(">= {:g}", d.min) : fmt::format("in [{:g}, {:g}]", d.min, d.max);
    fail(key, fmt::format("value {} is out of range: must be {}", x, range));
  }
  return x;
}

bool SpecReader::boolean(std::string_view key) {
  const nlohmann::json& v = value(key);
  if (!v.is_boolean()) fail(key, "expected true or false, got " + json_type_name(v));
  return v.get<bool>();
}

std::string SpecReader::choice(std::string_view key) {
  const ParamDef& d = def(key);
  const nlohmann::json& v = value(key);
  if (!v.is_string()) fail(key, fmt::format("expected {}, got {}", d.unit_name(), json_type_name(v)));
  std::string s = v.get<std::string>();
  if (std::find(d.choices.begin(), d.choices.end(), s) == d.choices.end()) {
    std::string near = nearest(s, d.choices);
    fail(key, fmt::format("unknown value '{}': expected {}{}", s, d.unit_name(),
                          near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near)));
  }
  return s;
}

std::string SpecReader::string(std::string_view key) {
  const nlohmann::json& v = value(key);
  if (!v.is_string()) fail(key, "expected a string, got " + json_type_name(v));
  return v.get<std::string>();
}

SpecReader SpecReader::child(std::string_view key) {
  static const nlohmann::json empty = nlohmann::json::object();
  const nlohmann::json& v = value(key);
  const nlohmann::json& obj = v.is_null() ? empty : v;
  if (!obj.is_object()) fail(key, "expected an object, got " + json_type_name(obj));
  return SpecReader(obj, file_, pointer(key), table_, join_path(prefix_, key));
}

void SpecReader::finish() const {
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (std::find(consumed_.begin(), consumed_.end(), it.key()) != consumed_.end()) continue;
    // Suggest among the keys declared at this level.
    std::vector<std::string> known;
    std::string base = prefix_.empty() ? "" : prefix_ + ".";
    for (const auto& d : table_) {
      if (d.path.size() > base.size() && d.path.compare(0, base.size(), base) == 0 &&
          d.path.find('.', base.size()) == std::string::npos) {
        known.push_back(d.path.substr(base.size()));
      }
    }
    std::string near = nearest(it.key(), known);
    throw InputError(format_location(
        file_, pointer(it.key()),
        fmt::format("unknown field '{}'{}", it.key(), near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near))));
  }
}

}  // namespace lina

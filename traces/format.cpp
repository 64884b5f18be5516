#include "traces/format.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <set>

#include "sched/error.hpp"

namespace lina::traces {

static_assert(std::endian::native == std::endian::little,
              "the trace reader maps little-endian records directly; add byte swapping for big-endian hosts");

namespace {

// Slice-by-8 tables: about 1-2 GB/s, so the checksum costs little next to the 50 M entries/s reading target.
struct CrcTables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
  }
};
const CrcTables& crc_tables() {
  static const CrcTables tables;
  return tables;
}

[[noreturn]] void fail(const std::string& file, const std::string& where, const std::string& msg) {
  throw InputError(format_location(file, where, msg));
}

std::string get_string(const nlohmann::json& j, const char* key, const std::string& file, const std::string& where,
                       bool required) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) fail(file, where, fmt::format("header: missing key \"{}\" (a string)", key));
    return {};
  }
  if (!it->is_string()) fail(file, where, fmt::format("header: \"{}\" must be a string", key));
  return it->get<std::string>();
}

int64_t get_int(const nlohmann::json& j, const char* key, int64_t lo, int64_t hi, const std::string& file,
                const std::string& where, bool required, int64_t dflt) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) fail(file, where, fmt::format("header: missing key \"{}\" (an integer)", key));
    return dflt;
  }
  if (!it->is_number_integer()) fail(file, where, fmt::format("header: \"{}\" must be an integer", key));
  const int64_t v =
      it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : it->get<int64_t>();
  if (v < lo || v > hi) fail(file, where, fmt::format("header: \"{}\" = {} is outside {}..{}", key, v, lo, hi));
  return v;
}

bool get_bool(const nlohmann::json& j, const char* key, bool dflt, const std::string& file, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) return dflt;
  if (!it->is_boolean()) fail(file, where, fmt::format("header: \"{}\" must be true or false", key));
  return it->get<bool>();
}

}  // namespace

uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  const auto& t = crc_tables().t;
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
          t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = t[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::string routing_problem(const TraceHeader& h, const BatchRouting& b, size_t& entry, bool& weight) {
  weight = false;
  const size_t n = b.experts.size();
  const uint16_t* e = b.experts.data();
  // (id + 1) wraps kNoExpert to 0, so one vectorisable max finds whether any id is >= experts.
  uint16_t mx = 0;
  for (size_t i = 0; i < n; ++i) mx = std::max<uint16_t>(mx, uint16_t(e[i] + 1));
  if (mx > h.experts) {
    for (size_t i = 0; i < n; ++i) {
      if (e[i] != kNoExpert && e[i] >= h.experts) {
        entry = i;
        return fmt::format("expert id {} >= experts ({})", e[i], h.experts);
      }
    }
  }
  const size_t k = size_t(b.top_k);
  if (k > 1) {
    const size_t entries = n / k;
    for (size_t t = 0; t < entries; ++t) {
      const uint16_t* c = e + t * k;
      if (k == 2 && c[0] != c[1] && c[0] != kNoExpert && c[1] != kNoExpert) continue;
      // Fast path: distinct low 6 bits prove the ids distinct (and none is kNoExpert only if all are recorded,
      // checked below); any collision falls back to the exact pairwise check.
      uint64_t mask = 0;
      bool any_missing = false;
      for (size_t s = 0; s < k; ++s) {
        mask |= uint64_t(1) << (c[s] & 63);
        any_missing |= c[s] == kNoExpert;
      }
      if (!any_missing && size_t(std::popcount(mask)) == k) continue;
      const bool missing = c[0] == kNoExpert;
      for (size_t s = 1; s < k; ++s) {
        if ((c[s] == kNoExpert) != missing) {
          entry = t * k + s;
          return "a token's choices must be all recorded or all unrecorded (65535)";
        }
        if (missing) continue;
        for (size_t r = 0; r < s; ++r) {
          if (c[s] == c[r]) {
            entry = t * k + s;
            return fmt::format("expert id {} chosen twice by one token", c[s]);
          }
        }
      }
    }
  }
  // A float is not finite when its exponent bits are all ones; OR-ing that test over the array vectorises.
  const float* w = b.weights.data();
  bool bad = false;
  for (size_t i = 0; i < b.weights.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, w + i, 4);
    bad |= (bits & 0x7f800000u) == 0x7f800000u;
  }
  for (size_t i = 0; bad && i < b.weights.size(); ++i) {
    if (!std::isfinite(b.weights[i])) {
      entry = i;
      weight = true;
      return "gate weight is not a finite number";
    }
  }
  return {};
}

int TraceHeader::layer_index(int layer_id) const {
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i] == layer_id) return int(i);
  }
  return -1;
}

std::string kind_name(TraceKind k) { return k == TraceKind::kRouting ? "routing" : "counts"; }

uint64_t payload_bytes(const TraceHeader& h, uint64_t tokens) {
  const uint64_t layers = h.layers.size();
  if (h.kind == TraceKind::kCounts) return layers * uint64_t(h.experts) * 4;
  const uint64_t entries = tokens * layers * uint64_t(h.top_k);
  return entries * 2 + (h.has_weights ? entries * 4 : 0);
}

nlohmann::ordered_json header_to_json(const TraceHeader& h) {
  nlohmann::ordered_json j;
  j["format"] = "lina.trace";
  j["kind"] = kind_name(h.kind);
  j["model"] = h.model;
  j["layers"] = h.layers;
  j["experts"] = h.experts;
  j["top_k"] = h.top_k;
  j["has_weights"] = h.has_weights;
  j["ordered"] = h.ordered;
  j["source"] = h.source;
  j["dataset"] = h.dataset;
  j["licence"] = h.licence;
  j["batches"] = h.batches;
  j["tokens"] = h.tokens;
  if (!h.notes.is_null()) j["notes"] = h.notes;
  return j;
}

TraceHeader header_from_json(const nlohmann::json& j, const std::string& file, const std::string& where) {
  if (!j.is_object()) fail(file, where, "header: expected a JSON object");
  static const std::set<std::string> known = {"format",  "kind",        "model",   "layers", "experts",
                                              "top_k",   "has_weights", "ordered", "source", "dataset",
                                              "licence", "batches",     "tokens",  "notes",  "version"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!known.count(it.key())) fail(file, where, fmt::format("header: unknown key \"{}\"", it.key()));
  }
  if (get_string(j, "format", file, where, true) != "lina.trace") {
    fail(file, where, "header: \"format\" must be \"lina.trace\"");
  }
  TraceHeader h;
  const std::string kind = get_string(j, "kind", file, where, false);
  if (kind.empty() || kind == "routing") {
    h.kind = TraceKind::kRouting;
  } else if (kind == "counts") {
    h.kind = TraceKind::kCounts;
  } else {
    fail(file, where, fmt::format("header: \"kind\" must be \"routing\" or \"counts\", got \"{}\"", kind));
  }
  h.model = get_string(j, "model", file, where, true);
  auto it = j.find("layers");
  if (it == j.end() || !it->is_array() || it->empty() || it->size() > size_t(kMaxLayers)) {
    fail(file, where, fmt::format("header: \"layers\" must be a non-empty array of at most {} layer ids", kMaxLayers));
  }
  std::set<int> seen;
  for (const auto& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1'000'000) {
      fail(file, where, "header: \"layers\" must hold integer layer ids in 0..1000000");
    }
    const int id = v.get<int>();
    if (!seen.insert(id).second) fail(file, where, fmt::format("header: layer id {} appears twice in \"layers\"", id));
    h.layers.push_back(id);
  }
  h.experts = int(get_int(j, "experts", 1, 65535, file, where, true, 0));
  h.top_k = int(get_int(j, "top_k", 1, h.experts, file, where, true, 1));
  h.has_weights = get_bool(j, "has_weights", false, file, where);
  if (h.has_weights && h.kind == TraceKind::kCounts) fail(file, where, "header: a counts trace has no gate weights");
  h.ordered = get_bool(j, "ordered", true, file, where);
  h.source = get_string(j, "source", file, where, false);
  h.dataset = get_string(j, "dataset", file, where, false);
  h.licence = get_string(j, "licence", file, where, false);
  h.batches = uint64_t(get_int(j, "batches", 0, INT64_MAX, file, where, false, 0));
  h.tokens = uint64_t(get_int(j, "tokens", 0, INT64_MAX, file, where, false, 0));
  if (auto n = j.find("notes"); n != j.end()) {
    if (!n->is_object()) fail(file, where, "header: \"notes\" must be an object");
    h.notes = *n;
  }
  return h;
}

}  // namespace lina::traces

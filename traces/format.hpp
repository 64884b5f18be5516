// The native trace format's constants and header (traces/FORMAT.md is the byte-by-byte specification).
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sched/routing.hpp"

namespace lina::traces {

// "\x89LTR\r\n\x1a\n": the high byte and the CR LF / ^Z pair detect text-mode mangling (the PNG trick).
inline constexpr unsigned char kMagic[8] = {0x89, 'L', 'T', 'R', '\r', '\n', 0x1a, '\n'};
inline constexpr unsigned char kEndMagic[8] = {'L', 'T', 'R', 'E', 'N', 'D', '\r', '\n'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kBatchMarker = 0x48435442;  // "BTCH" little-endian
inline constexpr uint32_t kIndexMarker = 0x5844494c;  // "LIDX" little-endian
inline constexpr size_t kPreambleBytes = 24;          // magic, version, reserved, header length
inline constexpr size_t kBatchHeadBytes = 24;         // marker, index, tokens, flags, payload length
inline constexpr size_t kTrailerBytes = 16;           // index offset, end magic
inline constexpr uint64_t kMaxHeaderBytes = 16u << 20;
inline constexpr uint32_t kKnownBatchFlags = 1u;  // kBatchPrefill
inline constexpr int kMaxLayers = 4096;

enum class TraceKind { kRouting, kCounts };

// What a trace holds. `batches` and `tokens` are totals over the file (the writer fills them in).
struct TraceHeader {
  TraceKind kind = TraceKind::kRouting;
  std::string model;
  std::vector<int> layers;  // model layer ids of the MoE layers, in model order
  int experts = 0;
  int top_k = 1;             // routing kind: choices per token; counts kind: what produced the counts
  bool has_weights = false;  // routing kind only
  bool ordered = true;       // slot 0 is the highest-weight choice (false: the k ids are a set, e.g. DeepSeek)
  std::string source;
  std::string dataset;
  std::string licence;
  uint64_t batches = 0;
  uint64_t tokens = 0;
  nlohmann::json notes;  // free-form object (converter options, synth parameters); null when absent

  int n_layers() const { return int(layers.size()); }
  // Index of a model layer id in `layers`, or -1.
  int layer_index(int layer_id) const;
};

// Key order is fixed so that the same header always gives the same bytes.
nlohmann::ordered_json header_to_json(const TraceHeader& h);
// Validates and converts; throws InputError(format_location(file, where, ...)) naming the offending key.
TraceHeader header_from_json(const nlohmann::json& j, const std::string& file, const std::string& where);

// Bytes of a batch record's payload for a header and token count.
uint64_t payload_bytes(const TraceHeader& h, uint64_t tokens);

// Checks a routing batch's contents against the header: ids < experts or kNoExpert, a token's choices all
// recorded or all unrecorded and distinct, weights finite. Returns "" when valid; else the problem, with `entry`
// = (layer * tokens + token) * top_k + slot of the offending id (or weight, then `weight` is true).
// Shapes (layers, top_k, weights present) are the caller's to check.
std::string routing_problem(const TraceHeader& h, const BatchRouting& b, size_t& entry, bool& weight);

// CRC-32 (IEEE 802.3, reflected, as zlib's crc32), continuing from `crc` (0 to start).
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

std::string kind_name(TraceKind k);

}  // namespace lina::traces

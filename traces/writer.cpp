#include "traces/writer.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "sched/error.hpp"
#include "traces/reader.hpp"

namespace lina::traces {
namespace {

[[noreturn]] void fail(const std::string& file, const std::string& msg) {
  throw InputError(format_location(file, "", msg));
}

// The header JSON with its totals, padded with spaces to `width` bytes (JSON allows trailing whitespace). The
// writer reserves the width of the largest possible totals up front and rewrites the header in place at close().
std::string header_text(TraceHeader h, size_t width) {
  std::string s = header_to_json(h).dump();
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

nlohmann::ordered_json routing_json(const BatchRouting& b, const TraceHeader& h) {
  nlohmann::ordered_json j;
  j["tokens"] = b.tokens;
  if (b.prefill()) j["prefill"] = true;
  auto& ex = j["experts"] = nlohmann::ordered_json::array();
  nlohmann::ordered_json w = nlohmann::ordered_json::array();
  for (int l = 0; l < b.layers; ++l) {
    auto layer = nlohmann::ordered_json::array();
    auto wl = nlohmann::ordered_json::array();
    for (int t = 0; t < b.tokens; ++t) {
      if (!b.recorded(l, t)) {
        layer.push_back(nullptr);
        wl.push_back(nullptr);
        continue;
      }
      auto c = nlohmann::ordered_json::array();
      auto wc = nlohmann::ordered_json::array();
      for (int s = 0; s < b.top_k; ++s) {
        c.push_back(b.expert(l, t, s));
        if (h.has_weights) wc.push_back(b.weight(l, t, s));
      }
      layer.push_back(std::move(c));
      wl.push_back(std::move(wc));
    }
    ex.push_back(std::move(layer));
    w.push_back(std::move(wl));
  }
  if (h.has_weights) j["weights"] = std::move(w);
  return j;
}

}  // namespace

TraceWriter::TraceWriter(std::string path, TraceHeader header) : path_(std::move(path)), h_(std::move(header)) {
  jsonl_ = path_.size() >= 6 && path_.compare(path_.size() - 6, 6, ".jsonl") == 0;
  tmp_ = path_ + ".tmp";
  h_.batches = 0;
  h_.tokens = 0;
  if (h_.layers.empty() || h_.experts < 1 || h_.experts > 65535 || h_.top_k < 1 || h_.top_k > h_.experts) {
    fail(path_, "invalid trace header: needs layers, 1..65535 experts and 1 <= top_k <= experts");
  }
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail(tmp_, fmt::format("cannot create: {}", std::strerror(errno)));
  if (jsonl_) return;
  TraceHeader widest = h_;
  widest.batches = std::numeric_limits<int64_t>::max();
  widest.tokens = std::numeric_limits<int64_t>::max();
  header_bytes_ = header_to_json(widest).dump().size();
  put(kMagic, 8);
  const uint32_t v[2] = {kFormatVersion, 0};
  put(v, 8);
  put(&header_bytes_, 8);
  const std::string text = header_text(h_, header_bytes_);
  put(text.data(), text.size());
}

TraceWriter::~TraceWriter() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void TraceWriter::put(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, f_) != n) fail(tmp_, fmt::format("write failed: {}", std::strerror(errno)));
  pos_ += n;
}

void TraceWriter::begin_record(uint32_t tokens, uint32_t flags, uint64_t payload, uint32_t& crc) {
  offsets_.push_back(pos_);
  unsigned char head[kBatchHeadBytes];
  const uint32_t index = uint32_t(offsets_.size() - 1);
  std::memcpy(head, &kBatchMarker, 4);
  std::memcpy(head + 4, &index, 4);
  std::memcpy(head + 8, &tokens, 4);
  std::memcpy(head + 12, &flags, 4);
  std::memcpy(head + 16, &payload, 8);
  put(head, kBatchHeadBytes);
  crc = crc32(head + 4, kBatchHeadBytes - 4);
}

void TraceWriter::write(const BatchRouting& b) {
  if (!f_) fail(path_, "write after close");
  if (h_.kind != TraceKind::kRouting) fail(path_, "a counts trace takes LayerCounts batches");
  const size_t n = size_t(b.tokens) * size_t(b.layers) * size_t(b.top_k);
  if (b.tokens < 1 || b.layers != h_.n_layers() || b.top_k != h_.top_k || b.experts.size() != n ||
      b.has_weights() != h_.has_weights || (b.has_weights() && b.weights.size() != n) ||
      (b.flags & ~kKnownBatchFlags)) {
    fail(path_, fmt::format("batch {}: shape ({} tokens, {} layers, top-{}, weights {}) does not match the header "
                            "({} layers, top-{}, weights {})",
                            h_.batches, b.tokens, b.layers, b.top_k, b.has_weights(), h_.n_layers(), h_.top_k,
                            h_.has_weights));
  }
  size_t e = 0;
  bool w = false;
  if (const std::string msg = routing_problem(h_, b, e, w); !msg.empty()) {
    const size_t per_layer = size_t(b.tokens) * size_t(b.top_k);
    fail(path_, fmt::format("batch {}, layer {}, token {}: {}", h_.batches, h_.layers[e / per_layer],
                            (e % per_layer) / size_t(b.top_k), msg));
  }
  if (jsonl_) {
    jsonl_body_ += routing_json(b, h_).dump();
    jsonl_body_ += '\n';
  } else {
    uint32_t crc = 0;
    begin_record(uint32_t(b.tokens), b.flags, payload_bytes(h_, uint64_t(b.tokens)), crc);
    put(b.experts.data(), n * 2);
    crc = crc32(b.experts.data(), n * 2, crc);
    if (h_.has_weights) {
      put(b.weights.data(), n * 4);
      crc = crc32(b.weights.data(), n * 4, crc);
    }
    put(&crc, 4);
  }
  ++h_.batches;
  h_.tokens += uint64_t(b.tokens);
}

void TraceWriter::write(const LayerCounts& c) {
  if (!f_) fail(path_, "write after close");
  if (h_.kind != TraceKind::kCounts) fail(path_, "a routing trace takes BatchRouting batches");
  if (c.tokens < 1 || c.layers != h_.n_layers() || c.experts != h_.experts ||
      c.counts.size() != size_t(c.layers) * size_t(c.experts) || (c.flags & ~kKnownBatchFlags)) {
    fail(path_, fmt::format("batch {}: shape does not match the header", h_.batches));
  }
  for (int l = 0; l < c.layers; ++l) {
    uint64_t sum = 0;
    for (int e = 0; e < c.experts; ++e) {
      if (c.count(l, e) > uint32_t(c.tokens)) {
        fail(path_, fmt::format("batch {}, layer {}: expert {} has more tokens than the batch", h_.batches,
                                h_.layers[size_t(l)], e));
      }
      sum += c.count(l, e);
    }
    if (sum > uint64_t(c.tokens) * uint64_t(h_.top_k)) {
      fail(path_, fmt::format("batch {}, layer {}: counts exceed tokens x top_k", h_.batches, h_.layers[size_t(l)]));
    }
  }
  if (jsonl_) {
    nlohmann::ordered_json j;
    j["tokens"] = c.tokens;
    if (c.flags & kBatchPrefill) j["prefill"] = true;
    auto& rows = j["counts"] = nlohmann::ordered_json::array();
    for (int l = 0; l < c.layers; ++l) {
      auto row = c.layer(l);
      rows.push_back(std::vector<uint32_t>(row.begin(), row.end()));
    }
    jsonl_body_ += j.dump();
    jsonl_body_ += '\n';
  } else {
    uint32_t crc = 0;
    begin_record(uint32_t(c.tokens), c.flags, payload_bytes(h_, uint64_t(c.tokens)), crc);
    put(c.counts.data(), c.counts.size() * 4);
    crc = crc32(c.counts.data(), c.counts.size() * 4, crc);
    put(&crc, 4);
  }
  ++h_.batches;
  h_.tokens += uint64_t(c.tokens);
}

void TraceWriter::close() {
  if (!f_) return;
  if (jsonl_) {
    nlohmann::ordered_json j = header_to_json(h_);
    j["version"] = 1;
    const std::string head = j.dump() + "\n";
    put(head.data(), head.size());
    put(jsonl_body_.data(), jsonl_body_.size());
  } else {
    const uint64_t index_offset = pos_;
    const uint32_t ih[2] = {kIndexMarker, 0};
    put(ih, 8);
    const uint64_t count = offsets_.size();
    put(&count, 8);
    put(offsets_.data(), offsets_.size() * 8);
    put(&index_offset, 8);
    put(kEndMagic, 8);
    const std::string text = header_text(h_, header_bytes_);
    if (std::fseek(f_, long(kPreambleBytes), SEEK_SET) != 0) fail(tmp_, "seek failed");
    if (std::fwrite(text.data(), 1, text.size(), f_) != text.size()) fail(tmp_, "write failed");
  }
  const bool ok = std::fflush(f_) == 0;
  std::fclose(f_);
  f_ = nullptr;
  if (!ok) {
    std::remove(tmp_.c_str());
    fail(tmp_, fmt::format("write failed: {}", std::strerror(errno)));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    std::remove(tmp_.c_str());
    fail(path_, fmt::format("cannot rename {} into place: {}", tmp_, err));
  }
}

void write_trace(const std::string& path, const TraceHeader& header, const std::vector<BatchRouting>& batches) {
  TraceWriter w(path, header);
  for (const auto& b : batches) w.write(b);
  w.close();
}

std::vector<BatchRouting> read_all(const std::string& path, TraceHeader* header) {
  TraceReader r(path);
  std::vector<BatchRouting> out;
  BatchRouting b;
  while (r.next(b)) out.push_back(b);
  if (header) *header = r.header();
  return out;
}

}  // namespace lina::traces

#include "traces/reader.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sched/error.hpp"
#include "sched/params.hpp"

namespace lina::traces {
namespace {

[[noreturn]] void fail_at(const std::string& file, uint64_t byte, const std::string& msg) {
  throw InputError(format_location(file, fmt::format("byte {}", byte), msg));
}
[[noreturn]] void fail_line(const std::string& file, uint64_t line, const std::string& msg) {
  throw InputError(format_location(file, fmt::format("line {}", line), msg));
}

uint32_t load_u32(const unsigned char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t load_u64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

std::string hex_bytes(const unsigned char* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += fmt::format("{}{:02X}", i ? " " : "", p[i]);
  return s;
}

}  // namespace

struct TraceReader::Impl {
  virtual ~Impl() = default;
  std::string path;
  TraceHeader h;
  virtual bool binary() const = 0;
  virtual bool next(BatchRouting& out) = 0;
  virtual bool next_counts(LayerCounts& out) = 0;
  virtual void rewind() = 0;
  virtual void read(uint64_t i, BatchRouting& out) = 0;
  virtual void read_counts(uint64_t i, LayerCounts& out) = 0;
};

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Binary form.
class BinaryReader final : public TraceReader::Impl {
 public:
  explicit BinaryReader(const std::string& p) {
    path = p;
    fd_ = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw InputError(format_location(p, "", fmt::format("cannot open: {}", std::strerror(errno))));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw InputError(format_location(p, "", "not a regular file"));
    }
    size_ = uint64_t(st.st_size);
    try {
      open_header();
    } catch (...) {
      ::close(fd_);
      throw;
    }
  }
  // An in-memory file (tests, embedded traces): the same checks without any file system access.
  BinaryReader(const std::string& name, std::shared_ptr<const std::string> bytes) : mem_(std::move(bytes)) {
    path = name;
    size_ = mem_->size();
    open_header();
  }
  ~BinaryReader() override {
    if (fd_ >= 0) ::close(fd_);
  }

  bool binary() const override { return true; }

  bool next(BatchRouting& out) override {
    require_kind(TraceKind::kRouting);
    if (!advance()) return false;
    read_record(next_i_, pos_, &out, nullptr);
    step();
    return true;
  }
  bool next_counts(LayerCounts& out) override {
    if (!advance()) return false;
    read_counts_at(next_i_, pos_, out);
    step();
    return true;
  }
  void rewind() override {
    pos_ = data_start_;
    next_i_ = 0;
    tokens_seen_ = 0;
  }
  void read(uint64_t i, BatchRouting& out) override {
    require_kind(TraceKind::kRouting);
    read_record(i, offset_of(i), &out, nullptr);
  }
  void read_counts(uint64_t i, LayerCounts& out) override { read_counts_at(i, offset_of(i), out); }

 private:
  int fd_ = -1;
  std::shared_ptr<const std::string> mem_;
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  uint64_t pos_ = 0;
  uint64_t next_i_ = 0;
  uint64_t tokens_seen_ = 0;
  uint64_t last_record_bytes_ = 0;
  uint32_t last_tokens_ = 0;
  bool index_valid_ = false;
  uint64_t index_offset_ = 0;
  std::string index_problem_;
  BatchRouting scratch_;
  // Read-ahead for the small reads (record heads, checksums) so that tiny batches do not cost a syscall each.
  std::vector<unsigned char> buf_ = std::vector<unsigned char>(1 << 16);
  uint64_t buf_off_ = 0;
  size_t buf_len_ = 0;

  void read_at(uint64_t off, void* dst, size_t n) {
    auto* d = static_cast<unsigned char*>(dst);
    if (n <= buf_.size() / 2) {
      if (off < buf_off_ || off + n > buf_off_ + buf_len_) {
        buf_off_ = off;
        buf_len_ = raw_read(off, buf_.data(), size_t(std::min<uint64_t>(buf_.size(), size_ - off)));
      }
      std::memcpy(d, buf_.data() + (off - buf_off_), n);
      return;
    }
    raw_read(off, d, n);
  }
  size_t raw_read(uint64_t off, unsigned char* d, size_t n) {
    if (mem_) {
      if (off > size_ || n > size_ - off) fail_at(path, size_, "unexpected end of file");
      std::memcpy(d, mem_->data() + off, n);
      return n;
    }
    size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd_, d + done, n - done, off_t(off + done));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail_at(path, off + done, fmt::format("read error: {}", std::strerror(errno)));
      if (r == 0) fail_at(path, off + done, "unexpected end of file");
      done += size_t(r);
    }
    return done;
  }

  void require_kind(TraceKind k) const {
    if (h.kind != k) {
      throw InputError(format_location(
          path, "", fmt::format("is a {} trace; this command needs a {} trace", kind_name(h.kind), kind_name(k))));
    }
  }

  void open_header() {
    unsigned char pre[kPreambleBytes] = {};
    const size_t have = size_t(std::min<uint64_t>(size_, kPreambleBytes));
    if (have) raw_read(0, pre, have);
    for (size_t i = 0; i < 8; ++i) {
      if (i >= have) fail_at(path, size_, "truncated: the file ends inside the magic number");
      if (pre[i] != kMagic[i]) {
        fail_at(path, i,
                fmt::format("wrong magic: expected {}, found {}: not a lina binary trace", hex_bytes(kMagic, 8),
                            hex_bytes(pre, std::min<size_t>(have, 8))));
      }
    }
    if (have < kPreambleBytes) fail_at(path, size_, "truncated: the file ends inside the 24-byte preamble");
    const uint32_t version = load_u32(pre + 8);
    if (version != kFormatVersion) {
      fail_at(path, 8,
              fmt::format("unsupported format version {} (this lina reads version {})", version, kFormatVersion));
    }
    if (load_u32(pre + 12) != 0) fail_at(path, 12, "reserved field must be 0");
    const uint64_t hlen = load_u64(pre + 16);
    if (hlen == 0 || hlen > kMaxHeaderBytes) {
      fail_at(path, 16, fmt::format("header length {} is outside 1..{}", hlen, kMaxHeaderBytes));
    }
    if (kPreambleBytes + hlen > size_) {
      fail_at(path, 16,
              fmt::format("truncated: header length {} runs past the end of the file ({} bytes)", hlen, size_));
    }
    std::string text(size_t(hlen), '\0');
    raw_read(kPreambleBytes, reinterpret_cast<unsigned char*>(text.data()), text.size());
    const nlohmann::json j = parse_json_checked(text, [&](uint64_t byte, const std::string& msg) {
      fail_at(path, kPreambleBytes + (byte > 0 ? byte - 1 : 0), "header is not JSON: " + msg);
    });
    h = header_from_json(j, path, fmt::format("byte {}", kPreambleBytes));
    data_start_ = kPreambleBytes + hlen;
    rewind();
    check_trailer();
  }

  // The trailer and index are only needed for random access; a damaged trailer is reported when the stream
  // reaches it or when read(i) needs it, so that a truncated file is reported at the batch where it is cut.
  void check_trailer() {
    const uint64_t min_size = data_start_ + 16 + kTrailerBytes;
    if (size_ < min_size) {
      index_problem_ = fmt::format("byte {}: truncated: no room for the index and trailer", size_);
      return;
    }
    unsigned char t[kTrailerBytes];
    raw_read(size_ - kTrailerBytes, t, kTrailerBytes);
    if (std::memcmp(t + 8, kEndMagic, 8) != 0) {
      index_problem_ =
          fmt::format("byte {}: trailer end magic missing: the file is truncated or was not closed", size_ - 8);
      return;
    }
    const uint64_t off = load_u64(t);
    const uint64_t expect_size = off + 16 + 8 * h.batches + kTrailerBytes;
    if (off < data_start_ || h.batches > size_ / 8 || expect_size != size_) {
      index_problem_ = fmt::format("byte {}: index offset {} does not fit a {}-batch index ending at the trailer",
                                   size_ - kTrailerBytes, off, h.batches);
      return;
    }
    unsigned char ih[16];
    raw_read(off, ih, 16);
    if (load_u32(ih) != kIndexMarker || load_u32(ih + 4) != 0 || load_u64(ih + 8) != h.batches) {
      index_problem_ = fmt::format("byte {}: index head is corrupt (marker, reserved or batch count)", off);
      return;
    }
    index_offset_ = off;
    index_valid_ = true;
  }

  uint64_t offset_of(uint64_t i) {
    if (i >= h.batches) {
      throw InputError(format_location(path, "", fmt::format("batch {} does not exist ({} batches)", i, h.batches)));
    }
    if (!index_valid_) throw InputError(format_location(path, "", "no usable index: " + index_problem_));
    unsigned char b[8];
    const uint64_t at = index_offset_ + 16 + 8 * i;
    read_at(at, b, 8);
    const uint64_t off = load_u64(b);
    if (off < data_start_ || off + kBatchHeadBytes + 4 > index_offset_) {
      fail_at(path, at, fmt::format("index entry {} = {} points outside the batch area", i, off));
    }
    return off;
  }

  // True when there is another batch; at the end, checks totals, index and trailer.
  bool advance() {
    if (next_i_ < h.batches) return true;
    if (next_i_ > h.batches) return false;
    if (tokens_seen_ != h.tokens) {
      fail_at(path, kPreambleBytes,
              fmt::format("header says {} tokens, its {} batches hold {}", h.tokens, h.batches, tokens_seen_));
    }
    // The index must follow the last batch directly and list every batch's offset in order.
    if (pos_ + 16 > size_) fail_at(path, pos_, "truncated: the index is missing after the last batch");
    unsigned char ih[16];
    read_at(pos_, ih, 16);
    if (load_u32(ih) == kBatchMarker) {
      fail_at(path, pos_,
              fmt::format("another batch follows batch {}, but the header says {} batches", h.batches - 1, h.batches));
    }
    if (load_u32(ih) != kIndexMarker) fail_at(path, pos_, "expected the index marker LIDX after the last batch");
    if (load_u32(ih + 4) != 0) fail_at(path, pos_ + 4, "reserved field must be 0");
    if (load_u64(ih + 8) != h.batches) {
      fail_at(path, pos_ + 8, fmt::format("index lists {} batches, header says {}", load_u64(ih + 8), h.batches));
    }
    const uint64_t entries = pos_ + 16;
    if (entries + 8 * h.batches + kTrailerBytes != size_) {
      fail_at(path, entries,
              fmt::format("the index of {} entries and the 16-byte trailer must end the file", h.batches));
    }
    uint64_t prev = 0;
    for (uint64_t i = 0; i < h.batches; ++i) {
      unsigned char b[8];
      read_at(entries + 8 * i, b, 8);
      const uint64_t off = load_u64(b);
      if ((i == 0 && off != data_start_) || (i > 0 && off <= prev) || off >= pos_) {
        fail_at(path, entries + 8 * i, fmt::format("index entry {} = {} is not a batch offset", i, off));
      }
      prev = off;
    }
    unsigned char t[kTrailerBytes];
    read_at(size_ - kTrailerBytes, t, kTrailerBytes);
    if (load_u64(t) != pos_) fail_at(path, size_ - kTrailerBytes, "trailer does not point at the index");
    if (std::memcmp(t + 8, kEndMagic, 8) != 0) fail_at(path, size_ - 8, "trailer end magic missing");
    ++next_i_;  // past the end: further calls return false without re-checking
    return false;
  }
  void step() {
    pos_ += last_record_bytes_;
    tokens_seen_ += last_tokens_;
    ++next_i_;
  }

  // Reads and validates batch i's record at `off` into a routing batch or a counts batch.
  void read_record(uint64_t i, uint64_t off, BatchRouting* routing, LayerCounts* counts) {
    unsigned char head[kBatchHeadBytes];
    if (off + kBatchHeadBytes > size_) {
      fail_at(path, off,
              fmt::format("truncated batch {}: its {}-byte head ends past the end of the file ({} bytes)", i,
                          kBatchHeadBytes, size_));
    }
    read_at(off, head, kBatchHeadBytes);
    const uint32_t marker = load_u32(head);
    if (marker != kBatchMarker) {
      if (marker == kIndexMarker) {
        fail_at(path, off,
                fmt::format("found the index where batch {} should start: the header says {} batches", i, h.batches));
      }
      fail_at(path, off, fmt::format("batch {}: expected the batch marker BTCH, found {}", i, hex_bytes(head, 4)));
    }
    if (load_u32(head + 4) != uint32_t(i)) {
      fail_at(path, off + 4, fmt::format("batch record numbered {}, expected {}", load_u32(head + 4), uint32_t(i)));
    }
    const uint32_t tokens = load_u32(head + 8);
    if (tokens == 0 || tokens > uint32_t(INT32_MAX)) {
      fail_at(path, off + 8, fmt::format("batch {}: token count {} is outside 1..{}", i, tokens, INT32_MAX));
    }
    const uint32_t flags = load_u32(head + 12);
    if (flags & ~kKnownBatchFlags) fail_at(path, off + 12, fmt::format("batch {}: unknown flags 0x{:X}", i, flags));
    const uint64_t plen = load_u64(head + 16);
    const uint64_t expect = payload_bytes(h, tokens);
    if (plen != expect) {
      fail_at(path, off + 16,
              fmt::format("batch {}: payload length {} does not match {} tokens x {} layers ({} bytes expected)", i,
                          plen, tokens, h.layers.size(), expect));
    }
    const uint64_t record = kBatchHeadBytes + plen + 4;
    if (off + record > size_) {
      fail_at(path, off,
              fmt::format("truncated batch {}: its record of {} bytes ends at byte {}, past the end of the "
                          "file ({} bytes)",
                          i, record, off + record, size_));
    }
    const uint64_t pstart = off + kBatchHeadBytes;
    uint32_t crc = crc32(head + 4, kBatchHeadBytes - 4);
    if (h.kind == TraceKind::kRouting) {
      BatchRouting& b = routing ? *routing : scratch_;
      b.resize(int(tokens), h.n_layers(), h.top_k, h.has_weights);
      b.flags = flags;
      read_at(pstart, b.experts.data(), b.experts.size() * 2);
      crc = crc32(b.experts.data(), b.experts.size() * 2, crc);
      if (h.has_weights) {
        read_at(pstart + b.experts.size() * 2, b.weights.data(), b.weights.size() * 4);
        crc = crc32(b.weights.data(), b.weights.size() * 4, crc);
      }
      check_crc(i, pstart + plen, crc);
      const size_t per_layer = size_t(tokens) * size_t(h.top_k);
      size_t e = 0;
      bool weight = false;
      if (const std::string msg = routing_problem(h, b, e, weight); !msg.empty()) {
        const uint64_t at = weight ? pstart + 2 * b.experts.size() + 4 * e : pstart + 2 * e;
        fail_at(path, at,
                fmt::format("batch {}, layer {}, token {}: {}", i, h.layers[e / per_layer],
                            (e % per_layer) / size_t(h.top_k), msg));
      }
      if (counts) *counts = count_experts(b, h.experts);
    } else {
      if (!counts) throw std::logic_error("counts trace read as routing");
      counts->resize(int(tokens), h.n_layers(), h.experts);
      counts->flags = flags;
      read_at(pstart, counts->counts.data(), counts->counts.size() * 4);
      crc = crc32(counts->counts.data(), counts->counts.size() * 4, crc);
      check_crc(i, pstart + plen, crc);
      for (int l = 0; l < h.n_layers(); ++l) {
        uint64_t sum = 0;
        for (int e = 0; e < h.experts; ++e) {
          const uint32_t c = counts->count(l, e);
          if (c > tokens) {
            fail_at(path, pstart + 4 * (uint64_t(l) * h.experts + e),
                    fmt::format("batch {}, layer {}: expert {} has {} tokens, more than the batch's {}", i, h.layers[l],
                                e, c, tokens));
          }
          sum += c;
        }
        if (sum > uint64_t(tokens) * uint64_t(h.top_k)) {
          fail_at(path, pstart + 4 * uint64_t(l) * h.experts,
                  fmt::format("batch {}, layer {}: counts sum to {}, more than tokens x top_k = {}", i, h.layers[l],
                              sum, uint64_t(tokens) * h.top_k));
        }
      }
    }
    last_record_bytes_ = record;
    last_tokens_ = tokens;
  }
  void check_crc(uint64_t i, uint64_t at, uint32_t crc) {
    unsigned char b[4];
    read_at(at, b, 4);
    if (load_u32(b) != crc) {
      fail_at(path, at,
              fmt::format("batch {}: checksum mismatch (stored {:08X}, computed {:08X}): the batch is corrupt", i,
                          load_u32(b), crc));
    }
  }
  void read_counts_at(uint64_t i, uint64_t off, LayerCounts& out) { read_record(i, off, nullptr, &out); }
};

// ---------------------------------------------------------------------------------------------------------------
// JSON-lines form: line 1 (after blank and '#' lines) is the header object, every further line one batch.
class JsonlReader final : public TraceReader::Impl {
 public:
  explicit JsonlReader(const std::string& p, std::shared_ptr<const std::string> bytes = nullptr)
      : mem_(std::move(bytes)) {
    path = p;
    if (mem_) {
      in_ = std::make_unique<std::istringstream>(*mem_);
    } else {
      in_ = std::make_unique<std::ifstream>(p, std::ios::binary);
    }
    if (!*in_) throw InputError(format_location(p, "", fmt::format("cannot open: {}", std::strerror(errno))));
    nlohmann::json j;
    if (!next_line(j)) fail_line(path, line_, "empty file: expected a JSON-lines header");
    if (!j.is_object()) fail_line(path, line_, "header: expected a JSON object");
    if (auto v = j.find("version"); v != j.end() && (!v->is_number_integer() || v->get<int64_t>() != 1)) {
      fail_line(path, line_, "unsupported format version (this lina reads version 1)");
    }
    has_batches_ = j.contains("batches");
    has_tokens_ = j.contains("tokens");
    h = header_from_json(j, path, fmt::format("line {}", line_));
    data_pos_ = in_->tellg();
    data_line_ = line_;
  }

  bool binary() const override { return false; }

  bool next(BatchRouting& out) override {
    if (h.kind != TraceKind::kRouting) {
      throw InputError(format_location(path, "", "is a counts trace; this command needs a routing trace"));
    }
    nlohmann::json j;
    if (!next_line(j)) return finish();
    parse_routing(j, out);
    ++count_;
    tokens_ += uint64_t(out.tokens);
    return true;
  }
  bool next_counts(LayerCounts& out) override {
    if (h.kind == TraceKind::kRouting) {
      if (!next(scratch_)) return false;
      out = count_experts(scratch_, h.experts);
      return true;
    }
    nlohmann::json j;
    if (!next_line(j)) return finish();
    parse_counts(j, out);
    ++count_;
    tokens_ += uint64_t(out.tokens);
    return true;
  }
  void rewind() override {
    in_->clear();
    in_->seekg(data_pos_);
    line_ = data_line_;
    count_ = 0;
    tokens_ = 0;
  }
  void read(uint64_t i, BatchRouting& out) override {
    JsonlReader other(path, mem_);
    for (uint64_t k = 0; k <= i; ++k) {
      if (!other.next(out)) {
        throw InputError(format_location(path, "", fmt::format("batch {} does not exist ({} batches)", i, k)));
      }
    }
  }
  void read_counts(uint64_t i, LayerCounts& out) override {
    JsonlReader other(path, mem_);
    for (uint64_t k = 0; k <= i; ++k) {
      if (!other.next_counts(out)) {
        throw InputError(format_location(path, "", fmt::format("batch {} does not exist ({} batches)", i, k)));
      }
    }
  }

 private:
  std::shared_ptr<const std::string> mem_;
  std::unique_ptr<std::istream> in_;
  uint64_t line_ = 0;
  std::streampos data_pos_{};
  uint64_t data_line_ = 0;
  bool has_batches_ = false;
  bool has_tokens_ = false;
  uint64_t count_ = 0;
  uint64_t tokens_ = 0;
  BatchRouting scratch_;

  bool next_line(nlohmann::json& j) {
    std::string s;
    while (std::getline(*in_, s)) {
      ++line_;
      if (!s.empty() && s.back() == '\r') s.pop_back();
      const auto first = s.find_first_not_of(" \t");
      if (first == std::string::npos || s[first] == '#') continue;
      j = parse_json_checked(s, [&](uint64_t byte, const std::string& msg) {
        fail_line(path, line_, fmt::format("not JSON at byte {} of the line: {}", byte, msg));
      });
      return true;
    }
    return false;
  }
  bool finish() {
    if (has_batches_ && count_ != h.batches) {
      fail_line(path, line_, fmt::format("the header says {} batches, the file holds {}", h.batches, count_));
    }
    if (has_tokens_ && tokens_ != h.tokens) {
      fail_line(path, line_, fmt::format("the header says {} tokens, the batches hold {}", h.tokens, tokens_));
    }
    return false;
  }
  int batch_common(const nlohmann::json& j, const char* payload_key, uint32_t& flags) {
    if (!j.is_object()) fail_line(path, line_, "a batch must be a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      if (k != "tokens" && k != "prefill" && k != payload_key && !(k == "weights" && h.has_weights)) {
        fail_line(path, line_, fmt::format("unknown batch key \"{}\"", k));
      }
    }
    auto t = j.find("tokens");
    if (t == j.end() || !t->is_number_integer() || t->get<int64_t>() < 1 || t->get<int64_t>() > INT32_MAX) {
      fail_line(path, line_, "\"tokens\" must be a positive integer");
    }
    flags = 0;
    if (auto p = j.find("prefill"); p != j.end()) {
      if (!p->is_boolean()) fail_line(path, line_, "\"prefill\" must be true or false");
      if (p->get<bool>()) flags |= kBatchPrefill;
    }
    auto a = j.find(payload_key);
    if (a == j.end() || !a->is_array()) {
      fail_line(path, line_, fmt::format("\"{}\" must be an array with one entry per layer", payload_key));
    }
    if (a->size() != h.layers.size()) {
      fail_line(path, line_,
                fmt::format("layer count mismatch: \"{}\" has {} layers, the header lists {}", payload_key, a->size(),
                            h.layers.size()));
    }
    return t->get<int>();
  }
  void parse_routing(const nlohmann::json& j, BatchRouting& out) {
    uint32_t flags = 0;
    const int tokens = batch_common(j, "experts", flags);
    const auto& ex = j["experts"];
    for (size_t l = 0; l < ex.size(); ++l) {
      if (!ex[l].is_array() || ex[l].size() != size_t(tokens)) {
        fail_line(path, line_, fmt::format("\"experts\"[{}] must hold {} tokens", l, tokens));
      }
    }
    const nlohmann::json* w = nullptr;
    if (h.has_weights) {
      auto it = j.find("weights");
      if (it == j.end() || !it->is_array() || it->size() != h.layers.size()) {
        fail_line(path, line_, "\"weights\" must be an array with one entry per layer (the header has has_weights)");
      }
      w = &*it;
      for (size_t l = 0; l < w->size(); ++l) {
        if (!(*w)[l].is_array() || (*w)[l].size() != size_t(tokens)) {
          fail_line(path, line_, fmt::format("\"weights\"[{}] must hold {} tokens", l, tokens));
        }
      }
    }
    out.resize(tokens, h.n_layers(), h.top_k, h.has_weights);
    out.flags = flags;
    const int k = h.top_k;
    for (int l = 0; l < h.n_layers(); ++l) {
      for (int t = 0; t < tokens; ++t) {
        const auto& c = ex[size_t(l)][size_t(t)];
        auto dst = out.choices(l, t);
        if (c.is_null()) {
          std::fill(dst.begin(), dst.end(), kNoExpert);
          if (w && !(*w)[size_t(l)][size_t(t)].is_null()) {
            fail_line(
                path, line_,
                fmt::format("layer {}, token {}: weights given for an unrecorded choice", h.layers[size_t(l)], t));
          }
          for (int s = 0; s < k; ++s) {
            if (w) out.weights[out.index(l, t, s)] = 0.0f;
          }
          continue;
        }
        if (!c.is_array() || c.size() != size_t(k)) {
          fail_line(
              path, line_,
              fmt::format("layer {}, token {}: expected an array of {} expert ids or null", h.layers[size_t(l)], t, k));
        }
        for (int s = 0; s < k; ++s) {
          const auto& v = c[size_t(s)];
          if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= h.experts) {
            fail_line(path, line_,
                      fmt::format("layer {}, token {}: expert id {} is not in 0..{} (experts = {})",
                                  h.layers[size_t(l)], t, v.dump(), h.experts - 1, h.experts));
          }
          dst[size_t(s)] = uint16_t(v.get<int>());
        }
        if (w) {
          const auto& wc = (*w)[size_t(l)][size_t(t)];
          if (!wc.is_array() || wc.size() != size_t(k)) {
            fail_line(path, line_,
                      fmt::format("layer {}, token {}: expected {} gate weights", h.layers[size_t(l)], t, k));
          }
          for (int s = 0; s < k; ++s) {
            if (!wc[size_t(s)].is_number()) {
              fail_line(path, line_,
                        fmt::format("layer {}, token {}: gate weight must be a number", h.layers[size_t(l)], t));
            }
            out.weights[out.index(l, t, s)] = wc[size_t(s)].get<float>();
          }
        }
      }
    }
    const size_t per_layer = size_t(tokens) * size_t(k);
    size_t e = 0;
    bool weight = false;
    if (const std::string msg = routing_problem(h, out, e, weight); !msg.empty()) {
      fail_line(path, line_,
                fmt::format("layer {}, token {}: {}", h.layers[e / per_layer], (e % per_layer) / size_t(k), msg));
    }
  }
  void parse_counts(const nlohmann::json& j, LayerCounts& out) {
    uint32_t flags = 0;
    const int tokens = batch_common(j, "counts", flags);
    const auto& cs = j["counts"];
    out.resize(tokens, h.n_layers(), h.experts);
    out.flags = flags;
    for (int l = 0; l < h.n_layers(); ++l) {
      const auto& row = cs[size_t(l)];
      if (!row.is_array() || row.size() != size_t(h.experts)) {
        fail_line(path, line_, fmt::format("\"counts\"[{}] must hold {} expert counts", l, h.experts));
      }
      uint64_t sum = 0;
      for (int e = 0; e < h.experts; ++e) {
        const auto& v = row[size_t(e)];
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > tokens) {
          fail_line(
              path, line_,
              fmt::format("layer {}: count of expert {} must be an integer in 0..{}", h.layers[size_t(l)], e, tokens));
        }
        out.counts[size_t(l) * size_t(h.experts) + size_t(e)] = v.get<uint32_t>();
        sum += v.get<uint64_t>();
      }
      if (sum > uint64_t(tokens) * uint64_t(h.top_k)) {
        fail_line(path, line_,
                  fmt::format("layer {}: counts sum to {}, more than tokens x top_k = {}", h.layers[size_t(l)], sum,
                              uint64_t(tokens) * h.top_k));
      }
    }
  }
};

}  // namespace

TraceReader::TraceReader(const std::string& path) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw InputError(format_location(path, "", fmt::format("cannot open: {}", std::strerror(errno))));
  int c = probe.get();
  while (c == ' ' || c == '\t' || c == '\r' || c == '\n') c = probe.get();
  probe.close();
  if (c == std::char_traits<char>::eof()) throw InputError(format_location(path, "", "empty file: not a lina trace"));
  if (c == '{' || c == '#') {
    impl_ = std::make_unique<JsonlReader>(path);
  } else {
    impl_ = std::make_unique<BinaryReader>(path);  // reports a wrong magic at its first differing byte
  }
}
TraceReader TraceReader::from_bytes(const std::string& name, std::string bytes) {
  auto mem = std::make_shared<const std::string>(std::move(bytes));
  TraceReader r;
  const size_t first = mem->find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw InputError(format_location(name, "", "empty file: not a lina trace"));
  if ((*mem)[first] == '{' || (*mem)[first] == '#') {
    r.impl_ = std::make_unique<JsonlReader>(name, mem);
  } else {
    r.impl_ = std::make_unique<BinaryReader>(name, mem);
  }
  return r;
}
TraceReader::~TraceReader() = default;
TraceReader::TraceReader(TraceReader&&) noexcept = default;
TraceReader& TraceReader::operator=(TraceReader&&) noexcept = default;

const TraceHeader& TraceReader::header() const { return impl_->h; }
const std::string& TraceReader::path() const { return impl_->path; }
bool TraceReader::binary() const { return impl_->binary(); }
bool TraceReader::next(BatchRouting& out) { return impl_->next(out); }
bool TraceReader::next(LayerCounts& out) { return impl_->next_counts(out); }
void TraceReader::rewind() { impl_->rewind(); }
void TraceReader::read(uint64_t i, BatchRouting& out) { impl_->read(i, out); }
void TraceReader::read(uint64_t i, LayerCounts& out) { impl_->read_counts(i, out); }

}  // namespace lina::traces

// The native format and the JSON-lines form: round trips, random access, and clean errors on bad input
// (traces/FORMAT.md).
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "sched/error.hpp"
#include "tests/traces/helpers.hpp"
#include "traces/reader.hpp"
#include "traces/writer.hpp"

namespace lina::traces {
namespace {

using ::testing::HasSubstr;
using namespace lina::traces::testing;

uint64_t u64_at(const std::string& s, size_t off) {
  uint64_t v;
  std::memcpy(&v, s.data() + off, 8);
  return v;
}
void put_u32(std::string& s, size_t off, uint32_t v) { std::memcpy(s.data() + off, &v, 4); }

std::vector<BatchRouting> sample_batches(const TraceHeader& h) {
  std::vector<BatchRouting> bs;
  const int sizes[] = {5, 1, 17, 3};
  for (int i = 0; i < 4; ++i) bs.push_back(random_batch(h, sizes[i], 100 + uint64_t(i)));
  bs[0].flags = kBatchPrefill;
  // An unrecorded choice (a dropped log record) survives the round trip.
  for (int s = 0; s < h.top_k; ++s) bs[2].experts[bs[2].index(1, 4, s)] = kNoExpert;
  if (h.has_weights) {
    for (int s = 0; s < h.top_k; ++s) bs[2].weights[bs[2].index(1, 4, s)] = 0.0f;
  }
  return bs;
}

void expect_same(const BatchRouting& a, const BatchRouting& b) {
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.layers, b.layers);
  EXPECT_EQ(a.top_k, b.top_k);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.experts, b.experts);
  EXPECT_EQ(a.weights, b.weights);
}

void round_trip(const std::string& path, bool weights) {
  TraceHeader h = make_header({1, 3, 5}, 16, 2, weights);
  h.notes = {{"why", "round trip"}};
  const auto bs = sample_batches(h);
  write_trace(path, h, bs);
  TraceHeader got;
  const auto back = read_all(path, &got);
  ASSERT_EQ(back.size(), bs.size());
  for (size_t i = 0; i < bs.size(); ++i) expect_same(bs[i], back[i]);
  EXPECT_EQ(got.model, "test-model");
  EXPECT_EQ(got.layers, (std::vector<int>{1, 3, 5}));
  EXPECT_EQ(got.experts, 16);
  EXPECT_EQ(got.top_k, 2);
  EXPECT_EQ(got.has_weights, weights);
  EXPECT_EQ(got.licence, "CC0-1.0");
  EXPECT_EQ(got.batches, 4u);
  EXPECT_EQ(got.tokens, 26u);
  EXPECT_EQ(got.notes["why"], "round trip");
  // Random access, out of order, does not disturb streaming.
  TraceReader r(path);
  BatchRouting b;
  ASSERT_TRUE(r.next(b));
  r.read(3, b);
  expect_same(bs[3], b);
  r.read(0, b);
  expect_same(bs[0], b);
  ASSERT_TRUE(r.next(b));
  expect_same(bs[1], b);
  // Layer counts of a routing trace: batch 2, layer index 1 lost one token's two choices.
  LayerCounts c;
  r.read(2, c);
  uint32_t sum = 0;
  for (int e = 0; e < 16; ++e) sum += c.count(1, e);
  EXPECT_EQ(sum, 2u * 17u - 2u);
}

TEST(TraceFormat, BinaryRoundTrip) { round_trip(temp_path("t.ltr"), false); }
TEST(TraceFormat, BinaryRoundTripWithWeights) { round_trip(temp_path("t.ltr"), true); }
TEST(TraceFormat, JsonLinesRoundTrip) { round_trip(temp_path("t.jsonl"), false); }
TEST(TraceFormat, JsonLinesRoundTripWithWeights) { round_trip(temp_path("t.jsonl"), true); }

TEST(TraceFormat, CountsKindRoundTrip) {
  for (const char* name : {"c.ltr", "c.jsonl"}) {
    TraceHeader h = make_header({0, 1}, 4, 2);
    h.kind = TraceKind::kCounts;
    const std::string path = temp_path(name);
    TraceWriter w(path, h);
    LayerCounts a;
    a.resize(3, 2, 4);
    a.flags = kBatchPrefill;
    a.counts = {3, 1, 2, 0, 0, 3, 3, 0};  // each layer sums to 3 tokens x top-2 = 6
    LayerCounts b;
    b.resize(1, 2, 4);
    b.counts = {1, 1, 0, 0, 0, 0, 1, 1};
    w.write(a);
    w.write(b);
    w.close();
    TraceReader r(path);
    EXPECT_EQ(r.header().kind, TraceKind::kCounts);
    EXPECT_EQ(r.header().batches, 2u);
    EXPECT_EQ(r.header().tokens, 4u);
    LayerCounts c;
    ASSERT_TRUE(r.next(c));
    EXPECT_EQ(c.counts, a.counts);
    EXPECT_EQ(c.tokens, 3);
    EXPECT_EQ(c.flags, kBatchPrefill);
    ASSERT_TRUE(r.next(c));
    EXPECT_EQ(c.counts, b.counts);
    EXPECT_FALSE(r.next(c));
    r.read(0, c);
    EXPECT_EQ(c.counts, a.counts);
    BatchRouting br;
    EXPECT_THROW(r.next(br), InputError);  // a counts trace has no per-token routing
  }
}

TEST(TraceFormat, SameDataSameBytes) {
  const TraceHeader h = make_header({0, 1, 2}, 8, 2, true);
  const auto bs = sample_batches(h);
  const std::string a = temp_path("a.ltr"), b = temp_path("b.ltr");
  write_trace(a, h, bs);
  write_trace(b, h, bs);
  EXPECT_GT(read_bytes(a).size(), 500u);
  EXPECT_EQ(read_bytes(a), read_bytes(b));
}

TEST(TraceFormat, WriterIsAtomic) {
  const std::string path = temp_path("w.ltr");
  const TraceHeader h = make_header({0}, 4, 1);
  {
    TraceWriter w(path, h);
    w.write(random_batch(h, 3, 1));
    EXPECT_FALSE(std::filesystem::exists(path));  // only PATH.tmp exists until close()
    EXPECT_TRUE(std::filesystem::exists(path + ".tmp"));
  }
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));  // abandoned: removed
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(TraceFormat, WriterRejectsBadBatches) {
  const std::string path = temp_path("w.ltr");
  const TraceHeader h = make_header({0, 1}, 4, 2);
  TraceWriter w(path, h);
  auto b = random_batch(h, 3, 1);
  b.experts[0] = 4;
  EXPECT_THROW(w.write(b), InputError);
  auto c = random_batch(make_header({0, 1, 2}, 4, 2), 3, 1);
  EXPECT_THROW(w.write(c), InputError);  // three layers, header has two
}

// ---- errors --------------------------------------------------------------------------------------------------

std::string error_of(const std::string& path) {
  try {
    TraceReader r(path);
    BatchRouting b;
    while (r.next(b)) {
    }
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

// A valid binary trace and the offsets of its parts.
struct Sample {
  std::string path;
  std::string bytes;
  uint64_t data_start;
};
Sample sample_file(const std::string& name) {
  Sample s;
  s.path = temp_path(name);
  const TraceHeader h = make_header({1, 3, 5}, 16, 2, true);
  write_trace(s.path, h, sample_batches(h));
  s.bytes = read_bytes(s.path);
  s.data_start = 24 + u64_at(s.bytes, 16);
  return s;
}

TEST(TraceErrors, WrongMagic) {
  Sample s = sample_file("m.ltr");
  s.bytes[2] = 'X';
  write_text(s.path, s.bytes);
  const std::string e = error_of(s.path);
  EXPECT_THAT(e, HasSubstr(s.path + ": byte 2: wrong magic"));
  write_text(s.path, "PK\x03\x04 not a trace");
  EXPECT_THAT(error_of(s.path), HasSubstr("byte 0: wrong magic"));
}

TEST(TraceErrors, UnsupportedVersion) {
  Sample s = sample_file("v.ltr");
  put_u32(s.bytes, 8, 7);
  write_text(s.path, s.bytes);
  EXPECT_THAT(error_of(s.path), HasSubstr("byte 8: unsupported format version 7"));
}

TEST(TraceErrors, HeaderNotJson) {
  Sample s = sample_file("h.ltr");
  s.bytes[24 + 9] = '!';  // {"format":"lina... -> {"format"!"lina...
  write_text(s.path, s.bytes);
  EXPECT_THAT(error_of(s.path), HasSubstr("byte 33: header is not JSON"));
  const std::string j = temp_path("h.jsonl");
  write_text(j, "{\"format\": \"lina.trace\", oops\n");
  EXPECT_THAT(error_of(j), HasSubstr(j + ": line 1: not JSON"));
  write_text(j, "{\"format\": \"lina.trace\", \"batches\": 1e400}\n");
  EXPECT_THAT(error_of(j), HasSubstr(j + ": line 1: not JSON at byte 37 of the line: number overflow"));
}

TEST(TraceErrors, TruncatedBatch) {
  Sample s = sample_file("t.ltr");
  // Batch 0: 5 tokens x 3 layers x 2 slots = 30 entries: 24-byte head + 30 ids x 2 + 30 weights x 4 + checksum.
  const uint64_t batch1 = s.data_start + 24 + 60 + 120 + 4;
  write_text(s.path, s.bytes.substr(0, batch1 + 30));
  EXPECT_THAT(error_of(s.path), HasSubstr(fmt::format("byte {}: truncated batch 1", batch1)));
  write_text(s.path, s.bytes.substr(0, batch1 + 10));  // cut inside the head
  EXPECT_THAT(error_of(s.path), HasSubstr(fmt::format("byte {}: truncated batch 1", batch1)));
}

TEST(TraceErrors, ExpertIdOutOfRange) {
  Sample s = sample_file("e.ltr");
  // Batch 0, layer 3 (index 1), token 2, slot 1: entry (1*5 + 2)*2 + 1 = 15. Set it to 16 with a valid checksum,
  // so that the id check (not the checksum) reports it.
  const uint64_t at = s.data_start + 24 + 2 * 15;
  s.bytes[at] = 16;
  s.bytes[at + 1] = 0;
  const uint32_t crc = crc32(s.bytes.data() + s.data_start + 4, 20 + 60 + 120);
  put_u32(s.bytes, s.data_start + 24 + 180, crc);
  write_text(s.path, s.bytes);
  EXPECT_THAT(error_of(s.path),
              HasSubstr(fmt::format("byte {}: batch 0, layer 3, token 2: expert id 16 >= experts (16)", at)));
  const std::string j = temp_path("e.jsonl");
  write_text(j,
             "{\"format\":\"lina.trace\",\"model\":\"m\",\"layers\":[0],\"experts\":4,\"top_k\":1}\n"
             "{\"tokens\":2,\"experts\":[[[0],[4]]]}\n");
  EXPECT_THAT(error_of(j), HasSubstr("line 2: layer 0, token 1: expert id 4 is not in 0..3"));
}

TEST(TraceErrors, CorruptPayloadIsAChecksumError) {
  Sample s = sample_file("c.ltr");
  s.bytes[s.data_start + 24 + 100] ^= 0x10;  // inside batch 0's weights
  write_text(s.path, s.bytes);
  EXPECT_THAT(error_of(s.path), HasSubstr(fmt::format("byte {}: batch 0: checksum mismatch", s.data_start + 204)));
}

TEST(TraceErrors, LayerCountMismatch) {
  Sample s = sample_file("l.ltr");
  // The header lists three layers; a payload length for two layers is a mismatch at the length field.
  const uint64_t two_layers = 5 * 2 * 2 * (2 + 4);
  std::memcpy(s.bytes.data() + s.data_start + 16, &two_layers, 8);
  write_text(s.path, s.bytes);
  EXPECT_THAT(error_of(s.path), HasSubstr(fmt::format("byte {}: batch 0: payload length 120 does not match 5 tokens "
                                                      "x 3 layers",
                                                      s.data_start + 16)));
  const std::string j = temp_path("l.jsonl");
  write_text(j,
             "# a hand-written trace\n"
             "{\"format\":\"lina.trace\",\"model\":\"m\",\"layers\":[0,2],\"experts\":4,\"top_k\":1}\n"
             "\n"
             "{\"tokens\":1,\"experts\":[[[0]],[[1]]]}\n"
             "{\"tokens\":1,\"experts\":[[[0]]]}\n");
  EXPECT_THAT(error_of(j), HasSubstr("line 5: layer count mismatch: \"experts\" has 1 layers, the header lists 2"));
}

TEST(TraceErrors, BatchCountMismatch) {
  const std::string j = temp_path("n.jsonl");
  write_text(j,
             "{\"format\":\"lina.trace\",\"model\":\"m\",\"layers\":[0],\"experts\":4,\"top_k\":1,\"batches\":2}\n"
             "{\"tokens\":1,\"experts\":[[[3]]]}\n");
  EXPECT_THAT(error_of(j), HasSubstr("the header says 2 batches, the file holds 1"));
}

TEST(TraceErrors, RandomAccessNeedsTheIndex) {
  Sample s = sample_file("r.ltr");
  write_text(s.path, s.bytes.substr(0, s.bytes.size() - 3));
  TraceReader r(s.path);
  BatchRouting b;
  EXPECT_THROW(r.read(1, b), InputError);
  ASSERT_TRUE(r.next(b));  // streaming still reads the intact batches
}

// Thousands of random corruptions of a valid file: each must read cleanly or fail with InputError, never crash
// or hang. The seed is fixed so that a failure reproduces.
TEST(TraceErrors, FuzzedCorruptionsFailCleanly) {
  Sample s = sample_file("f.ltr");
  const std::string path = "fuzz.ltr";
  std::mt19937_64 rng(2024);
  int errors = 0, clean = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int iter = 0; iter < 3000; ++iter) {
    std::string b = s.bytes;
    const int kind = int(rng() % 4);
    const int edits = 1 + int(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = size_t(rng() % b.size());
      if (kind == 0) {
        b[at] = char(b[at] ^ char(1 << (rng() % 8)));  // bit flip
      } else if (kind == 1) {
        b.resize(at);  // truncation
        if (b.empty()) break;
      } else if (kind == 2) {
        b[at] = char(rng());  // byte overwrite
      } else {
        const size_t n = std::min<size_t>(b.size() - at, 1 + rng() % 8);  // run of 0xFF / 0x00
        std::memset(b.data() + at, (rng() & 1) ? 0xFF : 0x00, n);
      }
    }
    try {
      // In memory: the same reader code as for files, without 3000 file system round trips.
      TraceReader r = TraceReader::from_bytes(path, b);
      BatchRouting batch;
      LayerCounts counts;
      while (r.next(batch)) {
      }
      for (uint64_t i = 0; i < r.header().batches && i < 8; ++i) r.read(i, counts);
      ++clean;
    } catch (const InputError& e) {
      ++errors;
      EXPECT_THAT(std::string(e.what()), HasSubstr(path + ": "));
    }
  }
  EXPECT_GT(errors, 2500);  // nearly every corruption is detected (a flip in header padding is harmless)
  EXPECT_EQ(errors + clean, 3000);
  // A hang guard, not a speed target (bench/ has those): 3000 reads take about 0.5 s in Release; sanitizer builds on
  // a loaded 2-core CI machine are 10-50x slower, so the bound is generous.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(120));
}

}  // namespace
}  // namespace lina::traces

// Writing traces (traces/FORMAT.md). The form follows the file name: "*.jsonl" is the JSON-lines form, anything
// else the binary form. Output goes to "PATH.tmp" and is renamed to PATH by close(), so a reader never sees a
// half-written trace; a writer destroyed without close() removes its temporary file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "sched/routing.hpp"
#include "traces/format.hpp"

namespace lina::traces {

class TraceWriter {
 public:
  // `header.batches` and `header.tokens` are ignored: the writer counts them.
  TraceWriter(std::string path, TraceHeader header);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // Appends a batch; its shape must match the header (layers, top_k, weights, ids < experts) or InputError.
  void write(const BatchRouting& b);
  void write(const LayerCounts& c);  // counts traces only
  // Writes the index and trailer, fills in the totals and renames the file into place.
  void close();

  const TraceHeader& header() const { return h_; }
  bool jsonl() const { return jsonl_; }

 private:
  std::string path_;
  std::string tmp_;
  TraceHeader h_;
  bool jsonl_ = false;
  std::FILE* f_ = nullptr;
  uint64_t header_bytes_ = 0;
  uint64_t pos_ = 0;
  // The binary index: 8 bytes per batch are kept until close() (the reader, not the writer, must stream).
  std::vector<uint64_t> offsets_;
  std::string jsonl_body_;  // the JSON-lines form is for small traces: batches wait here for the final header

  void put(const void* p, size_t n);
  void begin_record(uint32_t tokens, uint32_t flags, uint64_t payload, uint32_t& crc);
};

// Writes a whole in-memory trace (tests, small tools).
void write_trace(const std::string& path, const TraceHeader& header, const std::vector<BatchRouting>& batches);

// Reads a whole trace into memory (tests, small traces); the header's totals are those of the file.
std::vector<BatchRouting> read_all(const std::string& path, TraceHeader* header = nullptr);

}  // namespace lina::traces

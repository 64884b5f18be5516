// Reading traces: the binary format and the JSON-lines form (traces/FORMAT.md), through one interface.
//
// The reader streams: it holds one batch at a time (the caller's BatchRouting, whose capacity is reused), so its
// memory does not grow with the file. Every record is validated (lengths, counts, checksum, expert ids) and any
// problem is an InputError "FILE: byte N: problem" (binary) or "FILE: line N: problem" (JSON lines).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sched/routing.hpp"
#include "traces/format.hpp"

namespace lina::traces {

class TraceReader {
 public:
  // Opens FILE and reads its header. The form is detected from the first byte (0x89: binary; '{' or '#': JSON
  // lines).
  explicit TraceReader(const std::string& path);
  // A trace held in memory; `name` stands for the file in error messages.
  static TraceReader from_bytes(const std::string& name, std::string bytes);
  ~TraceReader();
  TraceReader(TraceReader&&) noexcept;
  TraceReader& operator=(TraceReader&&) noexcept;

  const TraceHeader& header() const;
  const std::string& path() const;
  bool binary() const;

  // The next batch in file order; false at the end, after checking the header's totals (and, for the binary
  // form, the index and trailer). The BatchRouting form needs a routing trace; the LayerCounts form reads both
  // kinds (routing batches are counted).
  bool next(BatchRouting& out);
  bool next(LayerCounts& out);
  // Back to the first batch.
  void rewind();

  // Random access to batch i (0-based) through the binary form's index; the JSON-lines form scans from the start.
  // Does not change the position of next().
  void read(uint64_t i, BatchRouting& out);
  void read(uint64_t i, LayerCounts& out);

  struct Impl;

 private:
  TraceReader() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lina::traces

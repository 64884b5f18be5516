// Converters from the public expert-selection traces (../shared/traces/README.md describes their layouts) into the
// native format (`lina trace convert`, DESIGN.md 5).
//
// Batching: a request's prefill is one batch (flagged prefill). Decode steps carry one token per request; by default
// every decode step of every request is its own one-token batch, and with regroup_decode = N the requests are taken
// N at a time (in input order) and step s of those N requests forms one batch, as a continuous-batching server would
// run them. Choices the source did not record are kNoExpert (see sched/routing.hpp).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sched/routing.hpp"

namespace lina::traces {

struct ConvertOptions {
  std::string from;                 // deepseek-csv, llama4-json, mixtral-jsonl, mixtral-raw
  std::vector<std::string> inputs;  // files, in the order their requests enter the trace
  std::string output;               // .jsonl: JSON lines, else binary
  int regroup_decode = 1;           // requests per decode batch
  int experts = 0;                  // 0: the source model's expert count
  // Header overrides (empty: the source's defaults).
  std::string model, source, dataset, licence;
};

struct ConvertSummary {
  uint64_t requests = 0;
  uint64_t batches = 0;
  uint64_t tokens = 0;
  uint64_t unrecorded = 0;  // token-layer choices marked kNoExpert
  std::vector<std::string> notes;
};

// The formats `from` accepts.
const std::vector<std::string>& source_formats();

ConvertSummary convert(const ConvertOptions& options);

// One request of a source: its prefill (tokens = 0 when the source has none) and its decode steps.
struct Request {
  BatchRouting prefill;
  std::vector<BatchRouting> decode;
};

// Concatenates batches token-wise (all must have the same layers, top_k and weights presence).
BatchRouting concat_tokens(const std::vector<const BatchRouting*>& parts);

// Parses RFC 4180 CSV: quoted fields may hold commas, doubled quotes and line breaks; records end with CRLF or LF.
// Calls on_record(fields, line_of_record_start) for each record; throws InputError naming the line on a bad quote.
void parse_csv(const std::string& text, const std::string& file,
               const std::function<void(const std::vector<std::string>&, uint64_t)>& on_record);

}  // namespace lina::traces

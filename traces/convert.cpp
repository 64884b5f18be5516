#include "traces/convert.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "sched/error.hpp"
#include "sched/params.hpp"
#include "traces/writer.hpp"

namespace lina::traces {
namespace {

[[noreturn]] void fail(const std::string& file, const std::string& where, const std::string& msg) {
  throw InputError(format_location(file, where, msg));
}
std::string line_at(uint64_t line) { return fmt::format("line {}", line); }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string base_name(const std::string& p) { return std::filesystem::path(p).filename().string(); }

bool parse_int(std::string_view s, int64_t& v) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

struct SourceDefaults {
  const char* model;
  const char* source;
  int experts;
  bool ordered;
};
SourceDefaults defaults_of(const std::string& from) {
  if (from == "deepseek-csv") {
    return {"DeepSeek-V2-Lite-Chat", "ngavhane/moe-beyond @ 4dca2eac, training_data_eamc", 64, false};
  }
  if (from == "llama4-json") {
    return {"Llama-4-Maverick-17B-128E-Instruct", "andronius-yang/cse223b-proj @ c5a3d172, traffic-gen", 128, true};
  }
  return {"Mixtral-8x7B-Instruct (FP8, vLLM)", "Mario928/speculative-moe @ 216e26eb", 8, true};
}

// Writes requests as batches (see convert.hpp for the regrouping rule).
class BatchEmitter {
 public:
  BatchEmitter(TraceWriter& w, int group) : w_(w), group_(std::max(1, group)) {}
  void add(Request r) {
    pending_.push_back(std::move(r));
    if (int(pending_.size()) >= group_) flush();
  }
  void flush() {
    if (pending_.empty()) return;
    for (auto& r : pending_) {
      if (r.prefill.tokens > 0) {
        r.prefill.flags |= kBatchPrefill;
        w_.write(r.prefill);
      }
    }
    size_t steps = 0;
    for (const auto& r : pending_) steps = std::max(steps, r.decode.size());
    for (size_t s = 0; s < steps; ++s) {
      std::vector<const BatchRouting*> parts;
      for (const auto& r : pending_) {
        if (s < r.decode.size()) parts.push_back(&r.decode[s]);
      }
      BatchRouting b = parts.size() == 1 ? *parts[0] : concat_tokens(parts);
      b.flags &= ~kBatchPrefill;
      w_.write(b);
    }
    pending_.clear();
  }

 private:
  TraceWriter& w_;
  int group_;
  std::vector<Request> pending_;
};

uint64_t count_unrecorded(const BatchRouting& b) {
  uint64_t n = 0;
  for (int l = 0; l < b.layers; ++l) {
    for (int t = 0; t < b.tokens; ++t) n += !b.recorded(l, t);
  }
  return n;
}

// ---- DeepSeek-V2-Lite CSV ------------------------------------------------------------------------------------
// One file = the prefill of one prompt: records layer-major, T tokens per layer, six distinct ids as a set.
Request read_deepseek(const std::string& path, int experts, std::vector<int>& layers, int& top_k) {
  const std::string text = slurp(path);
  struct Row {
    int layer;
    std::vector<int> ids;
    uint64_t line;
  };
  std::vector<Row> rows;
  bool header_seen = false;
  parse_csv(text, path, [&](const std::vector<std::string>& f, uint64_t line) {
    if (!header_seen) {
      header_seen = true;
      if (f.size() != 4 || f[0] != "Layer ID" || f[1] != "Batch Number" || f[2] != "Token" ||
          f[3] != "Activated Expert IDs") {
        fail(path, line_at(line), "expected the header \"Layer ID,Batch Number,Token,Activated Expert IDs\"");
      }
      return;
    }
    if (f.size() != 4) fail(path, line_at(line), fmt::format("expected 4 fields, found {}", f.size()));
    int64_t layer = 0, batch = 0;
    if (!parse_int(f[0], layer) || layer < 0 || layer > 100000) fail(path, line_at(line), "bad layer id");
    if (!parse_int(f[1], batch) || batch != 0)
      fail(path, line_at(line), "batch number must be 0 (one prompt per file)");
    std::string_view ids = f[3];
    if (ids.size() < 2 || ids.front() != '[' || ids.back() != ']') {
      fail(path, line_at(line), "expert ids must look like \"[e0, e1, ...]\"");
    }
    ids = ids.substr(1, ids.size() - 2);
    Row r{int(layer), {}, line};
    while (!ids.empty()) {
      const size_t comma = ids.find(',');
      int64_t e = 0;
      if (!parse_int(ids.substr(0, comma), e) || e < 0 || e >= experts) {
        fail(path, line_at(line), fmt::format("expert id '{}' is not in 0..{}", ids.substr(0, comma), experts - 1));
      }
      r.ids.push_back(int(e));
      if (comma == std::string_view::npos) break;
      ids.remove_prefix(comma + 1);
    }
    std::set<int> distinct(r.ids.begin(), r.ids.end());
    if (distinct.size() != r.ids.size()) fail(path, line_at(line), "an expert id appears twice in one token's set");
    rows.push_back(std::move(r));
  });
  if (rows.empty()) fail(path, "", "no records");
  // Layer-major blocks with equal token counts.
  std::vector<int> file_layers;
  std::vector<size_t> starts;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i == 0 || rows[i].layer != rows[i - 1].layer) {
      if (i > 0 && rows[i].layer < rows[i - 1].layer) {
        fail(path, line_at(rows[i].line), "records are not layer-major (layer ids must increase)");
      }
      file_layers.push_back(rows[i].layer);
      starts.push_back(i);
    }
  }
  // T is the first layer's token count; the first layer that differs is the one reported.
  const size_t T = starts.size() > 1 ? starts[1] : rows.size();
  for (size_t b = 0; b < starts.size(); ++b) {
    const size_t end = b + 1 < starts.size() ? starts[b + 1] : rows.size();
    if (end - starts[b] != T) {
      fail(path, line_at(rows[starts[b]].line),
           fmt::format("layer {} has {} tokens; every layer of a file must have the same count", file_layers[b],
                       end - starts[b]));
    }
  }
  const int k = int(rows[0].ids.size());
  if (layers.empty()) {
    layers = file_layers;
    top_k = k;
  } else if (layers != file_layers) {
    fail(path, "",
         fmt::format("its layers ({}) differ from the first file's ({})", fmt::join(file_layers, ","),
                     fmt::join(layers, ",")));
  }
  Request r;
  r.prefill.resize(int(T), int(layers.size()), top_k, false);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (int(rows[i].ids.size()) != top_k) {
      fail(path, line_at(rows[i].line), fmt::format("expected {} expert ids, found {}", top_k, rows[i].ids.size()));
    }
    auto c = r.prefill.choices(int(i / T), int(i % T));
    for (int s = 0; s < top_k; ++s) c[size_t(s)] = uint16_t(rows[i].ids[size_t(s)]);
  }
  return r;
}

// ---- Llama-4 JSON --------------------------------------------------------------------------------------------
// One file = one request: element s is forward step s (0 = prefill), keys "0".."47", odd keys the MoE layers.
Request read_llama4(const std::string& path, int experts, std::vector<int>& layers) {
  const nlohmann::json j = parse_json_checked(slurp(path), [&](uint64_t byte, const std::string& msg) {
    fail(path, fmt::format("byte {}", byte), "not JSON: " + msg);
  });
  if (!j.is_array() || j.empty()) fail(path, "", "expected a JSON array of forward steps");
  std::vector<int> file_layers;
  for (auto it = j[0].begin(); j[0].is_object() && it != j[0].end(); ++it) {
    int64_t id = 0;
    if (!parse_int(it.key(), id) || id < 0 || id > 100000)
      fail(path, "/0", fmt::format("bad layer key \"{}\"", it.key()));
    if (!it->is_null()) file_layers.push_back(int(id));
  }
  std::sort(file_layers.begin(), file_layers.end());
  if (file_layers.empty()) fail(path, "/0", "no MoE layer (every layer is null)");
  if (layers.empty()) {
    layers = file_layers;
  } else if (layers != file_layers) {
    fail(path, "/0",
         fmt::format("its MoE layers ({}) differ from the first file's ({})", fmt::join(file_layers, ","),
                     fmt::join(layers, ",")));
  }
  Request r;
  for (size_t s = 0; s < j.size(); ++s) {
    const auto& step = j[s];
    const std::string where = fmt::format("/{}", s);
    if (!step.is_object()) fail(path, where, "a step must be an object of layers");
    size_t T = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      auto it = step.find(std::to_string(layers[l]));
      if (it == step.end() || !it->is_array() || it->empty()) {
        fail(path, fmt::format("{}/{}", where, layers[l]), "expected an array of [expert_id] items");
      }
      if (l == 0) T = it->size();
      if (it->size() != T) {
        fail(path, fmt::format("{}/{}", where, layers[l]),
             fmt::format("{} tokens, but layer {} of this step has {}", it->size(), layers[0], T));
      }
    }
    for (auto it = step.begin(); it != step.end(); ++it) {
      int64_t id = 0;
      if (!parse_int(it.key(), id) || (!it->is_null() && !std::binary_search(layers.begin(), layers.end(), int(id)))) {
        fail(path, fmt::format("{}/{}", where, it.key()), "unexpected layer (not a MoE layer of step 0)");
      }
    }
    BatchRouting b;
    b.resize(int(T), int(layers.size()), 1, false);
    for (size_t l = 0; l < layers.size(); ++l) {
      const auto& toks = step[std::to_string(layers[l])];
      for (size_t t = 0; t < T; ++t) {
        const auto& item = toks[t];
        if (!item.is_array() || item.size() != 1 || !item[0].is_number_integer() || item[0].get<int64_t>() < 0 ||
            item[0].get<int64_t>() >= experts) {
          fail(path, fmt::format("{}/{}/{}", where, layers[l], t),
               fmt::format("expected [expert_id] with an id in 0..{}", experts - 1));
        }
        b.experts[b.index(int(l), int(t))] = uint16_t(item[0].get<int>());
      }
    }
    if (s == 0) {
      r.prefill = std::move(b);
    } else {
      r.decode.push_back(std::move(b));
    }
  }
  return r;
}

// ---- Mixtral JSONL -------------------------------------------------------------------------------------------
struct MixRecord {
  std::string dataset;
  int64_t problem = 0;
  int layer = 0;
  int64_t pos = 0;  // token_idx or token_pos
  uint16_t e[2] = {0, 0};
  float w[2] = {0, 0};
  uint64_t line = 0;
};

std::vector<MixRecord> read_mixtral_records(const std::string& path, const char* pos_key, int experts) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "", "cannot open");
  std::vector<MixRecord> out;
  std::string s;
  uint64_t line = 0;
  while (std::getline(in, s)) {
    ++line;
    if (s.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = parse_json_checked(s, [&](uint64_t byte, const std::string& msg) {
      fail(path, line_at(line), fmt::format("not JSON at byte {} of the line: {}", byte, msg));
    });
    MixRecord r;
    r.line = line;
    auto need_int = [&](const char* key, int64_t hi) {
      auto it = j.find(key);
      if (!j.is_object() || it == j.end() || !it->is_number_integer() || it->get<int64_t>() < 0 ||
          it->get<int64_t>() > hi) {
        fail(path, line_at(line), fmt::format("\"{}\" must be an integer in 0..{}", key, hi));
      }
      return it->get<int64_t>();
    };
    r.problem = need_int("problem_id", INT32_MAX);
    r.layer = int(need_int("layer", 100000));
    r.pos = need_int(pos_key, 1 << 24);
    auto d = j.find("dataset");
    if (d == j.end() || !d->is_string()) fail(path, line_at(line), "\"dataset\" must be a string");
    r.dataset = d->get<std::string>();
    // find, not operator[]: a const json's operator[] on a missing key is undefined behaviour.
    static const nlohmann::json kMissing;
    const auto ex_it = j.find("experts"), gp_it = j.find("gating_probs");
    const auto& ex = ex_it == j.end() ? kMissing : *ex_it;
    const auto& gp = gp_it == j.end() ? kMissing : *gp_it;
    if (!ex.is_array() || ex.size() != 2 || !gp.is_array() || gp.size() != 2) {
      fail(path, line_at(line), "\"experts\" and \"gating_probs\" must be arrays of 2");
    }
    for (int s2 = 0; s2 < 2; ++s2) {
      if (!ex[size_t(s2)].is_number_integer() || ex[size_t(s2)].get<int64_t>() < 0 ||
          ex[size_t(s2)].get<int64_t>() >= experts) {
        fail(path, line_at(line), fmt::format("expert id {} is not in 0..{}", ex[size_t(s2)].dump(), experts - 1));
      }
      if (!gp[size_t(s2)].is_number()) fail(path, line_at(line), "gating_probs must be numbers");
      r.e[s2] = uint16_t(ex[size_t(s2)].get<int>());
      r.w[s2] = gp[size_t(s2)].get<float>();
    }
    if (r.e[0] == r.e[1]) fail(path, line_at(line), "the two experts of a token must differ");
    out.push_back(std::move(r));
  }
  return out;
}

void set_choice(BatchRouting& b, int l, int t, const MixRecord& r) {
  for (int s = 0; s < 2; ++s) {
    b.experts[b.index(l, t, s)] = r.e[s];
    b.weights[b.index(l, t, s)] = r.w[s];
  }
}
void fill_unrecorded(BatchRouting& b) {
  std::fill(b.experts.begin(), b.experts.end(), kNoExpert);
  std::fill(b.weights.begin(), b.weights.end(), 0.0f);
}

// *_2_routing.jsonl: decode tokens per (problem, layer), renumbered after dropped records: a layer is aligned
// only when its record count equals the problem's maximum; the others are left unrecorded.
std::vector<Request> mixtral_requests(const std::vector<MixRecord>& recs, const std::vector<int>& layers,
                                      const std::string& path, std::vector<std::string>& notes) {
  std::map<std::pair<std::string, int64_t>, std::map<int, std::vector<const MixRecord*>>> problems;
  std::vector<std::pair<std::string, int64_t>> order;
  for (const auto& r : recs) {
    auto key = std::make_pair(r.dataset, r.problem);
    if (!problems.count(key)) order.push_back(key);
    problems[key][r.layer].push_back(&r);
  }
  std::vector<Request> out;
  for (const auto& key : order) {
    auto& by_layer = problems[key];
    size_t M = 0;
    for (auto& [l, v] : by_layer) M = std::max(M, v.size());
    Request req;
    int aligned = 0;
    std::vector<BatchRouting> steps(M);
    for (auto& b : steps) {
      b.resize(1, int(layers.size()), 2, true);
      fill_unrecorded(b);
    }
    for (size_t li = 0; li < layers.size(); ++li) {
      auto it = by_layer.find(layers[li]);
      if (it == by_layer.end() || it->second.size() != M) continue;
      ++aligned;
      std::vector<bool> seen(M);
      for (const MixRecord* r : it->second) {
        if (r->pos < 0 || size_t(r->pos) >= M || seen[size_t(r->pos)]) {
          fail(path, line_at(r->line), fmt::format("token_idx {} is repeated or outside 0..{}", r->pos, M - 1));
        }
        seen[size_t(r->pos)] = true;
        set_choice(steps[size_t(r->pos)], int(li), 0, *r);
      }
    }
    notes.push_back(fmt::format("{} problem {}: {} decode tokens, {} of {} layers aligned", key.first, key.second, M,
                                aligned, layers.size()));
    req.decode = std::move(steps);
    out.push_back(std::move(req));
  }
  return out;
}

// routing_raw.jsonl: execution order; a new forward pass starts whenever the layer decreases (or the problem
// changes). A problem's first pass is its prefill; token_pos is exact, so missing records are unrecorded choices.
std::vector<Request> mixtral_raw_requests(const std::vector<MixRecord>& recs, const std::vector<int>& layers,
                                          const std::string& path, std::vector<std::string>& notes) {
  std::vector<Request> out;
  std::vector<std::vector<const MixRecord*>> pass;
  std::vector<std::vector<std::vector<const MixRecord*>>> passes_of_request;
  std::vector<std::string> names;
  const MixRecord* prev = nullptr;
  for (const auto& r : recs) {
    const bool new_request = !prev || r.problem != prev->problem || r.dataset != prev->dataset;
    if (new_request) {
      passes_of_request.emplace_back();
      names.push_back(fmt::format("{} problem {}", r.dataset, r.problem));
    }
    if (new_request || r.layer < prev->layer) passes_of_request.back().emplace_back();
    passes_of_request.back().back().push_back(&r);
    prev = &r;
  }
  std::map<int, size_t> index;
  for (size_t i = 0; i < layers.size(); ++i) index[layers[i]] = i;
  for (size_t q = 0; q < passes_of_request.size(); ++q) {
    Request req;
    uint64_t missing = 0;
    for (size_t p = 0; p < passes_of_request[q].size(); ++p) {
      const auto& rs = passes_of_request[q][p];
      int64_t T = 0;
      for (const MixRecord* r : rs) T = std::max(T, r->pos + 1);
      BatchRouting b;
      b.resize(int(T), int(layers.size()), 2, true);
      fill_unrecorded(b);
      for (const MixRecord* r : rs) {
        const int l = int(index.at(r->layer));
        if (b.recorded(l, int(r->pos))) {
          fail(path, line_at(r->line),
               fmt::format("layer {} token_pos {} appears twice in one forward pass", r->layer, r->pos));
        }
        set_choice(b, l, int(r->pos), *r);
      }
      missing += count_unrecorded(b);
      if (p == 0) {
        req.prefill = std::move(b);
      } else {
        req.decode.push_back(std::move(b));
      }
    }
    notes.push_back(fmt::format("{}: prefill of {} tokens, {} decode passes, {} token-layer records missing", names[q],
                                req.prefill.tokens, req.decode.size(), missing));
    out.push_back(std::move(req));
  }
  return out;
}

}  // namespace

const std::vector<std::string>& source_formats() {
  static const std::vector<std::string> f = {"deepseek-csv", "llama4-json", "mixtral-jsonl", "mixtral-raw"};
  return f;
}

BatchRouting concat_tokens(const std::vector<const BatchRouting*>& parts) {
  BatchRouting out;
  int tokens = 0;
  for (const auto* p : parts) tokens += p->tokens;
  const auto& f = *parts.front();
  out.resize(tokens, f.layers, f.top_k, f.has_weights());
  out.flags = f.flags;
  for (int l = 0; l < f.layers; ++l) {
    int t0 = 0;
    for (const auto* p : parts) {
      const size_t n = size_t(p->tokens) * size_t(p->top_k);
      std::copy_n(p->experts.data() + p->index(l, 0), n, out.experts.data() + out.index(l, t0));
      if (out.has_weights()) std::copy_n(p->weights.data() + p->index(l, 0), n, out.weights.data() + out.index(l, t0));
      t0 += p->tokens;
    }
  }
  return out;
}

void parse_csv(const std::string& text, const std::string& file,
               const std::function<void(const std::vector<std::string>&, uint64_t)>& on_record) {
  size_t i = 0;
  const size_t n = text.size();
  if (n >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 byte order mark
  uint64_t line = 1;
  std::vector<std::string> fields;
  std::string field;
  while (i < n) {
    const uint64_t record_line = line;
    fields.clear();
    for (;;) {  // one field
      field.clear();
      if (i < n && text[i] == '"') {
        ++i;
        for (;;) {
          if (i >= n) fail(file, line_at(record_line), "unterminated quoted field");
          const char c = text[i++];
          if (c == '"') {
            if (i < n && text[i] == '"') {
              field += '"';
              ++i;
              continue;
            }
            break;
          }
          if (c == '\n') ++line;
          field += c;
        }
        if (i < n && text[i] != ',' && text[i] != '\r' && text[i] != '\n') {
          fail(file, line_at(line), "unexpected character after a closing quote");
        }
      } else {
        while (i < n && text[i] != ',' && text[i] != '\r' && text[i] != '\n') {
          if (text[i] == '"') fail(file, line_at(line), "quote inside an unquoted field");
          field += text[i++];
        }
      }
      fields.push_back(field);
      if (i < n && text[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    if (i < n && text[i] == '\r') ++i;
    if (i < n && text[i] == '\n') {
      ++i;
      ++line;
    }
    if (!(fields.size() == 1 && fields[0].empty())) on_record(fields, record_line);
  }
}

ConvertSummary convert(const ConvertOptions& o) {
  const auto& formats = source_formats();
  if (std::find(formats.begin(), formats.end(), o.from) == formats.end()) {
    throw InputError(fmt::format("--from: unknown source format '{}' (one of: {})", o.from, fmt::join(formats, ", ")));
  }
  if (o.inputs.empty()) throw InputError("convert: no input files");
  if (o.output.empty()) throw InputError("convert: -o OUTPUT is required");
  if (o.regroup_decode < 1) throw InputError("--regroup-decode must be at least 1");
  const SourceDefaults d = defaults_of(o.from);
  const int experts = o.experts > 0 ? o.experts : d.experts;
  if (experts > 65535) throw InputError("--experts must be at most 65535");

  TraceHeader h;
  h.model = o.model.empty() ? d.model : o.model;
  h.source = o.source.empty() ? d.source : o.source;
  h.licence = o.licence.empty() ? "none stated by the source repository: do not redistribute" : o.licence;
  h.experts = experts;
  h.ordered = d.ordered;
  std::vector<std::string> names;
  for (const auto& p : o.inputs) names.push_back(base_name(p));
  h.notes = {{"converter", o.from}, {"inputs", names}, {"regroup_decode", o.regroup_decode}};

  ConvertSummary sum;
  std::unique_ptr<TraceWriter> w;
  std::unique_ptr<BatchEmitter> emit;
  auto start = [&](const std::vector<int>& layers, int k, bool weights) {
    h.layers = layers;
    h.top_k = k;
    h.has_weights = weights;
    w = std::make_unique<TraceWriter>(o.output, h);
    emit = std::make_unique<BatchEmitter>(*w, o.regroup_decode);
  };
  auto add = [&](Request r) {
    ++sum.requests;
    if (r.prefill.tokens > 0) sum.unrecorded += count_unrecorded(r.prefill);
    for (const auto& b : r.decode) sum.unrecorded += count_unrecorded(b);
    emit->add(std::move(r));
  };

  if (o.from == "deepseek-csv" || o.from == "llama4-json") {
    std::vector<int> layers;
    int k = 1;
    // The inputs' folder names say what the prompts were (e.g. llama4-mmlu-anatomy).
    std::set<std::string> folders;
    for (const auto& path : o.inputs) folders.insert(std::filesystem::path(path).parent_path().filename().string());
    h.dataset = o.dataset.empty() ? fmt::format("{}", fmt::join(folders, ",")) : o.dataset;
    for (const auto& path : o.inputs) {
      Request r =
          o.from == "deepseek-csv" ? read_deepseek(path, experts, layers, k) : read_llama4(path, experts, layers);
      if (!w) start(layers, k, false);
      add(std::move(r));
    }
  } else {
    const bool raw = o.from == "mixtral-raw";
    std::vector<MixRecord> recs;
    std::vector<std::pair<size_t, std::string>> file_of;  // first record index of each file
    for (const auto& path : o.inputs) {
      auto r = read_mixtral_records(path, raw ? "token_pos" : "token_idx", experts);
      if (r.empty()) fail(path, "", "no records");
      file_of.emplace_back(recs.size(), path);
      for (auto& x : r) recs.push_back(std::move(x));
    }
    std::set<int> layer_set;
    std::set<std::string> datasets;
    for (const auto& r : recs) {
      layer_set.insert(r.layer);
      datasets.insert(r.dataset);
    }
    h.dataset = o.dataset.empty() ? fmt::format("{}", fmt::join(datasets, ",")) : o.dataset;
    const std::vector<int> layers(layer_set.begin(), layer_set.end());
    start(layers, 2, true);
    // Requests never span files.
    for (size_t f = 0; f < file_of.size(); ++f) {
      const size_t end = f + 1 < file_of.size() ? file_of[f + 1].first : recs.size();
      std::vector<MixRecord> part(recs.begin() + std::ptrdiff_t(file_of[f].first), recs.begin() + std::ptrdiff_t(end));
      auto reqs = raw ? mixtral_raw_requests(part, layers, file_of[f].second, sum.notes)
                      : mixtral_requests(part, layers, file_of[f].second, sum.notes);
      for (auto& r : reqs) add(std::move(r));
    }
  }
  emit->flush();
  w->close();
  sum.batches = w->header().batches;
  sum.tokens = w->header().tokens;
  return sum;
}

}  // namespace lina::traces

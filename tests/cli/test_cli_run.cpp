// The `lina` program end to end, in-process through lina::cli::main_entry: `lina run` on the default experiment
// (results.json schema, metric names with units, byte-identical reruns, resume from points/), the one-line errors
// with exit code 2 for each class of malformed spec, `lina params` (table and --json), `lina --version`, unknown
// commands.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/report.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Result {
  int code;
  std::string out, err;
};

Result lina(std::vector<std::string> args) {
  args.insert(args.begin(), "lina");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  int code = lina::cli::main_entry(static_cast<int>(argv.size()), argv.data());
  std::fflush(stdout);
  std::fflush(stderr);
  Result r{code, testing::internal::GetCapturedStdout(), testing::internal::GetCapturedStderr()};
  return r;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kQuickstart = std::string(LINA_SOURCE_DIR) + "/experiments/quickstart.json";

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("lina_test_cli_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  // A fast training experiment: 2-layer Transformer-XL, 128 tokens per GPU, on a 2 x 2 cluster.
  json small_spec() const {
    return json::parse(R"({
      "name": "small", "mode": "training",
      "cluster": {"nodes": 2, "gpus_per_node": 2, "gpu": "A100-40GB", "nic": {"per": "node", "bandwidth": "100Gbps"}},
      "model": {"base": "transformer-xl", "layers": 2, "experts": 4},
      "workload": {"batch_size": 2, "seq_len": 64, "steps": 1},
      "policies": [{"name": "deepspeed"}, {"name": "lina"}]
    })");
  }
  fs::path dir_;
};

// Error output: exactly one line, starting with "lina run: error: ", naming the file and the JSON pointer.
void expect_one_line_error(const Result& r, const std::string& file, const std::string& pointer,
                           const std::string& what) {
  EXPECT_EQ(r.code, 2) << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.back(), '\n');
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
  EXPECT_EQ(r.err.rfind("lina run: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(file + ": " + pointer + ": "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
}

TEST_F(CliTest, QuickstartRunsAndWritesResults) {
  fs::path out = dir_ / "a";
  Result r = lina({"run", kQuickstart, "-o", out.string(), "--no-plot"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(fs::exists(out / "results.json"));
  EXPECT_TRUE(fs::exists(out / "results.csv"));
  EXPECT_TRUE(fs::exists(out / "points" / "0.json"));
  for (const char* p : {"deepspeed", "naive-priority", "lina", "ideal"}) {
    EXPECT_TRUE(fs::exists(out / (std::string("timeline-") + p + ".json"))) << p;
  }
  json j = json::parse(slurp(out / "results.json"));
  EXPECT_EQ(j["schema"], "lina.results/1");
  EXPECT_EQ(j["experiment"], "quickstart");
  EXPECT_EQ(j["mode"], "training");
  EXPECT_EQ(j["seed"], 1);
  EXPECT_TRUE(j.contains("lina_version"));
  EXPECT_TRUE(j.contains("git_commit"));
  ASSERT_EQ(j["points"].size(), 1u);
  const json& pols = j["points"][0]["policies"];
  ASSERT_EQ(pols.size(), 4u);
  EXPECT_EQ(pols[0]["policy"], "deepspeed");
  EXPECT_EQ(pols[2]["policy"], "lina");
  for (const auto& p : pols) {
    const json& m = p["metrics"];
    for (const char* k :
         {"step_time_s", "fwd_moe_time_s", "bwd_moe_time_s", "a2a_time_s", "a2a_bwd_time_s", "allreduce_time_s",
          "exposed_comm_s", "compute_util", "pipeline_efficiency", "speedup_vs_first"}) {
      ASSERT_TRUE(m.contains(k)) << p["policy"] << " lacks " << k;
      EXPECT_TRUE(m[k].is_number()) << k;
    }
    EXPECT_GT(m["step_time_s"].get<double>(), 0);
    // speedup_vs_first = first policy's step time / this policy's.
    EXPECT_NEAR(m["speedup_vs_first"].get<double>(),
                pols[0]["metrics"]["step_time_s"].get<double>() / m["step_time_s"].get<double>(), 1e-9);
  }
  EXPECT_DOUBLE_EQ(pols[0]["metrics"]["speedup_vs_first"].get<double>(), 1.0);
  // The printed table names every policy.
  for (const char* p : {"deepspeed", "naive-priority", "lina", "ideal"}) EXPECT_NE(r.out.find(p), std::string::npos);
  // The timeline is valid JSON (Chrome trace events).
  json tl = json::parse(slurp(out / "timeline-lina.json"));
  EXPECT_FALSE(tl.empty());
}

TEST_F(CliTest, SameSpecTwiceGivesByteIdenticalResults) {
  std::string spec = write("small.json", small_spec().dump());
  ASSERT_EQ(lina({"run", spec, "-o", (dir_ / "one").string(), "--no-plot"}).code, 0);
  ASSERT_EQ(lina({"run", spec, "-o", (dir_ / "two").string(), "--no-plot", "-j", "2"}).code, 0);
  std::string a = slurp(dir_ / "one" / "results.json"), b = slurp(dir_ / "two" / "results.json");
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  EXPECT_EQ(slurp(dir_ / "one" / "results.csv"), slurp(dir_ / "two" / "results.csv"));
}

// --no-timeline writes no timeline or per-layer CSV, and recording them does not change a result: the results are
// byte-identical with and without, for training and inference.
TEST_F(CliTest, NoTimelineLeavesTheResultsAsTheyAre) {
  json inference = json::parse(R"({
    "name": "small-inference", "mode": "inference",
    "cluster": {"nodes": 2, "gpus_per_node": 2, "gpu": "A100-40GB", "nic": {"per": "node", "bandwidth": "100Gbps"}},
    "model": {"base": "transformer-xl", "layers": 4, "experts": 4, "top_k": 1},
    "workload": {"batch_size": 4, "seq_len": 64, "batches": 3,
                 "routing": {"kind": "zipf", "zipf_s": 0.8, "profile_batches": 3}},
    "policies": [{"name": "deepspeed"}, {"name": "lina"}]
  })");
  for (const json& spec_doc : {small_spec(), inference}) {
    const std::string spec = write("spec.json", spec_doc.dump());
    const fs::path with = dir_ / ("with-" + spec_doc["name"].get<std::string>()),
                   without = dir_ / ("without-" + spec_doc["name"].get<std::string>());
    ASSERT_EQ(lina({"run", spec, "-o", with.string(), "--no-plot"}).code, 0);
    Result r = lina({"run", spec, "-o", without.string(), "--no-plot", "--no-timeline"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_TRUE(fs::exists(with / "timeline-lina.json"));
    if (spec_doc["mode"] == "inference") {
      EXPECT_TRUE(fs::exists(with / "layers-lina.csv"));
    }
    for (const auto& entry : fs::directory_iterator(without)) {
      const std::string name = entry.path().filename().string();
      EXPECT_FALSE(name.starts_with("timeline-") || name.starts_with("layers-")) << name;
    }
    EXPECT_EQ(slurp(with / "results.csv"), slurp(without / "results.csv"));
    EXPECT_EQ(r.out.find("timeline"), std::string::npos) << r.out;
  }
}

// Every shipped spec (the quick start, experiments/paper, experiments/whatif) runs to the end, shrunk to a second:
// 2 training layers of 64-token sequences, or 4 inference layers and 2 + 2 batches. A spec that loads but fails at
// run time (a layout that does not divide, a policy option a model rejects) breaks here.
TEST_F(CliTest, EveryShippedSpecRunsShrunk) {
  const fs::path root = fs::path(LINA_SOURCE_DIR) / "experiments";
  std::vector<fs::path> specs = {root / "quickstart.json"};
  for (const char* d : {"paper", "whatif"}) {
    for (const auto& entry : fs::directory_iterator(root / d)) {
      if (entry.path().extension() == ".json") specs.push_back(entry.path());
    }
  }
  std::sort(specs.begin(), specs.end());
  for (const fs::path& spec : specs) {
    SCOPED_TRACE(spec.string());
    const json doc = json::parse(slurp(spec));
    std::vector<std::string> args = {"run",       spec.string(),   "-o",    (dir_ / spec.stem()).string(),
                                     "--no-plot", "--no-timeline", "--set", "workload.seq_len=64"};
    for (const char* s : doc["mode"] == "training" ? std::vector<const char*>{"model.layers=2", "workload.steps=1"}
                                                   : std::vector<const char*>{"model.layers=4", "workload.batches=2",
                                                                              "workload.routing.profile_batches=2"}) {
      args.insert(args.end(), {"--set", s});
    }
    Result r = lina(args);
    ASSERT_EQ(r.code, 0) << r.err;
    const json res = json::parse(slurp(dir_ / spec.stem() / "results.json"));
    ASSERT_FALSE(res["points"].empty());
    for (const auto& p : res["points"]) EXPECT_EQ(p["policies"].size(), doc["policies"].size());
  }
}

// A step that does not fit in GPU memory runs, and says so once on stderr and in the results' notes.
TEST_F(CliTest, WhatDoesNotFitInMemoryIsReported) {
  const std::string spec = write("small.json", small_spec().dump());
  Result fits = lina({"run", spec, "-o", (dir_ / "fits").string(), "--no-plot", "--no-timeline"});
  ASSERT_EQ(fits.code, 0) << fits.err;
  EXPECT_EQ(fits.err.find("warning"), std::string::npos) << fits.err;
  Result tight = lina(
      {"run", spec, "-o", (dir_ / "tight").string(), "--no-plot", "--no-timeline", "--set", "cluster.gpu.memory=10MB"});
  ASSERT_EQ(tight.code, 0) << tight.err;
  EXPECT_NE(tight.err.find("warning: deepspeed: the non-expert parameters alone need"), std::string::npos) << tight.err;
  const json res = json::parse(slurp(dir_ / "tight" / "results.json"));
  EXPECT_TRUE(res["points"][0]["policies"][0]["notes"].contains("memory"));
}

// With a price per GPU-hour the table gains a cost column and every policy's results its cost per million tokens:
// 4 GPUs at $2 an hour for the time a million tokens take at the reported tokens_per_s. Without one, neither.
TEST_F(CliTest, APriceAddsTheCostOfAMillionTokens) {
  const std::string spec = write("priced.json", small_spec().dump());
  Result plain = lina({"run", spec, "-o", (dir_ / "plain").string(), "--no-plot", "--no-timeline"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.out.find("usd/Mtoken"), std::string::npos) << plain.out;
  Result priced = lina({"run", spec, "-o", (dir_ / "priced").string(), "--no-plot", "--no-timeline", "--set",
                        "cluster.price_usd_per_gpu_hour=2"});
  ASSERT_EQ(priced.code, 0) << priced.err;
  EXPECT_NE(priced.out.find("usd/Mtoken"), std::string::npos) << priced.out;
  const json res = json::parse(slurp(dir_ / "priced" / "results.json"));
  for (const auto& p : res["points"][0]["policies"]) {
    const json& m = p["metrics"];
    EXPECT_NEAR(m["usd_per_million_tokens"].get<double>(), 8.0 / 3600 * 1e6 / m["tokens_per_s"].get<double>(),
                1e-9 * m["usd_per_million_tokens"].get<double>());
    EXPECT_GT(m["mfu"].get<double>(), 0);
  }
}

// An inference gate with a capacity factor drops what overflows the hot experts, which a server would not do: the
// run says so once on stderr; a dropless run says nothing.
TEST_F(CliTest, DroppedTokensInInferenceAreReported) {
  json spec_doc = json::parse(R"({
    "name": "drops", "mode": "inference",
    "cluster": {"nodes": 2, "gpus_per_node": 2, "gpu": "A100-40GB", "nic": {"per": "node", "bandwidth": "100Gbps"}},
    "model": {"base": "transformer-xl", "layers": 4, "experts": 4, "top_k": 1, "capacity_factor": 1.0},
    "workload": {"batch_size": 4, "seq_len": 64, "batches": 3,
                 "routing": {"kind": "zipf", "zipf_s": 1.2, "profile_batches": 3}},
    "policies": [{"name": "deepspeed"}]
  })");
  const std::string spec = write("drops.json", spec_doc.dump());
  Result drops = lina({"run", spec, "-o", (dir_ / "a").string(), "--no-plot", "--no-timeline"});
  ASSERT_EQ(drops.code, 0) << drops.err;
  EXPECT_NE(drops.err.find("warning: the gate dropped"), std::string::npos) << drops.err;
  EXPECT_NE(drops.err.find("model.capacity_factor = 0"), std::string::npos) << drops.err;
  Result dropless = lina(
      {"run", spec, "-o", (dir_ / "b").string(), "--no-plot", "--no-timeline", "--set", "model.capacity_factor=0"});
  ASSERT_EQ(dropless.code, 0) << dropless.err;
  EXPECT_EQ(dropless.err.find("dropped"), std::string::npos) << dropless.err;
}

TEST_F(CliTest, SweepRunsInParallelAndResumes) {
  json s = small_spec();
  s["sweep"] = {{"cluster.nic.bandwidth", {"50Gbps", "100Gbps", "200Gbps"}}};
  std::string spec = write("sweep.json", s.dump());
  fs::path out = dir_ / "out";
  Result first = lina({"run", spec, "-o", out.string(), "--no-plot", "-j", "3"});
  ASSERT_EQ(first.code, 0) << first.err;
  json j = json::parse(slurp(out / "results.json"));
  ASSERT_EQ(j["points"].size(), 3u);
  EXPECT_EQ(j["points"][1]["params"]["cluster.nic.bandwidth"], "100Gbps");
  // More bandwidth never slows the baseline down.
  double t50 = j["points"][0]["policies"][0]["metrics"]["step_time_s"];
  double t200 = j["points"][2]["policies"][0]["metrics"]["step_time_s"];
  EXPECT_LE(t200, t50);
  std::vector<fs::file_time_type> mtimes;
  std::vector<std::string> contents;
  for (int i = 0; i < 3; ++i) {
    fs::path p = out / "points" / (std::to_string(i) + ".json");
    ASSERT_TRUE(fs::exists(p));
    mtimes.push_back(fs::last_write_time(p));
    contents.push_back(slurp(p));
  }
  std::string results = slurp(out / "results.json");
  // Second run over the same folder: nothing recomputed, the point files untouched, the same results.
  Result second = lina({"run", spec, "-o", out.string(), "--no-plot"});
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_NE((second.out + second.err).find("3 of 3 points already done"), std::string::npos)
      << second.out << second.err;
  for (int i = 0; i < 3; ++i) {
    fs::path p = out / "points" / (std::to_string(i) + ".json");
    EXPECT_EQ(fs::last_write_time(p), mtimes[static_cast<size_t>(i)]) << i;
    EXPECT_EQ(slurp(p), contents[static_cast<size_t>(i)]);
  }
  EXPECT_EQ(slurp(out / "results.json"), results);
  // A changed spec (another --set) invalidates the saved points: recomputed, and the results differ.
  Result third = lina({"run", spec, "-o", out.string(), "--no-plot", "--set", "workload.seq_len=32"});
  ASSERT_EQ(third.code, 0) << third.err;
  EXPECT_EQ((third.out + third.err).find("already done"), std::string::npos);
  EXPECT_NE(slurp(out / "results.json"), results);
}

TEST_F(CliTest, SetOverridesChangeTheResult) {
  std::string spec = write("small.json", small_spec().dump());
  ASSERT_EQ(
      lina({"run", spec, "-o", (dir_ / "slow").string(), "--no-plot", "--set", "cluster.nic.bandwidth=25Gbps"}).code,
      0);
  ASSERT_EQ(
      lina({"run", spec, "-o", (dir_ / "fast").string(), "--no-plot", "--set", "cluster.nic.bandwidth=400Gbps"}).code,
      0);
  auto step = [&](const char* d) {
    return json::parse(slurp(dir_ / d / "results.json"))["points"][0]["policies"][0]["metrics"]["step_time_s"]
        .get<double>();
  };
  EXPECT_LT(step("fast"), step("slow"));
}

TEST_F(CliTest, MalformedSpecsGiveOneLineErrorsWithExitCode2) {
  auto run = [&](const json& patch, const std::string& name) {
    json s = small_spec();
    s.merge_patch(patch);
    std::string f = write(name, s.dump(2));
    return std::make_pair(f, lina({"run", f, "-o", (dir_ / "o").string(), "--no-plot"}));
  };
  {
    auto [f, r] = run({{"cluster", {{"nic", {{"bandwith", "100Gbps"}}}}}}, "unknown.json");
    expect_one_line_error(r, f, "/cluster/nic/bandwith", "unknown field 'bandwith' (did you mean 'bandwidth'?)");
  }
  {
    auto [f, r] = run({{"workload", {{"steps", "two"}}}}, "type.json");
    expect_one_line_error(r, f, "/workload/steps", "expected an integer");
  }
  {
    auto [f, r] = run({{"cluster", {{"nodes", nullptr}}}}, "missing.json");
    expect_one_line_error(r, f, "/cluster/nodes", "missing required field 'nodes'");
  }
  {
    auto [f, r] = run({{"workload", {{"batch_size", 0}}}}, "range.json");
    expect_one_line_error(r, f, "/workload/batch_size", "out of range");
  }
  {
    auto [f, r] = run({{"cluster", {{"nic", {{"bandwidth", "100Gb"}}}}}}, "unit.json");
    expect_one_line_error(r, f, "/cluster/nic/bandwidth", "expected a bandwidth such as");
  }
  {
    auto [f, r] = run({{"cluster", "dgx-a1000"}}, "preset.json");
    expect_one_line_error(r, f, "/cluster", "unknown cluster preset 'dgx-a1000' (did you mean 'dgx-a100'?)");
  }
  {
    auto [f, r] = run({{"cluster", "clusters/none.json"}}, "ref.json");
    expect_one_line_error(r, f, "/cluster", "not found");
  }
  {
    // A model field: validated too, with its pointer inside the model.
    auto [f, r] = run({{"model", {{"layerz", 3}}}}, "model.json");
    expect_one_line_error(r, f, "/model/layerz", "unknown field 'layerz' (did you mean 'layers'?)");
  }
  {
    std::string f = write("malformed.json", "{\"name\": \"x\",\n  \"mode\": \"training\",,\n}");
    Result r = lina({"run", f, "--no-plot"});
    // The second ',' is byte 36: {"name": "x",\n is 14 bytes, then 2 spaces, "mode" (6), ':', ' ', "training"
    // (10) and the first ',' make 21 more.
    expect_one_line_error(r, f, "byte 36", "malformed JSON");
  }
  {
    std::string f = (dir_ / "absent.json").string();
    Result r = lina({"run", f, "--no-plot"});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err, "lina run: error: " + f + ": cannot open file (does it exist?)\n");
  }
  {
    std::string f = write("ok.json", small_spec().dump());
    Result r = lina({"run", f, "--no-plot", "--set", "cluster.nic.bandwdth=1Gbps"});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.err,
              "lina run: error: --set cluster.nic.bandwdth: unknown parameter 'cluster.nic.bandwdth' (did you mean "
              "'cluster.nic.bandwidth'?) (see 'lina params')\n");
  }
  EXPECT_FALSE(fs::exists(dir_ / "o" / "results.json"));  // nothing ran
}

TEST_F(CliTest, BadCommandLines) {
  Result r = lina({"run"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("missing experiment spec"), std::string::npos) << r.err;
  r = lina({"run", kQuickstart, "--bogus"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  r = lina({"run", kQuickstart, "-j", "0"});
  EXPECT_EQ(r.code, 2);
  r = lina({"frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "lina: unknown command 'frobnicate' (see 'lina help')\n");
  r = lina({});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("usage: lina"), std::string::npos);
  r = lina({"help", "nope"});
  EXPECT_EQ(r.code, 2);
  r = lina({"help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("run"), std::string::npos);
  EXPECT_NE(r.out.find("params"), std::string::npos);
  r = lina({"help", "run"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("--set"), std::string::npos);
}

TEST_F(CliTest, ErrorsQuotingCorruptBytesStayPrintable) {
  // The JSON parser's message quotes what it last read: here a stray 0xf9 byte and a newline inside a JSON line of
  // a trace. The error is one line, and those bytes are written as \xNN; valid UTF-8 passes.
  const std::string f = write("bad.jsonl", std::string("{\"a\": [1, \xf9\x01]}\n"));
  Result r = lina({"trace", "info", f});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  EXPECT_NE(r.err.find("\\xf9"), std::string::npos) << r.err;
  for (char c : r.err.substr(0, r.err.size() - 1)) {
    EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x80) << r.err;
  }
  r = lina({"run", write("caf\xc3\xa9.json", "{")});  // a UTF-8 file name is kept as it is
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("caf\xc3\xa9.json"), std::string::npos) << r.err;
}

// Every leaf of a small training and a small inference spec, replaced in turn by values of the wrong type or out
// of range (a deterministic walk, not a random fuzz): each run either succeeds or fails with exit code 2 and one
// "lina run: error: " line, never an internal error, a crash or a hang.
TEST_F(CliTest, EveryLeafOfASpecAcceptsOrRejectsBadValuesCleanly) {
  json inference = json::parse(R"({
    "name": "small-inference", "mode": "inference",
    "cluster": {"nodes": 2, "gpus_per_node": 2, "gpu": "A100-40GB", "nic": {"per": "node", "bandwidth": "100Gbps"}},
    "model": {"base": "transformer-xl", "layers": 2, "experts": 4, "top_k": 1, "capacity_factor": 1.0,
              "dispatch": "dense"},
    "workload": {"batch_size": 2, "seq_len": 32, "batches": 2,
                 "routing": {"kind": "zipf", "zipf_s": 1.0, "rho": 0.3, "profile_batches": 2}},
    "policies": [{"name": "deepspeed"}, {"name": "lina", "path_length": 1, "label": "l"}],
    "reference": [{"policy": "l", "metric": "latency_p50_s", "value": 1, "source": "s"}]
  })");
  json training = small_spec();
  training["policies"][1]["micro_op_size"] = "1MB";
  const std::vector<json> bad = {json(nullptr), json(-1),       json(0),    json(1e300),  json("x"),
                                 json::array(), json::object(), json(true), json("-1MB"), json(2.5)};
  int runs = 0, ok = 0;
  for (const json* spec : {&training, &inference}) {
    const json flat = spec->flatten();
    for (const auto& [pointer, value] : flat.items()) {
      for (const json& v : bad) {
        if (pointer == "/mode") continue;
        json mutated = *spec;
        mutated[json::json_pointer(pointer)] = v;
        const std::string f = write("leaf.json", mutated.dump());
        Result r = lina({"run", f, "-o", (dir_ / "o").string(), "--no-plot"});
        ++runs;
        SCOPED_TRACE(pointer + " = " + v.dump());
        ASSERT_TRUE(r.code == 0 || r.code == 2) << r.code << " " << r.err;
        if (r.code == 2) {
          EXPECT_EQ(r.err.rfind("lina run: error: ", 0), 0u) << r.err;
          EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
        }
        ok += r.code == 0;
      }
    }
  }
  // Both outcomes occur: some bad values are accepted (a label of "x", a larger batch), most are rejected.
  EXPECT_GT(runs, 400);
  EXPECT_GT(ok, 10);
  EXPECT_LT(ok, runs / 2);
}

// A NIC of 2.5 bytes/s (a bandwidth without its unit) makes the step last 60-odd days, past the simulator's clock:
// an input error naming the likely cause (it was an int64 overflow, found under UBSan).
TEST_F(CliTest, ARunPastTheClockIsAnInputError) {
  json spec = small_spec();
  spec["cluster"]["nic"]["bandwidth"] = 2.5;
  Result r = lina({"run", write("slow.json", spec.dump()), "-o", (dir_ / "o").string(), "--no-plot"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("past the clock's 53.4 days"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("without its unit"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

TEST(Cli, SpeedupsAreTheFirstPolicysTimeOverEachPolicys) {
  lina::cli::PointResult p;
  p.policies.push_back(
      {"deepspeed", "deepspeed", {{"latency_p50_s", 4.0}, {"latency_p95_s", 6.0}, {"a2a_tail_time_s", 2.0}}, {}});
  p.policies.push_back(
      {"lina", "lina", {{"latency_p50_s", 2.0}, {"latency_p95_s", 4.0}, {"a2a_tail_time_s", 0.5}}, {}});
  lina::cli::add_speedups(p);
  const auto& m = p.policies[1].metrics;
  EXPECT_DOUBLE_EQ(m.at("speedup_vs_first"), 2.0);
  EXPECT_DOUBLE_EQ(m.at("speedup_p95_vs_first"), 1.5);
  EXPECT_DOUBLE_EQ(m.at("a2a_tail_speedup_vs_first"), 4.0);
  EXPECT_DOUBLE_EQ(p.policies[0].metrics.at("a2a_tail_speedup_vs_first"), 1.0);
  // Training has none of the inference ones.
  lina::cli::PointResult t;
  t.policies.push_back({"deepspeed", "deepspeed", {{"step_time_s", 3.0}}, {}});
  t.policies.push_back({"lina", "lina", {{"step_time_s", 2.0}}, {}});
  lina::cli::add_speedups(t);
  EXPECT_DOUBLE_EQ(t.policies[1].metrics.at("speedup_vs_first"), 1.5);
  EXPECT_EQ(t.policies[1].metrics.count("speedup_p95_vs_first"), 0u);
  EXPECT_EQ(t.policies[1].metrics.count("a2a_tail_speedup_vs_first"), 0u);
}

TEST(Cli, Version) {
  Result r = lina({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.rfind("lina ", 0), 0u) << r.out;
  EXPECT_EQ(r.out.find('\n'), r.out.size() - 1);
  EXPECT_TRUE(r.err.empty());
}

TEST(Cli, ParamsTable) {
  Result r = lina({"params"});
  ASSERT_EQ(r.code, 0);
  std::istringstream in(r.out);
  std::string line;
  bool found = false;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("path", 0), 0u) << line;
  while (std::getline(in, line)) {
    if (line.rfind("cluster.nic.bandwidth ", 0) != 0) continue;
    found = true;
    std::istringstream cols(line);
    std::string path, unit, def;
    cols >> path >> unit >> def;
    EXPECT_EQ(unit, "bytes/s");
    EXPECT_EQ(def, "100Gbps");
    EXPECT_NE(line.find("NIC bandwidth"), std::string::npos);
  }
  EXPECT_TRUE(found) << r.out;
}

TEST(Cli, ParamsJson) {
  Result r = lina({"params", "--json"});
  ASSERT_EQ(r.code, 0);
  json j = json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  EXPECT_GT(j.size(), 40u);
  bool found = false;
  for (const auto& p : j) {
    ASSERT_TRUE(p.contains("path") && p.contains("unit") && p.contains("default") && p.contains("doc"));
    EXPECT_FALSE(p["doc"].get<std::string>().empty()) << p["path"];
    if (p["path"] == "cluster.nic.bandwidth") {
      found = true;
      EXPECT_EQ(p["unit"], "bytes/s");
      EXPECT_EQ(p["default"], "100Gbps");
      EXPECT_EQ(p["required"], false);
    }
    if (p["path"] == "mode") {
      EXPECT_EQ(p["required"], true);
      EXPECT_EQ(p["choices"], json::array({"training", "inference"}));
    }
  }
  EXPECT_TRUE(found);
}

}  // namespace

namespace {

// `lina` carries no CUDA: `lina hw ...` is handed to `lina-hw` beside it where the build has the backend (the input
// error of the real command comes back, exit 2), else it says there is no backend (exit 1).
TEST(CliHw, CommandsAreHandedToLinaHw) {
  const fs::path lina = fs::path(LINA_BINARY_DIR) / "cli" / "lina";
  if (!fs::exists(lina)) GTEST_SKIP() << "no " << lina;
  const fs::path missing = fs::temp_directory_path() / "lina-no-such-measurements.json";
  const std::string cmd = lina.string() + " hw calibrate --from " + missing.string() + " -o /dev/null 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = ::pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  if (fs::exists(lina.parent_path() / "lina-hw")) {
    EXPECT_EQ(WEXITSTATUS(status), 2) << out;
    EXPECT_NE(out.find(missing.string()), std::string::npos) << out;
    // `hw run` reads the spec before it asks for GPUs: a missing spec is named on a machine without any.
    const std::string run = lina.string() + " hw run " + missing.string() + " 2>&1";
    FILE* q = ::popen(run.c_str(), "r");
    ASSERT_NE(q, nullptr);
    std::string run_out;
    while (std::fgets(buf, sizeof buf, q)) run_out += buf;
    const int run_status = ::pclose(q);
    ASSERT_TRUE(WIFEXITED(run_status)) << run_out;
    EXPECT_EQ(WEXITSTATUS(run_status), 2) << run_out;
    EXPECT_NE(run_out.find(missing.string() + ": cannot open file"), std::string::npos) << run_out;
  } else {
    EXPECT_EQ(WEXITSTATUS(status), 1) << out;
    EXPECT_NE(out.find("no hardware backend"), std::string::npos) << out;
  }
}

}  // namespace

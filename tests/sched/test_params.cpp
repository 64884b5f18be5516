// Parameter declarations and SpecReader (sched/params.hpp), and the error classes of spec loading: unknown field
// (with the nearest known name), wrong type, missing required field, out-of-range value, bad unit, unknown preset
// (with a suggestion), file not found, malformed JSON (with the byte offset).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "sched/cluster_spec.hpp"
#include "sched/error.hpp"
#include "sched/param_helpers.hpp"
#include "sched/params.hpp"
#include "sched/presets.hpp"

namespace lina {
namespace {

using nlohmann::json;
using namespace param_helpers;

const std::vector<ParamDef>& table() {
  static const std::vector<ParamDef> t = {
      q("net.bandwidth", Dimension::kBytesPerSecond, "100Gbps", "link bandwidth", 1),
      q("net.latency", Dimension::kSeconds, nullptr, "link latency (required)", 0, 1),
      integer("net.ports", 4, "ports", 1, 64),
      number("net.ratio", 1.5, "ratio", 0, 2),
      boolean("net.enabled", true, "on or off"),
      choice("net.kind", {"switch", "leaf_spine"}, "switch", "fabric kind"),
      text("net.name", "eth", "a name"),
      obj("net.inner", "a nested object"),
      q("net.inner.size", Dimension::kBytes, "1KiB", "a size", 0),
  };
  return t;
}

// Runs f and returns the InputError's message (fails the test when nothing is thrown).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    std::string w = e.what();
    EXPECT_EQ(w.find('\n'), std::string::npos) << "one line: " << w;
    return w;
  }
  ADD_FAILURE() << "no InputError thrown";
  return "";
}

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

TEST(SpecReader, ReadsValuesInBaseUnitsAndDefaults) {
  json j = {{"latency", "2us"}, {"ports", 8}, {"kind", "leaf_spine"}, {"inner", {{"size", "2MiB"}}}};
  SpecReader r(j, "f.json", "/net", table(), "net");
  EXPECT_DOUBLE_EQ(r.quantity("bandwidth"), 12.5e9);  // default "100Gbps" = 1e11 bits/s / 8
  EXPECT_EQ(r.time("latency"), Time::us(2));
  EXPECT_EQ(r.integer("ports"), 8);
  EXPECT_DOUBLE_EQ(r.quantity("ratio"), 1.5);  // default
  EXPECT_TRUE(r.boolean("enabled"));           // default
  EXPECT_EQ(r.choice("kind"), "leaf_spine");
  EXPECT_EQ(r.string("name"), "eth");
  SpecReader c = r.child("inner");
  EXPECT_DOUBLE_EQ(c.quantity("size"), 2.0 * 1048576);
  c.finish();
  r.finish();
  EXPECT_TRUE(r.has("ports"));
  EXPECT_FALSE(r.has("name"));
  EXPECT_EQ(r.pointer("a/b~c"), "/net/a~1b~0c");
}

TEST(SpecReader, PlainNumberIsTakenInTheBaseUnit) {
  json j = {{"bandwidth", 5e9}, {"latency", 0.5}};
  SpecReader r(j, "f.json", "", table(), "net");
  EXPECT_DOUBLE_EQ(r.quantity("bandwidth"), 5e9);
  EXPECT_EQ(r.time("latency"), Time::ms(500));
}

TEST(SpecReader, AbsentChildIsEmptyObject) {
  json j = {{"latency", "1us"}};
  SpecReader r(j, "f.json", "", table(), "net");
  EXPECT_EQ(r.time("latency"), Time::us(1));
  SpecReader c = r.child("inner");
  EXPECT_DOUBLE_EQ(c.quantity("size"), 1024);
  c.finish();
  r.finish();
}

TEST(SpecReaderErrors, UnknownFieldSuggestsNearestKnownName) {
  json j = {{"latency", "1us"}, {"bandwith", "1GB/s"}};
  SpecReader r(j, "f.json", "/cluster/net", table(), "net");
  r.quantity("latency");
  std::string e = error_of([&] { r.finish(); });
  EXPECT_EQ(e, "f.json: /cluster/net/bandwith: unknown field 'bandwith' (did you mean 'bandwidth'?)");
}

TEST(SpecReaderErrors, UnknownFieldWithoutCloseNameHasNoSuggestion) {
  json j = {{"zzzzzzzzzzzz", 1}};
  SpecReader r(j, "f.json", "", table(), "net");
  std::string e = error_of([&] { r.finish(); });
  EXPECT_EQ(e, "f.json: /zzzzzzzzzzzz: unknown field 'zzzzzzzzzzzz'");
}

TEST(SpecReaderErrors, UnknownFieldInNestedObjectSuggestsAmongThatLevel) {
  json j = {{"inner", {{"sise", "1KB"}}}};
  SpecReader r(j, "f.json", "", table(), "net");
  SpecReader c = r.child("inner");
  std::string e = error_of([&] { c.finish(); });
  EXPECT_EQ(e, "f.json: /inner/sise: unknown field 'sise' (did you mean 'size'?)");
}

TEST(SpecReaderErrors, WrongType) {
  json j = {{"latency", true}, {"ports", "eight"}, {"enabled", "yes"}, {"kind", 3},
            {"name", 7},       {"inner", 5},       {"ratio", "1.0"}};
  SpecReader r(j, "f.json", "", table(), "net");
  EXPECT_TRUE(contains(error_of([&] { r.quantity("latency"); }), "f.json: /latency: expected a quantity in s"));
  EXPECT_EQ(error_of([&] { r.integer("ports"); }), "f.json: /ports: expected an integer, got string \"eight\"");
  EXPECT_EQ(error_of([&] { r.boolean("enabled"); }), "f.json: /enabled: expected true or false, got string \"yes\"");
  EXPECT_EQ(error_of([&] { r.choice("kind"); }), "f.json: /kind: expected one of switch|leaf_spine, got number 3");
  EXPECT_EQ(error_of([&] { r.string("name"); }), "f.json: /name: expected a string, got number 7");
  EXPECT_EQ(error_of([&] { r.child("inner"); }), "f.json: /inner: expected an object, got number 5");
  // A kNumber parameter does not take strings, even numeric ones.
  EXPECT_EQ(error_of([&] { r.quantity("ratio"); }), "f.json: /ratio: expected a number, got string \"1.0\"");
}

TEST(SpecReaderErrors, FractionalIntegerIsWrongType) {
  json j = {{"ports", 2.5}};
  SpecReader r(j, "f.json", "", table(), "net");
  EXPECT_TRUE(contains(error_of([&] { r.integer("ports"); }), "expected an integer, got number 2.5"));
}

TEST(SpecReaderErrors, MissingRequiredField) {
  json j = json::object();
  SpecReader r(j, "f.json", "/net", table(), "net");
  EXPECT_EQ(error_of([&] { r.quantity("latency"); }),
            "f.json: /net/latency: missing required field 'latency' (link latency (required))");
}

TEST(SpecReaderErrors, OutOfRange) {
  json j = {{"latency", "2s"}, {"ports", 65}, {"bandwidth", "0bps"}, {"ratio", -0.5}};
  SpecReader r(j, "f.json", "", table(), "net");
  EXPECT_EQ(error_of([&] { r.quantity("latency"); }), "f.json: /latency: value 2 s is out of range: must be in [0, 1]");
  EXPECT_EQ(error_of([&] { r.integer("ports"); }), "f.json: /ports: value 65 is out of range: must be in [1, 64]");
  EXPECT_EQ(error_of([&] { r.quantity("bandwidth"); }),
            "f.json: /bandwidth: value 0 bytes/s is out of range: must be >= 1");
  EXPECT_TRUE(contains(error_of([&] { r.quantity("ratio"); }), "out of range: must be in [0, 2]"));
}

TEST(SpecReaderErrors, BadUnit) {
  json j = {{"bandwidth", "100Gbit"}, {"latency", "3MB"}, {"inner", {{"size", "12"}}}};
  SpecReader r(j, "f.json", "/c", table(), "net");
  std::string e = error_of([&] { r.quantity("bandwidth"); });
  EXPECT_TRUE(e.starts_with("f.json: /c/bandwidth: expected a bandwidth such as")) << e;
  EXPECT_TRUE(contains(e, "'100Gbit'")) << e;
  e = error_of([&] { r.quantity("latency"); });
  EXPECT_TRUE(e.starts_with("f.json: /c/latency: expected a time such as")) << e;
  SpecReader c = r.child("inner");
  e = error_of([&] { c.quantity("size"); });
  EXPECT_TRUE(e.starts_with("f.json: /c/inner/size: ")) << e;
  EXPECT_TRUE(contains(e, "unit is missing")) << e;
}

TEST(SpecReaderErrors, UnknownChoiceSuggests) {
  json j = {{"kind", "swich"}};
  SpecReader r(j, "f.json", "", table(), "net");
  EXPECT_EQ(error_of([&] { r.choice("kind"); }),
            "f.json: /kind: unknown value 'swich': expected one of switch|leaf_spine (did you mean 'switch'?)");
}

TEST(SpecReaderErrors, NotAnObject) {
  json j = json::array({1, 2});
  EXPECT_EQ(error_of([&] { SpecReader r(j, "f.json", "", table(), "net"); }),
            "f.json: /: expected an object, got array");
}

TEST(SpecReader, ReadingAnUndeclaredKeyIsALogicError) {
  json j = json::object();
  SpecReader r(j, "f.json", "", table(), "net");
  EXPECT_THROW(r.quantity("nonexistent"), std::logic_error);
}

TEST(EditDistance, ClosedForms) {
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("", "abcd"), 4u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("flaw", "lawn"), 2u);
  EXPECT_EQ(edit_distance("bandwith", "bandwidth"), 1u);
  EXPECT_EQ(edit_distance("abc", "abc"), 0u);
  EXPECT_EQ(edit_distance("ab", "ba"), 2u);  // Levenshtein, not Damerau: a swap costs two
  EXPECT_EQ(edit_distance("sunday", "saturday"), edit_distance("saturday", "sunday"));
}

TEST(Nearest, PicksClosestWithinThreshold) {
  std::vector<std::string> c = {"bandwidth", "latency", "per"};
  EXPECT_EQ(nearest("bandwith", c), "bandwidth");
  EXPECT_EQ(nearest("latncy", c), "latency");
  EXPECT_EQ(nearest("pre", c), "per");  // distance 2 <= max(2, 1)
  // Threshold max(2, |word|/3): "xyz" is 3 away from "per" -> no suggestion.
  EXPECT_EQ(nearest("xyz", c), "");
  EXPECT_EQ(nearest("anything", {}), "");
  // Ties go to the first candidate.
  EXPECT_EQ(nearest("ab", {"aa", "bb"}), "aa");
}

TEST(PointerEscape, Rfc6901) {
  EXPECT_EQ(pointer_escape("a/b"), "a~1b");
  EXPECT_EQ(pointer_escape("m~n"), "m~0n");
  EXPECT_EQ(pointer_escape("~/"), "~0~1");
  EXPECT_EQ(pointer_escape("plain"), "plain");
}

TEST(ParseJson, MalformedJsonNamesTheByteOffset) {
  // {"a": 1,, } : the second comma is the 9th byte (1-based).
  std::string e = error_of([] { parse_json_text("{\"a\": 1,, }", "spec.json"); });
  EXPECT_TRUE(e.starts_with("spec.json: byte 9: malformed JSON: syntax error")) << e;
  e = error_of([] { parse_json_text("{\"a\": 1", "x.json"); });  // end of input after 7 bytes: offset 8
  EXPECT_TRUE(e.starts_with("x.json: byte 8: malformed JSON")) << e;
  EXPECT_EQ(parse_json_text("{\"a\": [1, 2]}", "ok.json")["a"][1], 2);
  // A number beyond a double is an input error too (nlohmann reports it as out_of_range, not as a parse error),
  // located at the number: byte 7 of {"a": 1e999}.
  e = error_of([] { parse_json_text("{\"a\": 1e999}", "big.json"); });
  EXPECT_TRUE(e.starts_with("big.json: byte 7: malformed JSON: number overflow parsing '1e999'")) << e;
}

class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("lina_test_params_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p.string();
  }
  std::filesystem::path dir_;
};

TEST_F(TempDirTest, FileNotFound) {
  std::string missing = (dir_ / "nope.json").string();
  std::string e = error_of([&] { parse_json_file(missing); });
  EXPECT_EQ(e, missing + ": cannot open file (does it exist?)");
}

TEST_F(TempDirTest, MalformedFileNamesTheFileAndByte) {
  std::string f = write("bad.json", "{\n  \"nodes\": 4\n  \"x\": 1\n}");
  // The unexpected token is the string "x" at bytes 18-20 ("{\n  \"nodes\": 4\n  " is 17 bytes); the parser
  // reports the byte where it finished reading the token: 20.
  std::string e = error_of([&] { parse_json_file(f); });
  EXPECT_TRUE(e.starts_with(f + ": byte 20: malformed JSON: syntax error")) << e;
}

TEST_F(TempDirTest, ClusterFromFileAndMissingFile) {
  std::string f =
      write("c.json", R"({"nodes": 2, "gpus_per_node": 2, "gpu": "H100-SXM", "nic": {"bandwidth": "400Gbps"}})");
  ClusterSpec c = load_cluster(json(f), "", "/cluster");
  EXPECT_EQ(c.gpu_count(), 4);
  EXPECT_DOUBLE_EQ(c.nic.bytes_per_s, 50e9);
  EXPECT_EQ(c.gpu.name, "H100-SXM");
  std::string e = error_of([&] { load_cluster(json((dir_ / "none.json").string()), "exp.json", "/cluster"); });
  EXPECT_TRUE(e.starts_with("exp.json: /cluster: cluster file '")) << e;
  EXPECT_TRUE(contains(e, "not found")) << e;
}

TEST(Presets, UnknownPresetSuggestsAndLists) {
  std::string e = error_of([] { load_cluster(json("dgx-a10"), "exp.json", "/cluster"); });
  EXPECT_TRUE(e.starts_with("exp.json: /cluster: unknown cluster preset 'dgx-a10' (did you mean 'dgx-a100'?)")) << e;
  EXPECT_TRUE(contains(e, "presets: dgx-a100, dgx-h100, dgx-h200, lina-testbed")) << e;
  e = error_of([] { load_gpu(json("A100-80GB"), "c.json", "/gpu"); });
  EXPECT_TRUE(contains(e, "unknown GPU preset 'A100-80GB' (did you mean 'A100-40GB'?)")) << e;
}

TEST(Presets, NamesInEachFolder) {
  EXPECT_EQ(preset_names("experiments/clusters"),
            (std::vector<std::string>{"dgx-a100", "dgx-h100", "dgx-h200", "lina-testbed", "lina-testbed-nvlink"}));
  EXPECT_EQ(preset_names("experiments/gpus"), (std::vector<std::string>{"A100-40GB", "H100-SXM", "H200"}));
  auto models = preset_names("models");
  for (const char* m : {"bert2gpt2", "deepseek-v2-lite", "gpt2", "llama-4-maverick", "mixtral-8x7b",
                        "qwen1.5-moe-a2.7b", "transformer-xl"}) {
    EXPECT_NE(std::find(models.begin(), models.end(), m), models.end()) << m;
  }
  EXPECT_EQ(find_preset("models", "gpt3"), nullptr);
  ASSERT_NE(find_preset("experiments/clusters", "lina-testbed"), nullptr);
}

TEST(Presets, LinaTestbedMatchesThePaper) {
  // 4 nodes x 4 A100-40GB, one 100 Gb/s NIC per node (DESIGN.md 4).
  ClusterSpec c = load_cluster_preset_or_file("lina-testbed");
  EXPECT_EQ(c.nodes, 4);
  EXPECT_EQ(c.gpus_per_node, 4);
  EXPECT_EQ(c.nic_per, ClusterSpec::NicPer::kNode);
  EXPECT_DOUBLE_EQ(c.nic.bytes_per_s, 12.5e9);
  EXPECT_EQ(c.gpu.name, "A100-40GB");
  EXPECT_DOUBLE_EQ(c.gpu.peak_fp16_flops, 312e12);
  EXPECT_DOUBLE_EQ(c.gpu.peak_flops("bf16"), 312e12);
  EXPECT_DOUBLE_EQ(c.gpu.peak_flops("tf32"), 156e12);
  EXPECT_DOUBLE_EQ(c.gpu.memory_bytes, 40.0 * 1073741824);
  EXPECT_EQ(c.collective_alpha, Time::us(10));         // default
  EXPECT_THROW(c.gpu.peak_flops("fp8"), InputError);   // A100 has none
  EXPECT_THROW(c.gpu.peak_flops("int4"), InputError);  // unknown dtype
  EXPECT_EQ(c.node_of(5), 1);
  EXPECT_EQ(c.local_of(5), 1);
}

TEST(Presets, EveryClusterAndGpuPresetLoads) {
  for (const auto& n : preset_names("experiments/clusters")) {
    SCOPED_TRACE(n);
    ClusterSpec c = load_cluster_preset_or_file(n);
    EXPECT_GT(c.gpu_count(), 0);
    EXPECT_GT(c.nic.bytes_per_s, 0);
    EXPECT_GT(c.gpu.peak_fp16_flops, 0);
  }
  for (const auto& n : preset_names("experiments/gpus")) {
    SCOPED_TRACE(n);
    GpuSpec g = load_gpu(json(n), "", "");
    EXPECT_EQ(g.name, n);
    EXPECT_GT(g.hbm_bytes_per_s, 1e12);
  }
}

TEST(ClusterErrors, PointersInsideInlineCluster) {
  json bad = {{"nodes", 2}, {"gpus_per_node", 4}, {"gpu", "A100-40GB"}, {"nic", {{"bandwidht", "100Gbps"}}}};
  EXPECT_EQ(error_of([&] { cluster_from_json(bad, "e.json", "/cluster"); }),
            "e.json: /cluster/nic/bandwidht: unknown field 'bandwidht' (did you mean 'bandwidth'?)");
  json missing = {{"nodes", 2}, {"gpu", "A100-40GB"}};
  EXPECT_TRUE(error_of([&] {
                cluster_from_json(missing, "e.json", "/cluster");
              }).starts_with("e.json: /cluster/gpus_per_node: missing required field 'gpus_per_node'"));
  json zero = {{"nodes", 0}, {"gpus_per_node", 4}, {"gpu", "A100-40GB"}};
  EXPECT_TRUE(contains(error_of([&] { cluster_from_json(zero, "e.json", "/cluster"); }),
                       "e.json: /cluster/nodes: value 0 is out of range"));
}

TEST(ParamTable, EveryPathDeclaredOnceWithDocumentation) {
  auto all = all_params();
  std::set<std::string> seen;
  for (const auto& p : all) {
    SCOPED_TRACE(p.path);
    EXPECT_TRUE(seen.insert(p.path).second) << "declared twice";
    EXPECT_FALSE(p.doc.empty());
    if (p.type == ParamType::kChoice) {
      EXPECT_FALSE(p.choices.empty());
    }
  }
  for (const char* must : {"cluster.nic.bandwidth", "cluster.nodes", "gpu.peak_fp16", "policy.micro_op_size",
                           "policy.bucket_size", "workload.batch_size", "mode", "seed"}) {
    EXPECT_TRUE(seen.count(must)) << must;
  }
  auto it = std::find_if(all.begin(), all.end(), [](const ParamDef& p) { return p.path == "cluster.nic.bandwidth"; });
  ASSERT_NE(it, all.end());
  EXPECT_EQ(it->unit_name(), "bytes/s");
  EXPECT_EQ(it->default_value, "100Gbps");
  EXPECT_FALSE(it->required());
}

TEST(ParamTable, UnitNames) {
  const auto& t = table();
  EXPECT_EQ(t[0].unit_name(), "bytes/s");
  EXPECT_EQ(t[1].unit_name(), "s");
  EXPECT_EQ(t[2].unit_name(), "integer");
  EXPECT_EQ(t[3].unit_name(), "number");
  EXPECT_EQ(t[4].unit_name(), "true|false");
  EXPECT_EQ(t[5].unit_name(), "one of switch|leaf_spine");
  EXPECT_EQ(t[6].unit_name(), "string");
  EXPECT_EQ(t[7].unit_name(), "object");
  EXPECT_TRUE(t[1].required());
  EXPECT_FALSE(t[0].required());
}

}  // namespace
}  // namespace lina

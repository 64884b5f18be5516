// `lina trace` end to end, in-process: exit codes, one-line errors, JSON output.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "tests/traces/helpers.hpp"

namespace lina::traces {
namespace {

using ::testing::HasSubstr;
using namespace lina::traces::testing;

struct CliRun {
  int code;
  std::string out, err;
};
CliRun lina(std::vector<std::string> args) {
  args.insert(args.begin(), "lina");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  const int code = cli::main_entry(int(argv.size()), argv.data());
  CliRun r{code, ::testing::internal::GetCapturedStdout(), ::testing::internal::GetCapturedStderr()};
  return r;
}

TEST(TraceCli, SynthStatsJson) {
  const std::string t = temp_path("s.ltr");
  CliRun r = lina({"trace",     "synth", "-o",       t,    "--experts", "8", "--top-k", "2",   "--layers", "3",
                   "--batches", "4",     "--tokens", "50", "--zipf",    "1", "--rho",   "0.5", "--seed",   "3"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = lina({"trace", "stats", t, "--json", "--exclude-layer", "2"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["batches"], 4);
  EXPECT_EQ(j["tokens"], 200);
  EXPECT_EQ(j["per_layer"].size(), 2u);
  EXPECT_TRUE(j["overall"]["top1"].contains("same_path_shuffled_weighted"));
  EXPECT_TRUE(j["overall"]["set"].contains("same_path_mean"));
  r = lina({"trace", "info", t});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("4 batches (0 prefill), 200 tokens"));
}

TEST(TraceCli, BadInputExitsTwoWithOneLine) {
  const std::string t = temp_path("bad.ltr");
  write_text(t, "not a trace at all");
  CliRun r = lina({"trace", "stats", t});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr(t + ": byte 0: wrong magic"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1);
  r = lina({"trace", "stats", temp_path("missing.ltr")});
  EXPECT_EQ(r.code, 2);
  r = lina({"trace", "synth", "-o", temp_path("x.ltr"), "--rho", "2"});
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, HasSubstr("--rho 2 is outside 0..1"));
  r = lina({"trace", "stats"});
  EXPECT_EQ(r.code, 2);  // missing FILE: a Boost.Program_options error
  r = lina({"trace", "frobnicate"});
  EXPECT_EQ(r.code, 2);
}

TEST(TraceCli, Help) {
  for (const char* sub : {"stats", "convert", "synth", "fit", "split", "estimate", "info", "counts"}) {
    const CliRun r = lina({"trace", sub, "--help"});
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_THAT(r.out, HasSubstr("usage: lina trace")) << sub;
  }
  EXPECT_EQ(lina({"trace", "--help"}).code, 0);
}

TEST(TraceCli, SplitEstimateCounts) {
  const std::string t = temp_path("t.ltr"), a = temp_path("a.ltr"), b = temp_path("b.jsonl"), c = temp_path("c.ltr");
  ASSERT_EQ(lina({"trace", "synth", "-o", t, "--experts", "8", "--layers", "4", "--batches", "10", "--tokens", "40",
                  "--rho", "0.9"})
                .code,
            0);
  ASSERT_EQ(lina({"trace", "split", t, "--profile-out", a, "--eval-out", b}).code, 0);
  CliRun r = lina({"trace", "estimate", "--profile", a, "--eval", b, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 3u);  // L = 1, 3, 6 by default
  EXPECT_EQ(j[0]["path_length"], 1);
  EXPECT_GT(j[0]["estimate_accuracy"].get<double>(), 0.3);  // rho 0.9: the path says a lot
  EXPECT_EQ(lina({"trace", "estimate", "--profile", a, "--eval", a}).code, 2);
  ASSERT_EQ(lina({"trace", "counts", t, "-o", c}).code, 0);
  r = lina({"trace", "stats", c, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["kind"], "counts");
}

}  // namespace
}  // namespace lina::traces

// The Chrome/Perfetto trace writer (sched/timeline.hpp): one process per node, one thread per GPU stream, complete
// events in microseconds with their rank and stream, link utilisation counters, and the canonical JSON bytes (the
// writer serialises event by event; the file must be what dumping the parsed document gives).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sched/plan.hpp"
#include "sched/timeline.hpp"

namespace lina {
namespace {

using nlohmann::json;

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ChromeTrace, NodesStreamsEventsAndCounters) {
  // 3 ranks, 2 per node: nodes 0 and 1. A compute task on rank 2 (node 1, local GPU 0), an all-to-all between ranks
  // 0 and 1 that waited 1 us for its rendezvous, and a task that never ran.
  Plan plan;
  plan.ranks = 3;
  Task gemm;
  gemm.rank = 2;
  gemm.op = OpKind::kGemm;
  gemm.flops = 1e9;
  gemm.bytes = 4096;
  const int g = plan.add_task(gemm);
  Collective a2a;
  a2a.kind = CommKind::kAllToAll;
  a2a.ranks = {0, 1};
  a2a.bytes = {0, 100, 300, 0};
  const int c = plan.add_collective(a2a);
  const int t0 = plan.add_comm_task(0, c, Stream::kAllToAll, {});
  const int t1 = plan.add_comm_task(1, c, Stream::kAllToAll, {});
  Task never;
  never.rank = 0;
  plan.add_task(never);

  Timeline tl;
  tl.records.resize(plan.tasks.size());
  tl.records[static_cast<size_t>(g)] = {g, Time::from_seconds(0), Time::from_seconds(2e-6), Time::from_seconds(5e-6)};
  tl.records[static_cast<size_t>(t0)] = {t0, Time::from_seconds(1e-6), Time::from_seconds(2e-6),
                                         Time::from_seconds(4.5e-6)};
  tl.records[static_cast<size_t>(t1)] = {t1, Time::from_seconds(2e-6), Time::from_seconds(2e-6),
                                         Time::from_seconds(4.5e-6)};
  tl.link_names = {"nic 0 up"};
  tl.link_capacity_bytes_per_s = {100e9};
  tl.link_samples = {{Time::from_seconds(2e-6), 0, 25e9}};

  const auto path = std::filesystem::path(::testing::TempDir()) / "lina_test_chrome_trace.json";
  write_chrome_trace(plan, tl, 2, path.string());
  const std::string text = slurp(path);
  const json doc = json::parse(text);
  EXPECT_EQ(doc.dump(), text);  // canonical bytes
  EXPECT_EQ(doc["displayTimeUnit"], "ms");
  const json& ev = doc["traceEvents"];

  int processes = 0, threads = 0, counters = 0;
  std::vector<json> complete;
  for (const auto& e : ev) {
    if (e["ph"] == "M" && e["name"] == "process_name") ++processes;
    if (e["ph"] == "M" && e["name"] == "thread_name") ++threads;
    if (e["ph"] == "X") complete.push_back(e);
    if (e["ph"] == "C") {
      ++counters;
      EXPECT_EQ(e["name"], "nic 0 up");
      EXPECT_EQ(e["pid"], 2);  // the "links" process after the 2 nodes
      EXPECT_DOUBLE_EQ(e["args"]["utilisation"].get<double>(), 0.25);
      EXPECT_DOUBLE_EQ(e["ts"].get<double>(), 2.0);
    }
  }
  EXPECT_EQ(processes, 3);               // node 0, node 1, links
  EXPECT_EQ(threads, 3 * kStreamCount);  // every stream of every GPU, none for the missing 4th GPU of node 1
  EXPECT_EQ(counters, 1);
  ASSERT_EQ(complete.size(), 3u);  // the task that never ran is left out

  const json& gemm_ev = complete[0];
  EXPECT_EQ(gemm_ev["pid"], 1);  // rank 2 is on node 1
  EXPECT_EQ(gemm_ev["tid"], 0 * 8 + static_cast<int>(Stream::kCompute));
  EXPECT_EQ(gemm_ev["cat"], "compute");
  EXPECT_DOUBLE_EQ(gemm_ev["ts"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(gemm_ev["dur"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(gemm_ev["args"]["flops"].get<double>(), 1e9);

  const json& a2a_ev = complete[1];
  EXPECT_EQ(a2a_ev["pid"], 0);
  EXPECT_EQ(a2a_ev["tid"], 0 * 8 + static_cast<int>(Stream::kAllToAll));
  EXPECT_EQ(a2a_ev["cat"], "comm");
  EXPECT_DOUBLE_EQ(a2a_ev["dur"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(a2a_ev["args"]["collective_bytes"].get<double>(), 400.0);
  EXPECT_DOUBLE_EQ(a2a_ev["args"]["waited_for_rendezvous_us"].get<double>(), 1.0);
  EXPECT_EQ(complete[2]["tid"], 1 * 8 + static_cast<int>(Stream::kAllToAll));  // rank 1: local GPU 1 of node 0
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace lina

// Result files (cli/report.hpp): the CSV stays one record per policy and point when a sweep value is a whole JSON
// object (RFC 4180 quoting), and points are labelled for people by a swept object's name.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/report.hpp"

namespace lina::cli {
namespace {

using nlohmann::json;

// Splits one CSV record (RFC 4180: quoted fields may hold commas; "" is a quote).
std::vector<std::string> csv_record(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        out.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        out.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

TEST(Report, SweptObjectsStayOneCsvFieldAndAreLabelledByName) {
  const json model = {{"name", "Transformer-XL (12 MoE layers)"}, {"base", "transformer-xl"}, {"layers", 12}};
  PointResult p;
  p.index = 3;
  p.params = {{"model", model}, {"workload.batch_size", 64}, {"cluster", "lina-testbed"}};
  p.policies.push_back({"lina", "lina", {{"latency_p50_s", 0.25}}, {}});
  const std::string csv = results_csv({p});
  std::istringstream in(csv);
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  const auto names = csv_record(header);
  const auto fields = csv_record(row);
  ASSERT_EQ(names.size(), fields.size()) << csv;
  ASSERT_EQ(names.size(), 6u);  // point, 3 sweep paths, policy, 1 metric
  EXPECT_EQ(names[2], "model");
  EXPECT_EQ(json::parse(fields[2]), model);  // the whole object, round-tripped through the quoting
  EXPECT_EQ(fields[1], "lina-testbed");
  EXPECT_EQ(fields[3], "64");
  EXPECT_EQ(fields[4], "lina");
  EXPECT_EQ(std::stod(fields[5]), 0.25);

  EXPECT_EQ(point_label(p.params), "cluster=lina-testbed,model=Transformer-XL (12 MoE layers),workload.batch_size=64");
  EXPECT_EQ(point_label(json{{"model", {{"base", "gpt2"}}}}), R"(model={"base":"gpt2"})");  // no name: the JSON
  EXPECT_EQ(point_label(json{{"cluster", {{"base", "dgx-h100"}, {"name", "H100 400G"}}}}), "cluster=H100 400G");
  EXPECT_EQ(point_label(json::object()), "single");
}

// Columns that only some runs have appear when one policy has the metric, with "-" for the others: weight loads
// where experts are offloaded, the cost where the cluster has a price.
TEST(Report, OptionalColumnsAppearWhenAPolicyHasTheMetric) {
  PointResult p;
  p.policies.push_back({"deepspeed", "deepspeed", {{"step_time_s", 1.0}, {"host_load_time_s", 0.25}}, {}});
  p.policies.push_back({"lina", "lina", {{"step_time_s", 0.5}}, {}});
  std::string t = results_table("training", p);
  EXPECT_NE(t.find("host_load_ms"), std::string::npos) << t;
  EXPECT_NE(t.find("250.00"), std::string::npos) << t;
  EXPECT_EQ(t.find("usd/Mtoken"), std::string::npos) << t;
  p.policies[1].metrics["usd_per_million_tokens"] = 0.125;
  t = results_table("training", p);
  EXPECT_NE(t.find("usd/Mtoken"), std::string::npos) << t;
  EXPECT_NE(t.find("0.125"), std::string::npos) << t;
  p.policies[0].metrics.erase("host_load_time_s");
  EXPECT_EQ(results_table("training", p).find("host_load_ms"), std::string::npos);
}

}  // namespace
}  // namespace lina::cli

// The list of every parameter, for `lina params`: each spec module contributes its own table.
#include "sched/cluster_spec.hpp"
#include "sched/experiment_spec.hpp"
#include "sched/model_spec.hpp"
#include "sched/params.hpp"
#include "sched/policy_spec.hpp"
#include "sched/workload_spec.hpp"

namespace lina {

std::vector<ParamDef> all_params() {
  std::vector<ParamDef> out;
  for (const auto* table :
       {&experiment_params(), &cluster_params(), &model_params(), &workload_params(), &policy_params()})
    out.insert(out.end(), table->begin(), table->end());
  return out;
}

}  // namespace lina

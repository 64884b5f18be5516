#include "sched/training_scheduler.hpp"

#include "sched/lina_scheduler.hpp"
#include "sched/naive_priority_scheduler.hpp"

namespace lina {

std::unique_ptr<RuntimeScheduler> make_training_scheduler(const PolicySpec& policy) {
  const std::string& name = policy.name;
  if (name == "lina" || name == "lina-priority" || name == "lina-partition") {
    return std::make_unique<LinaTrainingScheduler>(LinaTrainingScheduler::Options{false, policy.hold});
  }
  if (name == "lina-fixed")
    return std::make_unique<LinaTrainingScheduler>(LinaTrainingScheduler::Options{true, PolicySpec::Hold::kDevice});
  if (name == "naive-priority") return std::make_unique<NaivePriorityScheduler>();
  return std::make_unique<ImmediateScheduler>();
}

}  // namespace lina

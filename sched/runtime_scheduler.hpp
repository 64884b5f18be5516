// The runtime scheduler (DESIGN.md 3): the online half of a policy, called by an executor. The same object drives
// the simulator (sim/executor) and the GPUs (hw/), which is what makes a simulated and a real run comparable.
//
// Protocol: the executor reports a communication task as ready when it reaches the head of its stream and its
// dependencies are done; the scheduler launches it (now or later) through the Launcher. The executor also reports
// every task start and finish, which is all a policy needs to know what each device is doing.
#pragma once

#include "sched/plan.hpp"
#include "sched/time.hpp"

namespace lina {

class Launcher {
 public:
  virtual ~Launcher() = default;
  virtual void launch(int task) = 0;
};

class RuntimeScheduler {
 public:
  virtual ~RuntimeScheduler() = default;
  virtual void attach(const Plan& plan, Launcher& launcher) = 0;
  virtual void on_comm_ready(int task, Time now) = 0;
  virtual void on_task_start(int task, Time now) = 0;
  virtual void on_task_finish(int task, Time now) = 0;
};

// Launches every communication task as soon as it is ready (DeepSpeed, Tutel, the Ideal bound).
class ImmediateScheduler : public RuntimeScheduler {
 public:
  void attach(const Plan&, Launcher& launcher) override { launcher_ = &launcher; }
  void on_comm_ready(int task, Time) override { launcher_->launch(task); }
  void on_task_start(int, Time) override {}
  void on_task_finish(int, Time) override {}

 private:
  Launcher* launcher_ = nullptr;
};

}  // namespace lina

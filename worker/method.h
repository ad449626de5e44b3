// The interface between the worker runtime (which talks to the coordinator) and a training
// method (SD², a baseline, the linear probe, smoke). Torch-free: methods that use LibTorch
// implement it in .cc files of worker/models and worker/train.
//
//   MethodRegistry::Get("sd2") -> Method; method->Run(ctx) trains, checkpoints, evaluates.
#ifndef SD2_WORKER_METHOD_H_
#define SD2_WORKER_METHOD_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "worker/comm/communicator.h"

namespace sd2::worker {

struct ScoreRow {
  std::string sample_id;
  std::string video_id;
  int label = 0;  // 1 = fake
  std::string type;
  double score = 0;  // probability of fake
};

// What a method gets from the runtime. Callbacks are safe to call from the method's thread
// on rank 0; on other ranks they are no-ops (results are reported by rank 0).
struct TrialContext {
  nlohmann::json config;  // docs/trial_config.md
  std::string trial_key;
  int attempt = 1;
  std::string work_dir;          // per-trial directory, shared by attempts: checkpoints live here
  Communicator* comm = nullptr;  // the group's communicator (never null)
  // The same ranks with host buffers (MPI): `comm` itself unless comm->device_buffers() (NCCL),
  // for methods whose collectives run on CPU memory. Null only where no runtime set it.
  Communicator* host_comm = nullptr;
  std::string device = "cpu";  // "cpu" or "cuda:N"

  std::function<void(int64_t step, const std::string& name, double value)> report_metric;
  std::function<void(const std::string& eval_set, const std::vector<ScoreRow>& rows)> report_scores;
  std::function<void(int64_t step, const std::string& path)> report_checkpoint;
  // True once the coordinator cancelled the trial or a preemption signal arrived: the method
  // writes a checkpoint (when `preempted()`) and returns CancelledError / AbortedError soon.
  std::function<bool()> should_stop;
  std::function<bool()> preempted;
  // Method variants used (e.g. loss reductions), stored with the attempt.
  std::function<void(const nlohmann::json&)> report_variant;
};

class Method {
 public:
  virtual ~Method() = default;
  // Trains (resuming from the newest checkpoint in ctx.work_dir), evaluates every eval set and
  // reports scores. Ok when done; CancelledError when stopped; other errors fail the attempt.
  virtual Status Run(TrialContext& ctx) = 0;
};

using MethodFactory = std::function<std::unique_ptr<Method>()>;

// Registration happens in explicit Register*Methods() calls (no static-init magic), made by
// the worker binary's main.
class MethodRegistry {
 public:
  static MethodRegistry& Global();
  void Register(const std::string& name, MethodFactory factory);
  StatusOr<std::unique_ptr<Method>> Create(const std::string& name) const;
  std::vector<std::string> Names() const;

 private:
  std::vector<std::pair<std::string, MethodFactory>> factories_;
};

}  // namespace sd2::worker

#endif  // SD2_WORKER_METHOD_H_

#include "worker/train/trial_data.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <torch/torch.h>

namespace sd2::worker::train {
int ConfigureCpuThreads(int requested, int world) {
  int threads = requested;
  if (threads <= 0) {
    threads =
        std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / std::max(1, world));
  }
  torch::set_num_threads(threads);
  const char* env = std::getenv("OPENBLAS_NUM_THREADS");
  if (env == nullptr || *env == '\0') {
    if (auto* set_blas =
            reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
      set_blas(1);
    }
  }
  return threads;
}

Status TrainThenEvaluate(Trainer& trainer, const data::LoaderOptions& base,
                         const nlohmann::json& train_filter, int64_t global_batch,
                         const nlohmann::json& evals, int eval_batch_size, Communicator* comm) {
  const int rank = comm->rank(), world = comm->size();
  if (global_batch <= 0 || global_batch % world != 0) {
    return InvalidArgumentError("batch_size " + std::to_string(global_batch) +
                                " does not divide over " + std::to_string(world) + " ranks");
  }
  if (eval_batch_size <= 0) {
    return InvalidArgumentError("eval_batch_size must be > 0, got " +
                                std::to_string(eval_batch_size));
  }
  SD2_ASSIGN_OR_RETURN(const data::Filter train, data::FilterFromJson(train_filter));
  SD2_RETURN_IF_ERROR(trainer.Train([&](int64_t epoch, int64_t batch) {
    data::LoaderOptions o = base;
    o.filter = train;
    o.rank = rank;
    o.world = world;
    o.batch_size = static_cast<int>(global_batch / world);
    o.train = true;
    // With a step budget the loader never runs dry: the trainer stops at the budget.
    o.epochs = trainer.options().total_steps > 0 ? (int64_t(1) << 40) : trainer.options().epochs;
    o.start_epoch = epoch;
    o.start_batch = batch;
    return data::Loader::Open(o);
  }));
  if (rank == 0 && evals.is_array()) {
    for (const auto& e : evals) {
      data::LoaderOptions o = base;
      SD2_ASSIGN_OR_RETURN(o.filter, data::FilterFromJson(e));
      o.scale = 0;  // every row of the eval set
      o.train = false;
      o.batch_size = eval_batch_size;
      SD2_ASSIGN_OR_RETURN(auto loader, data::Loader::Open(o));
      SD2_RETURN_IF_ERROR(trainer.Evaluate(e.value("name", std::string("eval")), loader.get()));
    }
  }
  return comm->Barrier();
}

}  // namespace sd2::worker::train

// What every trainable method (sd2 and the baselines) does around the Trainer: the CPU thread
// set-up, the trial config's data filters, and "train with the configured training rows, then
// score every eval set on rank 0".
//
//   int threads = ConfigureCpuThreads(Hp<int>(hp, "threads", 0), comm->size());
//   data::LoaderOptions base = ...;  // manifest, root, scale, seed, image size, norm, augment
//   Trainer trainer(options, &model, &ctx);
//   SD2_RETURN_IF_ERROR(TrainThenEvaluate(trainer, base, cfg["data"]["train"], 512, cfg["eval"],
//                                         /*eval_batch_size=*/128, comm));
#ifndef SD2_WORKER_TRAIN_TRIAL_DATA_H_
#define SD2_WORKER_TRAIN_TRIAL_DATA_H_

#include <cstdint>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "worker/comm/communicator.h"
#include "worker/data/loader.h"
#include "worker/data/manifest.h"
#include "worker/train/trainer.h"

namespace sd2::worker::train {

// Gives LibTorch's OpenMP pool `requested` threads (<= 0: the machine's cores shared by the
// `world` ranks of this node) and returns that number. OpenBLAS (the BLAS of Debian's LibTorch)
// keeps a second pool of its own whose threads spin while OpenMP's do: both on the same cores
// cost 1.1x (Xception) to 2.6x (CLIP tiny) per step with 2 threads on 2 cores, so OpenBLAS runs
// on the calling thread unless OPENBLAS_NUM_THREADS says otherwise.
int ConfigureCpuThreads(int requested, int world);

// Trains `trainer` on the rows of `train_filter` (each rank reading its shard of
// `global_batch`), then, on rank 0, scores every set of `evals` (each a filter object with a
// "name") over all its rows in batches of `eval_batch_size`; ends with a barrier.
// `base` carries the shared loader settings (manifest, root, scale, seed, image size,
// normalization, augmentation, threads). InvalidArgument when `global_batch` does not divide
// over the ranks.
Status TrainThenEvaluate(Trainer& trainer, const data::LoaderOptions& base,
                         const nlohmann::json& train_filter, int64_t global_batch,
                         const nlohmann::json& evals, int eval_batch_size, Communicator* comm);

}  // namespace sd2::worker::train

#endif  // SD2_WORKER_TRAIN_TRIAL_DATA_H_

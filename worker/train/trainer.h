// A generic train / evaluate / checkpoint loop for any model with a loss and a fake-score:
// SD² and the baselines plug in by implementing TrainableModel.
//
// Each optimizer step consumes `accumulation` local batches, averages gradients over ranks
// (Communicator all-reduce of one flat float buffer of the trainable gradients), and applies
// AdamW (PyTorch's formula; weight decay only on tensors with dim >= 2) with a constant or
// linear-warmup + cosine learning rate. RNG is re-seeded from (seed, step, micro-batch, rank)
// before each forward, so a resumed run draws the same dropout masks and labels as an
// uninterrupted one. Checkpoints (rank 0, atomic, `work_dir/checkpoint-<step>.safetensors`, the
// last two kept) hold trainable weights, AdamW moments, step, data position and the CPU RNG
// state; Train() resumes from the newest readable one.
//
//   class MyModel : public TrainableModel { ... };       // see worker/train/sd2_method.cc
//   Trainer trainer(options, &model, &ctx);
//   SD2_RETURN_IF_ERROR(trainer.Train([&](int64_t epoch, int64_t batch) {
//     return data::Loader::Open(LoaderOptionsAt(epoch, batch)); }));
//   SD2_RETURN_IF_ERROR(trainer.Evaluate("DF40-FF", eval_loader.get()));
#ifndef SD2_WORKER_TRAIN_TRAINER_H_
#define SD2_WORKER_TRAIN_TRAINER_H_

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/data/loader.h"
#include "worker/method.h"

namespace sd2::worker::train {

struct TorchBatch {
  torch::Tensor pixels;               // [B, C, H, W] float on the device
  torch::Tensor type_index;           // [B] int64 on the device
  torch::Tensor label;                // [B] int64 on the device, 1 = fake
  const data::Batch* meta = nullptr;  // ids, descriptions, epoch/index
};
TorchBatch ToTorch(const data::Batch& b, const torch::Device& device);

struct StepOutput {
  torch::Tensor loss;                     // scalar; this rank's mean over its local batch
  std::map<std::string, double> metrics;  // reported as train/<name>
};

class TrainableModel {
 public:
  virtual ~TrainableModel() = default;
  // The whole network (train()/eval() switches; to(device)).
  virtual torch::nn::Module& module() = 0;
  // The tensors AdamW updates, with stable names (checkpoint keys); requires_grad set.
  virtual std::vector<std::pair<std::string, torch::Tensor>> TrainableParameters() = 0;
  // Loss of one local micro-batch at optimizer step `step`. May run collectives: every rank
  // calls it in the same order.
  virtual StatusOr<StepOutput> Loss(const TorchBatch& batch, int64_t step) = 0;
  // P(fake) per sample, [B] float. Called in eval mode under NoGradGuard.
  virtual StatusOr<torch::Tensor> Score(const TorchBatch& batch) = 0;
};

struct TrainerOptions {
  double lr = 5e-7;                                                    // paper Sec. 5.1
  double weight_decay = 0.01, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // AdamW defaults
  // Coupled L2 (torch.optim.Adam's weight_decay): grad += l2 * w for every trainable tensor
  // before the moments; the baselines' Adam uses it, SD² uses the decoupled weight_decay.
  double l2 = 0;
  std::string schedule = "constant";  // constant | cosine (after linear warmup)
  int64_t warmup = 0;                 // optimizer steps
  int64_t epochs = 4;                 // paper Sec. 5.1
  int64_t total_steps = 0;            // > 0 overrides epochs
  int64_t accumulation = 1;
  int64_t checkpoint_every = 0;  // optimizer steps; 0 = only at the end / on preemption
  int64_t log_every = 10;
  uint64_t seed = 0;
  std::string device = "cpu";
  bool bf16_autocast = true;          // CUDA only
  std::string work_dir;               // "" = no checkpoints
  int64_t images_per_rank_batch = 0;  // informational (images/s)
};
Status ValidateTrainerOptions(const TrainerOptions& o);

// Opens the training loader positioned at (epoch, batch) (the batch to read next).
using LoaderFactory = std::function<StatusOr<std::unique_ptr<data::Loader>>(int64_t start_epoch,
                                                                            int64_t start_batch)>;

class Trainer {
 public:
  // Neither pointer is owned; both must outlive the trainer.
  Trainer(TrainerOptions o, TrainableModel* model, TrialContext* ctx);
  // Trains to the end (resuming first). CancelledError when ctx.should_stop() (AbortedError
  // when ctx.preempted(), after writing a checkpoint).
  Status Train(const LoaderFactory& make_loader);
  // Scores every batch of `loader` and reports all rows of the set in one ctx.report_scores
  // call (receivers may replace a set's scores with each report).
  Status Evaluate(const std::string& eval_set, data::Loader* loader);
  int64_t step() const { return step_; }
  int64_t total_steps() const { return total_steps_; }
  const TrainerOptions& options() const { return o_; }
  double LearningRate(int64_t step) const;
  // Newest checkpoint path in work_dir, "" when none.
  std::string NewestCheckpoint() const;
  Status SaveCheckpoint();

 private:
  Status LoadCheckpoint(const std::string& path);
  Status AllReduceGradients(const std::vector<torch::Tensor>& params);
  void AdamWStep(const std::vector<std::pair<std::string, torch::Tensor>>& params);

  TrainerOptions o_;
  TrainableModel* model_;
  TrialContext* ctx_;
  torch::Device device_;
  int64_t step_ = 0, total_steps_ = 0, next_epoch_ = 0, next_batch_ = 0;
  std::map<std::string, torch::Tensor> m_, v_;
};

}  // namespace sd2::worker::train

#endif  // SD2_WORKER_TRAIN_TRAINER_H_

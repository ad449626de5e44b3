// The baseline detectors as TrainableModels for the shared Trainer (worker/train/trainer.h),
// and the Method that trains, checkpoints, resumes and evaluates them. LibTorch header: only
// worker/baselines includes it; others use register.h.
//
// Methods and their networks (docs/baselines.md):
//   xception  Xception, 2-way head, mean/std 0.5          recce  RECCE (Xception encoder)
//   spsl      Xception on RGB + phase-only gray            clip   CLIP image tower + linear head
//   clip_lora CLIP with LoRA on q,k,v,out + linear head    clip_svd  Effort's SVD residual
//   univfd    frozen CLIP image tower + linear probe       probe  linear probe of a trained
//             encoder (SD², clip, clip_svd, ...) for Table 4
//
//   SD2_ASSIGN_OR_RETURN(auto det, BuildDetector("xception", trial_config));
//   train::Trainer trainer(options, det.get(), &ctx);
#ifndef SD2_WORKER_BASELINES_BASELINES_H_
#define SD2_WORKER_BASELINES_BASELINES_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "common/status.h"
#include "worker/data/loader.h"
#include "worker/method.h"
#include "worker/train/trainer.h"

namespace sd2::worker::baselines {

// A detector: a network, its loss and its fake score. Trainable tensors are the parameters
// with requires_grad plus BatchNorm running statistics (named "buffer/<name>"; they receive no
// gradient, so the optimizer leaves them alone, but checkpoints carry them).
class Detector : public train::TrainableModel {
 public:
  std::string method;
  std::shared_ptr<torch::nn::Module> root;  // the whole network
  data::Normalization norm = data::Normalization::kHalf;
  int image_size = 256;
  double l2 = 0;  // Adam-style (coupled) weight decay: TrainerOptions::l2 (grad += l2 * w)
  nlohmann::json variant = nlohmann::json::object();  // reported with the attempt
  // Runs before every forward (clip_svd rebuilds its projection weights).
  std::function<void()> before_forward;
  // Logits (N, 2) in eval mode; the default loss is cross-entropy on them.
  std::function<torch::Tensor(const torch::Tensor& pixels)> logits;
  // Optional loss replacing cross-entropy; fills `metrics`.
  std::function<torch::Tensor(const torch::Tensor& pixels, const torch::Tensor& labels,
                              std::map<std::string, double>* metrics)>
      loss;
  // Image features for the linear probe (clip family): (N, D).
  std::function<torch::Tensor(const torch::Tensor& pixels)> features;

  torch::nn::Module& module() override { return *root; }
  std::vector<std::pair<std::string, torch::Tensor>> TrainableParameters() override;
  StatusOr<train::StepOutput> Loss(const train::TorchBatch& batch, int64_t step) override;
  StatusOr<torch::Tensor> Score(const train::TorchBatch& batch) override;
};

// Builds the detector of `method` from a trial config (model name, hparams). Seeds torch
// with config.seed first so every rank builds the same weights. InvalidArgument for unknown
// methods, model names and bad hparams; NotFound for missing pretrained files.
StatusOr<std::unique_ptr<Detector>> BuildDetector(const std::string& method,
                                                  const nlohmann::json& config);

// Loads the trainable tensors of `model` from a trainer checkpoint (checkpoint-*.safetensors).
Status LoadTrainedWeights(const std::string& checkpoint, train::TrainableModel& model);
// The newest checkpoint-*.safetensors in `dir`, or NotFound.
StatusOr<std::string> NewestCheckpointIn(const std::string& dir);

// The Method of every baseline: trains with the shared Trainer (resuming from ctx.work_dir),
// then scores every eval set on rank 0. Writes ctx.work_dir/trial_config.json (the probe reads
// it to rebuild the encoder).
class BaselineMethod : public Method {
 public:
  explicit BaselineMethod(std::string name) : name_(std::move(name)) {}
  Status Run(TrialContext& ctx) override;

 private:
  std::string name_;
};

}  // namespace sd2::worker::baselines

#endif  // SD2_WORKER_BASELINES_BASELINES_H_

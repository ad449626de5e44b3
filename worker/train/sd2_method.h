// The `sd2` method: SD² (CLIP + LoRA + CLAM + adapter, L_C + L_S + L_D) as a TrainableModel
// for the generic Trainer, and the Method the worker runtime runs.
//
// Hparams (defaults from the paper where it states them): lr 5e-7, weight_decay 0.01,
// batch_size 512 (global), epochs 4, steps (overrides epochs), warmup 0, schedule constant,
// accumulation 1, alpha 2, lora_r 8, lora_alpha 32, lora_dropout 0.1, image_size (model's),
// checkpoint_every 0, eval_batch_size 128, threads, loader_threads, pretrained (HF CLIP
// folder), vocab (folder with vocab.json + merges.txt), vocab_size 1000 (learned when neither
// is given), lc_reduction mean|sum, ls_reduction sum|mean, siglip_temperature shared|separate,
// backbone lora|full (default: lora with pretrained weights, full for a random-init backbone),
// label_sampling all|simple (default all: the paper's ~30 labels per type). docs/method.md.
//
//   Sd2Trainable m(model, tokenizer, labels, loss_options, comm, seed);
//   SD2_ASSIGN_OR_RETURN(StepOutput out, m.Loss(batch, step));   // out.loss = total
#ifndef SD2_WORKER_TRAIN_SD2_METHOD_H_
#define SD2_WORKER_TRAIN_SD2_METHOD_H_

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "worker/method.h"
#include "worker/models/sd2_model.h"
#include "worker/models/tokenizer.h"
#include "worker/train/losses.h"
#include "worker/train/text_labels.h"
#include "worker/train/trainer.h"

namespace sd2::worker::train {

inline constexpr int kDescriptionTokens = 60;  // paper App. F.2
inline constexpr int kLabelTokens = 77;

// Token ids [N, T] (T = longest row), SOT ... EOT, zero-padded.
torch::Tensor TokenizeBatch(const models::Tokenizer& tok, const std::vector<std::string>& texts,
                            int context, const torch::Device& device);
// The same from already encoded rows.
torch::Tensor PadTokenRows(const std::vector<const std::vector<int>*>& rows,
                           const torch::Device& device);

class Sd2Trainable : public TrainableModel {
 public:
  Sd2Trainable(models::Sd2Model model, models::Tokenizer tokenizer, TypeLabels labels,
               LossOptions loss, Communicator* comm, uint64_t seed);
  torch::nn::Module& module() override { return *model_; }
  std::vector<std::pair<std::string, torch::Tensor>> TrainableParameters() override;
  StatusOr<StepOutput> Loss(const TorchBatch& batch, int64_t step) override;
  StatusOr<torch::Tensor> Score(const TorchBatch& batch) override;
  // The label index per type used at `step` (same on every rank).
  std::array<int, 5> SampleLabels(int64_t step) const;
  // Last step's loss terms (tests).
  const Sd2Losses& last_losses() const { return last_; }
  models::Sd2Model& model() { return model_; }

 private:
  // Token ids of a description (cached: descriptions repeat every epoch).
  const std::vector<int>& DescriptionIds(const std::string& text);

  models::Sd2Model model_;
  models::Tokenizer tok_;
  TypeLabels labels_;
  std::array<std::vector<std::vector<int>>, 5> label_ids_;  // per type, per label
  std::unordered_map<std::string, std::vector<int>> description_ids_;
  LossOptions loss_;
  Communicator* comm_;
  uint64_t seed_;
  Sd2Losses last_;
};

class Sd2Method : public Method {
 public:
  Status Run(TrialContext& ctx) override;
};

}  // namespace sd2::worker::train

#endif  // SD2_WORKER_TRAIN_SD2_METHOD_H_

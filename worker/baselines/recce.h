// RECCE (Cao et al., CVPR 2022, "End-to-End Reconstruction-Classification Learning for Face
// Forgery Detection") as in its official code and DeepfakeBench: an Xception encoder, a
// reconstruction decoder, graph reasoning that fuses encoder features with two decoder scales,
// guided attention from |x - reconstruction|, and a 2-way head.
//
// The middle flow is split as in the paper: the first middle block gives the reasoning graph's
// root, half the middle flow runs before the fusion, one block before the attention, the rest
// after it (8 blocks: 4 | 5-7 | fuse | 8 | attend | 9-11). Needs at least 2 middle blocks.
//
//   RecceOptions opt; opt.encoder.width = 1.0 / 16; opt.encoder.middle_blocks = 2;
//   Recce net(opt);
//   RecceOutput out = net->Forward(images);  // out.logits (N, 2), out.recons, out.corrs
//   torch::Tensor loss = RecceLoss(out, images, labels, {/*recons=*/true, /*metric=*/true});
#ifndef SD2_WORKER_BASELINES_RECCE_H_
#define SD2_WORKER_BASELINES_RECCE_H_

#include <vector>

#include <torch/torch.h>

#include "worker/baselines/xception.h"

namespace sd2::worker::baselines {

struct RecceOptions {
  XceptionOptions encoder;  // num_classes is ignored (the encoder has no head)
  int num_classes = 2;
  double drop_rate = 0.2;
  double noise_std = 1e-6;  // white noise added to half the training images (official code)
};

struct RecceOutput {
  torch::Tensor logits;              // (N, num_classes)
  torch::Tensor recons;              // (N, 3, H, W), tanh range
  std::vector<torch::Tensor> corrs;  // (N, N) cosine correlations in [0, 1] at three depths
};

// Guided attention: a gate from the reconstruction residual reweights the embedding.
class GuidedAttentionImpl : public torch::nn::Module {
 public:
  GuidedAttentionImpl(int64_t depth, double drop_rate);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& recons,
                        const torch::Tensor& embedding);

 private:
  torch::nn::Sequential gated_{nullptr}, h_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(GuidedAttention);

// Graph reasoning over encoder vertices (a) and their 2x2 / 4x4 children in decoder features
// (b, c); the official per-vertex loop, vectorised.
class GraphReasoningImpl : public torch::nn::Module {
 public:
  GraphReasoningImpl(int64_t va_in, int64_t va_out, int64_t vb_in, int64_t vb_out, int64_t vc_in,
                     int64_t vc_out, int64_t ratio_b, int64_t ratio_c, double drop_rate);
  torch::Tensor forward(const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c);

 private:
  torch::Tensor Aggregate(const torch::Tensor& emb_a, const torch::Tensor& child, int64_t ratio,
                          torch::nn::Sequential& embedding, torch::nn::Sequential& reweight);
  int64_t ratio_b_, ratio_c_;
  torch::nn::Sequential va_embedding_{nullptr}, va_gated_b_{nullptr}, va_gated_c_{nullptr};
  torch::nn::Sequential vb_embedding_{nullptr}, vc_embedding_{nullptr};
  torch::nn::Sequential reweight_ab_{nullptr}, reweight_ac_{nullptr}, reproject_{nullptr};
};
TORCH_MODULE(GraphReasoning);

class RecceImpl : public torch::nn::Module {
 public:
  explicit RecceImpl(const RecceOptions& options);
  RecceOutput Forward(const torch::Tensor& x);
  Xception& encoder() { return encoder_; }

 private:
  RecceOptions options_;
  Xception encoder_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear fc_{nullptr};
  GuidedAttention attention_{nullptr};
  GraphReasoning reasoning_{nullptr};
  torch::nn::Sequential decoder1_{nullptr}, decoder3_{nullptr}, decoder5_{nullptr},
      decoder6_{nullptr};
  Block decoder2_{nullptr}, decoder4_{nullptr};
};
TORCH_MODULE(Recce);

struct RecceLossOptions {
  bool recons = false;  // L1 reconstruction of real images (official weight 0.1)
  // Metric learning on the correlation maps (official weight 0.1): per depth
  // max(0, 1 - mean corr(real, real) + mean corr(real, fake)).
  bool metric = false;
  double recons_weight = 0.1;
  double metric_weight = 0.1;
};

// Cross-entropy, plus the switched-on terms. `parts` (optional) receives each term's value.
torch::Tensor RecceLoss(const RecceOutput& out, const torch::Tensor& x, const torch::Tensor& labels,
                        const RecceLossOptions& options,
                        std::vector<std::pair<std::string, double>>* parts = nullptr);

}  // namespace sd2::worker::baselines

#endif  // SD2_WORKER_BASELINES_RECCE_H_

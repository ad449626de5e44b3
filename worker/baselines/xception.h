// Xception (Chollet 2017) as DeepfakeBench builds it: entry flow (two plain convolutions and
// three strided blocks), middle flow (residual blocks of three separable convolutions), exit
// flow (one strided block, two separable convolutions), ReLU, global average pooling and a
// linear head. Parameter names follow DeepfakeBench's `xception.py` (conv1, bn1, block1.rep.0...,
// last_linear) so a converted ImageNet checkpoint loads by name (docs/baselines.md).
//
// A width multiplier scales every channel count and `middle_blocks` the middle flow's depth
// for tiny configs; width 1 with 8 middle blocks is the published architecture.
//
//   XceptionOptions opt; opt.width = 1.0 / 16; opt.middle_blocks = 2;
//   Xception net(opt);
//   torch::Tensor logits = net->forward(images);   // (N, 2)
#ifndef SD2_WORKER_BASELINES_XCEPTION_H_
#define SD2_WORKER_BASELINES_XCEPTION_H_

#include <string>
#include <vector>

#include <torch/torch.h>

namespace sd2::worker::baselines {

struct XceptionOptions {
  int in_channels = 3;
  int num_classes = 2;  // 0: no head (RECCE has its own)
  double width = 1.0;   // multiplies every channel count (rounded, at least 1)
  int middle_blocks = 8;
  double dropout = 0.0;  // before the head
};

// Channel count `c` scaled by `width`.
int64_t ScaledChannels(int64_t c, double width);

// Depthwise 3x3 (or k x k) convolution followed by a pointwise 1x1, both without bias.
class SeparableConv2dImpl : public torch::nn::Module {
 public:
  SeparableConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, pointwise_{nullptr};
};
TORCH_MODULE(SeparableConv2d);

// Residual block: `reps` x (ReLU, SeparableConv2d, BatchNorm), optional strided max-pool, and a
// 1x1 strided projection on the skip path when the shape changes.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(int64_t in, int64_t out, int reps, int stride, bool start_with_relu, bool grow_first);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Sequential rep_{nullptr};
  torch::nn::Conv2d skip_{nullptr};
  torch::nn::BatchNorm2d skipbn_{nullptr};
};
TORCH_MODULE(Block);

class XceptionImpl : public torch::nn::Module {
 public:
  explicit XceptionImpl(const XceptionOptions& options);

  // Logits (N, num_classes).
  torch::Tensor forward(const torch::Tensor& x);
  // The exit flow's feature map (after bn4, before the final ReLU).
  torch::Tensor Features(const torch::Tensor& x);
  // ReLU + global average pooling of a feature map: (N, C).
  torch::Tensor Pool(const torch::Tensor& features);
  int64_t feature_dim() const { return feature_dim_; }

  // The pieces, for detectors built around the encoder (RECCE, SPSL).
  torch::Tensor Stem(const torch::Tensor& x);   // conv1 bn1 relu conv2 bn2 relu
  torch::Tensor Entry(const torch::Tensor& x);  // block1..block3
  Block& middle(int i) { return middle_[i]; }
  int num_middle() const { return static_cast<int>(middle_.size()); }
  torch::Tensor Exit(const torch::Tensor& x);  // block12 conv3 bn3 relu conv4 bn4
  torch::nn::Conv2d& conv1() { return conv1_; }
  int64_t middle_channels() const { return middle_channels_; }

 private:
  XceptionOptions options_;
  int64_t feature_dim_ = 0, middle_channels_ = 0;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr}, bn4_{nullptr};
  Block block1_{nullptr}, block2_{nullptr}, block3_{nullptr}, block12_{nullptr};
  std::vector<Block> middle_;
  SeparableConv2d conv3_{nullptr}, conv4_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear last_linear_{nullptr};
};
TORCH_MODULE(Xception);

}  // namespace sd2::worker::baselines

#endif  // SD2_WORKER_BASELINES_XCEPTION_H_

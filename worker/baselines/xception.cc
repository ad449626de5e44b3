#include "worker/baselines/xception.h"

#include <algorithm>
#include <cmath>

namespace sd2::worker::baselines {

namespace nn = torch::nn;

int64_t ScaledChannels(int64_t c, double width) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(c) * width));
}

SeparableConv2dImpl::SeparableConv2dImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                         int64_t padding) {
  conv1_ = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, in, kernel)
                                                   .stride(stride)
                                                   .padding(padding)
                                                   .groups(in)
                                                   .bias(false)));
  pointwise_ = register_module("pointwise", nn::Conv2d(nn::Conv2dOptions(in, out, 1).bias(false)));
}

torch::Tensor SeparableConv2dImpl::forward(const torch::Tensor& x) {
  return pointwise_->forward(conv1_->forward(x));
}

BlockImpl::BlockImpl(int64_t in, int64_t out, int reps, int stride, bool start_with_relu,
                     bool grow_first) {
  if (out != in || stride != 1) {
    skip_ = register_module("skip",
                            nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)));
    skipbn_ = register_module("skipbn", nn::BatchNorm2d(out));
  }
  // The same layer order (and so the same Sequential indices) as DeepfakeBench's Block.
  std::vector<std::pair<int64_t, int64_t>> convs;
  int64_t filters = in;
  if (grow_first) {
    convs.push_back({in, out});
    filters = out;
  }
  for (int i = 0; i < reps - 1; ++i) convs.push_back({filters, filters});
  if (!grow_first) convs.push_back({in, out});
  rep_ = nn::Sequential();
  bool first = true;
  for (const auto& [ci, co] : convs) {
    if (!first || start_with_relu) rep_->push_back(nn::ReLU());
    first = false;
    rep_->push_back(SeparableConv2d(ci, co, 3, 1, 1));
    rep_->push_back(nn::BatchNorm2d(co));
  }
  if (stride != 1) {
    rep_->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(stride).padding(1)));
  }
  register_module("rep", rep_);
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  torch::Tensor y = rep_->forward(x);
  if (skip_) return y + skipbn_->forward(skip_->forward(x));
  return y + x;
}

XceptionImpl::XceptionImpl(const XceptionOptions& options) : options_(options) {
  const double w = options.width;
  auto c = [w](int64_t ch) { return ScaledChannels(ch, w); };
  conv1_ = register_module(
      "conv1", nn::Conv2d(nn::Conv2dOptions(options.in_channels, c(32), 3).stride(2).bias(false)));
  bn1_ = register_module("bn1", nn::BatchNorm2d(c(32)));
  conv2_ = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(c(32), c(64), 3).bias(false)));
  bn2_ = register_module("bn2", nn::BatchNorm2d(c(64)));
  block1_ = register_module("block1", Block(c(64), c(128), 2, 2, false, true));
  block2_ = register_module("block2", Block(c(128), c(256), 2, 2, true, true));
  block3_ = register_module("block3", Block(c(256), c(728), 2, 2, true, true));
  middle_channels_ = c(728);
  for (int i = 0; i < options.middle_blocks; ++i) {
    middle_.push_back(
        register_module("block" + std::to_string(4 + i), Block(c(728), c(728), 3, 1, true, true)));
  }
  // The exit block keeps its published name whatever the middle flow's depth.
  block12_ = register_module("block12", Block(c(728), c(1024), 2, 2, true, false));
  conv3_ = register_module("conv3", SeparableConv2d(c(1024), c(1536), 3, 1, 1));
  bn3_ = register_module("bn3", nn::BatchNorm2d(c(1536)));
  conv4_ = register_module("conv4", SeparableConv2d(c(1536), c(2048), 3, 1, 1));
  bn4_ = register_module("bn4", nn::BatchNorm2d(c(2048)));
  feature_dim_ = c(2048);
  if (options.num_classes > 0) {
    dropout_ = register_module("dropout", nn::Dropout(options.dropout));
    last_linear_ = register_module("last_linear", nn::Linear(feature_dim_, options.num_classes));
  }
}

torch::Tensor XceptionImpl::Stem(const torch::Tensor& x) {
  torch::Tensor y = torch::relu(bn1_->forward(conv1_->forward(x)));
  return torch::relu(bn2_->forward(conv2_->forward(y)));
}

torch::Tensor XceptionImpl::Entry(const torch::Tensor& x) {
  return block3_->forward(block2_->forward(block1_->forward(x)));
}

torch::Tensor XceptionImpl::Exit(const torch::Tensor& x) {
  torch::Tensor y = block12_->forward(x);
  y = torch::relu(bn3_->forward(conv3_->forward(y)));
  return bn4_->forward(conv4_->forward(y));
}

torch::Tensor XceptionImpl::Features(const torch::Tensor& x) {
  torch::Tensor y = Entry(Stem(x));
  for (auto& b : middle_) y = b->forward(y);
  return Exit(y);
}

torch::Tensor XceptionImpl::Pool(const torch::Tensor& features) {
  return torch::relu(features).mean({2, 3});
}

torch::Tensor XceptionImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(last_linear_, "Xception built without a head (num_classes = 0)");
  return last_linear_->forward(dropout_->forward(Pool(Features(x))));
}

}  // namespace sd2::worker::baselines

#include "worker/baselines/spsl.h"

namespace sd2::worker::baselines {

torch::Tensor PhaseOnlyReconstruction(const torch::Tensor& images) {
  torch::Tensor gray = images.mean(1, /*keepdim=*/true);
  torch::Tensor spectrum = torch::fft::fftn(gray, c10::nullopt, std::vector<int64_t>{-1, -2});
  torch::Tensor phase = torch::angle(spectrum);
  torch::Tensor unit = torch::polar(torch::ones_like(phase), phase);
  return torch::real(torch::fft::ifftn(unit, c10::nullopt, std::vector<int64_t>{-1, -2}))
      .contiguous();
}

SpslImpl::SpslImpl(const SpslOptions& options) {
  XceptionOptions enc = options.encoder;
  enc.in_channels = 4;
  backbone_ = register_module("backbone", Xception(enc));
  InitPhaseChannelFromRgb();
}

void SpslImpl::InitPhaseChannelFromRgb() {
  torch::NoGradGuard no_grad;
  torch::Tensor w = backbone_->conv1()->weight;
  w.narrow(1, 3, 1).copy_(w.narrow(1, 0, 3).mean(1, /*keepdim=*/true));
}

torch::Tensor SpslImpl::forward(const torch::Tensor& images) {
  return backbone_->forward(torch::cat({images, PhaseOnlyReconstruction(images)}, 1));
}

}  // namespace sd2::worker::baselines

// SPSL (Liu et al., CVPR 2021, "Spatial-Phase Shallow Learning") as in DeepfakeBench: Xception
// on four channels, the RGB image plus the phase-only reconstruction of its grayscale version,
// real(ifft2(exp(i * angle(fft2(mean_c(x)))))). The first convolution's fourth input channel
// is initialised from the mean of its RGB filters (also after loading 3-channel weights).
//
//   SpslOptions opt; opt.encoder.width = 1.0 / 16;
//   Spsl net(opt);
//   torch::Tensor logits = net->forward(images);        // images (N, 3, H, W)
//   torch::Tensor phase = PhaseOnlyReconstruction(images);  // (N, 1, H, W)
#ifndef SD2_WORKER_BASELINES_SPSL_H_
#define SD2_WORKER_BASELINES_SPSL_H_

#include <torch/torch.h>

#include "worker/baselines/xception.h"

namespace sd2::worker::baselines {

// real(ifft2(exp(i * angle(fft2(gray))))) with gray = mean over channels; (N, 1, H, W).
torch::Tensor PhaseOnlyReconstruction(const torch::Tensor& images);

struct SpslOptions {
  XceptionOptions encoder;  // in_channels is forced to 4
};

class SpslImpl : public torch::nn::Module {
 public:
  explicit SpslImpl(const SpslOptions& options);
  torch::Tensor forward(const torch::Tensor& images);
  // conv1.weight[:, 3] = mean over conv1.weight[:, 0:3] (call after loading RGB weights).
  void InitPhaseChannelFromRgb();
  Xception& backbone() { return backbone_; }

 private:
  Xception backbone_{nullptr};
};
TORCH_MODULE(Spsl);

}  // namespace sd2::worker::baselines

#endif  // SD2_WORKER_BASELINES_SPSL_H_

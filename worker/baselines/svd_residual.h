// Effort's SVD residual adaptation (Yan et al., 2025, "Orthogonal Subspace Decomposition for
// Generalizable AI-Generated Image Detection"; the paper's CLIP-SVD baseline): every attention
// projection W = U S V^T of the CLIP image tower is split into a frozen principal part (all but
// the `rank` smallest singular directions) and a trainable residual U_r diag(S_r) V_r^T of the
// smallest ones. At the start principal + residual reproduces W (the principal part is stored
// as W minus the residual, computed in float64). Optional regularisers, off by default:
// orthogonality of [U_main U_r] and [V_main V_r], and keeping ||W||_F (Effort's two terms).
//
//   SvdResidual svd(vision_tower, /*rank=*/1, /*keep_bases=*/false);
//   svd->Apply();                        // before every forward: W = main + U_r S_r V_r
//   torch::Tensor y = vision_tower->Forward(pixels).pooled;
#ifndef SD2_WORKER_BASELINES_SVD_RESIDUAL_H_
#define SD2_WORKER_BASELINES_SVD_RESIDUAL_H_

#include <string>
#include <vector>

#include <torch/torch.h>

#include "worker/models/clip.h"

namespace sd2::worker::baselines {

class SvdResidualImpl : public torch::nn::Module {
 public:
  // Splits every q/k/v/out projection under `root` (weights are frozen there). `keep_bases`
  // stores the principal singular vectors (needed by the orthogonality term).
  SvdResidualImpl(torch::nn::Module& root, int64_t rank, bool keep_bases);
  // Points each projection's weight at main + U_r diag(S_r) V_r (differentiable in the factors).
  void Apply();
  // Mean over projections of 0.5 ||[U_m U_r]^T [U_m U_r] - I||_F + 0.5 (same for V).
  torch::Tensor OrthogonalLoss();
  // Mean over projections of | ||W||_F^2 - ||W_0||_F^2 |.
  torch::Tensor KeepSingularValueLoss();
  size_t size() const { return parts_.size(); }
  // Names of the split projections (relative to `root`).
  std::vector<std::string> names() const;

 private:
  struct Part {
    std::string name;
    models::LoraLinear linear{nullptr};
    torch::Tensor main, u, s, v, u_main, v_main;
    double norm0_sq = 0;
  };
  std::vector<Part> parts_;
};
TORCH_MODULE(SvdResidual);

}  // namespace sd2::worker::baselines

#endif  // SD2_WORKER_BASELINES_SVD_RESIDUAL_H_

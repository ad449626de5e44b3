// The three SD² losses (paper Sec. 4.2-4.4) and the differentiable gather of text embeddings.
//
// Default definitions (see docs/method.md):
//   tau = exp(logit_scale), cos = cosine similarity.
//   L_C = mean_i CE(tau * cos(f_i, u_c), y_i) over the five types       (lc_reduction "mean")
//   L_S = sum_{a,b} (cos(u_a, u_b) - I_ab)^2 over the 5x5 matrix         (ls_reduction "sum")
//   L_D = (1/B) sum_i sum_j [ -log sigmoid(z_ij (tau cos(f_i, vf_j) + b))
//                             -log sigmoid(z_ij (tau cos(f_i, ve_j) + b)) ]
//         i over the local batch, j over the gathered batch B_all, z_ij = +1 iff j = offset + i.
//   total = alpha * L_C + L_S + L_D
// Variants of Alg. 1: lc_reduction "sum" (Eq. 3), ls_reduction "mean" (Alg. 1), a separate
// SigLIP temperature (pass siglip_logit_scale != logit_scale). Ablations drop L_D terms.
//
//   LossOptions o;                       // alpha = 2
//   Sd2Losses l = ComputeSd2Losses(f, u, vf_all, ve_all, y, model->clip->logit_scale,
//                                  model->clip->logit_scale, model->bias, rank * B, o);
//   l.total.backward();
#ifndef SD2_WORKER_TRAIN_LOSSES_H_
#define SD2_WORKER_TRAIN_LOSSES_H_

#include <torch/torch.h>

#include <string>

#include "common/status.h"
#include "worker/comm/communicator.h"

namespace sd2::worker::train {

struct LossOptions {
  double alpha = 2.0;
  std::string lc_reduction = "mean";  // mean | sum
  std::string ls_reduction = "sum";   // sum | mean
  bool ld_face = true, ld_env = true;
};
Status ValidateLossOptions(const LossOptions& o);

struct Sd2Losses {
  torch::Tensor l_c, l_s, l_d, total;  // scalars
};

Sd2Losses ComputeSd2Losses(const torch::Tensor& f, const torch::Tensor& u, const torch::Tensor& vf,
                           const torch::Tensor& ve, const torch::Tensor& y,
                           const torch::Tensor& logit_scale,
                           const torch::Tensor& siglip_logit_scale, const torch::Tensor& bias,
                           int64_t offset, const LossOptions& o);

// All-gathers `local` [B, D] (same B on every rank) into [world*B, D]. Differentiable: the
// backward all-reduces the gathered gradient and returns this rank's block, so the gradient
// of every rank's loss reaches the local embeddings. Collective in forward and backward: every
// rank must call it and run backward in the same order. Communicator failures throw c10::Error
// in backward (the trainer turns them into a Status).
StatusOr<torch::Tensor> GatherWithGrad(const torch::Tensor& local, Communicator* comm);

}  // namespace sd2::worker::train

#endif  // SD2_WORKER_TRAIN_LOSSES_H_

// The SD² network (paper Sec. 4.1): a CLIP model with LoRA on both towers, the Cross-Layer
// Attention Module (CLAM) over the CLS token of every image layer, and the adapter (Eq. 1-2):
//   f_sat = MHA(f_cls) (H heads, W_Q/W_K/W_V/W_O with biases), f'_sat = mean over the L layers,
//   f = W_2 GELU(W_1 [f'_sat, f_final])   with f_final = CLIP's projected image embedding.
// With clam = false (ablation) the adapter takes f_final alone: f = W_2 GELU(W_1 f_final).
// The CLS tokens are the raw residual-stream outputs of each layer (no extra LayerNorm); H =
// the vision tower's head count; the adapter's hidden width = projection_dim (neither is
// stated by the paper). `bias` is SigLIP's b (initialised to -exp(logit_scale)); `siglip_scale`
// exists only for the "separate SigLIP temperature" variant.
//
//   Sd2Model m(cfg, Sd2ModelOptions(), lora_options);   // CLAM on, shared temperature
//   m->FreezeBackbone();                         // only LoRA, CLAM, adapter, tau, b train
//   torch::Tensor f = m->EncodeImage(pixels);    // [B, projection_dim]
//   torch::Tensor u = m->clip->EncodeText(ids, eot_id);
#ifndef SD2_WORKER_MODELS_SD2_MODEL_H_
#define SD2_WORKER_MODELS_SD2_MODEL_H_

#include <torch/torch.h>

#include "worker/models/clip.h"

namespace sd2::worker::models {

// Multi-head self-attention over a [B, L, D] sequence (Eq. 1).
class ClamImpl : public torch::nn::Module {
 public:
  ClamImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);  // [B, L, D] -> [B, L, D]
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(Clam);

// Linear -> GELU (erf) -> Linear (Eq. 2).
class AdapterImpl : public torch::nn::Module {
 public:
  AdapterImpl(int64_t in, int64_t hidden, int64_t out);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Adapter);

struct Sd2ModelOptions {
  bool clam = true;
  bool separate_siglip_temperature = false;
};

class Sd2ModelImpl : public torch::nn::Module {
 public:
  Sd2ModelImpl(const ClipConfig& cfg, const Sd2ModelOptions& o, const LoraOptions& lora);
  // Image feature f [B, projection_dim].
  torch::Tensor EncodeImage(const torch::Tensor& pixels);
  torch::Tensor EncodeText(const torch::Tensor& ids, int64_t eot_id) {
    return clip->EncodeText(ids, eot_id);
  }
  // requires_grad only on LoRA, CLAM, adapter, logit_scale, bias (and siglip_scale).
  void FreezeBackbone();
  std::vector<torch::Tensor> TrainableParameters();
  const Sd2ModelOptions& options() const { return options_; }

  ClipModel clip{nullptr};
  Clam clam{nullptr};  // null when options.clam is false
  Adapter adapter{nullptr};
  torch::Tensor bias, siglip_scale;

 private:
  Sd2ModelOptions options_;
};
TORCH_MODULE(Sd2Model);

}  // namespace sd2::worker::models

#endif  // SD2_WORKER_MODELS_SD2_MODEL_H_

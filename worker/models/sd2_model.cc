#include "worker/models/sd2_model.h"

#include <cmath>

namespace sd2::worker::models {

ClamImpl::ClamImpl(int64_t dim, int64_t heads) : heads_(heads) {
  q_proj = register_module("q_proj", torch::nn::Linear(dim, dim));
  k_proj = register_module("k_proj", torch::nn::Linear(dim, dim));
  v_proj = register_module("v_proj", torch::nn::Linear(dim, dim));
  out_proj = register_module("out_proj", torch::nn::Linear(dim, dim));
}

torch::Tensor ClamImpl::forward(const torch::Tensor& x) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2), hd = d / heads_;
  auto split = [&](const torch::Tensor& y) { return y.view({b, l, heads_, hd}).transpose(1, 2); };
  torch::Tensor q = split(q_proj(x)), k = split(k_proj(x)), v = split(v_proj(x));
  torch::Tensor a =
      torch::softmax(torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(hd)), -1);
  return out_proj(torch::matmul(a, v).transpose(1, 2).reshape({b, l, d}));
}

AdapterImpl::AdapterImpl(int64_t in, int64_t hidden, int64_t out) {
  fc1 = register_module("fc1", torch::nn::Linear(in, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, out));
}

torch::Tensor AdapterImpl::forward(const torch::Tensor& x) { return fc2(torch::gelu(fc1(x))); }

Sd2ModelImpl::Sd2ModelImpl(const ClipConfig& cfg, const Sd2ModelOptions& o, const LoraOptions& lora)
    : options_(o) {
  clip = register_module("clip", ClipModel(cfg));
  clip->EnableLora(lora);
  int64_t in = cfg.projection_dim;
  if (o.clam) {
    clam = register_module("clam", Clam(cfg.vision_width, cfg.vision_heads));
    in += cfg.vision_width;
  }
  adapter = register_module("adapter", Adapter(in, cfg.projection_dim, cfg.projection_dim));
  double tau = std::exp(cfg.logit_scale_init);
  bias = register_parameter("bias", torch::full({}, -tau));
  if (o.separate_siglip_temperature)
    siglip_scale = register_parameter("siglip_scale", torch::full({}, cfg.logit_scale_init));
}

torch::Tensor Sd2ModelImpl::EncodeImage(const torch::Tensor& pixels) {
  ClipVisionOutput v = clip->vision_model->Forward(pixels);
  torch::Tensor f_final = clip->visual_projection(v.pooled);
  if (!clam) return adapter(f_final);
  torch::Tensor f_cls = torch::stack(v.layer_cls, 1);  // [B, L, D]
  torch::Tensor f_sat = clam(f_cls).mean(1);           // GAP over the L layers
  return adapter(torch::cat({f_sat, f_final}, 1));
}

void Sd2ModelImpl::FreezeBackbone() {
  for (auto& p : named_parameters(true)) {
    const std::string& n = p.key();
    bool train = n.find("lora_") != std::string::npos || n.rfind("clam.", 0) == 0 ||
                 n.rfind("adapter.", 0) == 0 || n == "clip.logit_scale" || n == "bias" ||
                 n == "siglip_scale";
    p.value().set_requires_grad(train);
  }
}

std::vector<torch::Tensor> Sd2ModelImpl::TrainableParameters() {
  std::vector<torch::Tensor> out;
  for (auto& p : parameters(true))
    if (p.requires_grad()) out.push_back(p);
  return out;
}

}  // namespace sd2::worker::models

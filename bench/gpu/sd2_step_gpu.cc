// Self-contained SD² training-step benchmark for a GPU machine (issue 9, bench/gpu/run.sh). It
// needs only LibTorch (+ CUDA): the worker's libraries need SQLite, ZeroMQ, PCRE2 etc., which a
// bare GPU node lacks, so this file re-states the worker's network (worker/models/clip.h,
// sd2_model.h: HF CLIP towers, LoRA on q/k/v/out of both towers, CLAM, adapter), its three losses
// (worker/train/losses.h) and its AdamW (worker/train/trainer.cc) with the same parameter names.
// `--check FILE` writes weights + batch (torch::pickle_save) and the eval-mode first-step loss, so
// bench/reference/train_step_sd2.py --torch-weights FILE can prove the two compute the same thing.
//
//   sd2_step_gpu --config vit_l14 --device cuda --bf16 --sdpa --batch 0     # 0: largest that fits
//   sd2_step_gpu --config tiny --device cpu --steps 3 --check /tmp/w.pt      # CPU dry run + check
//   -> `config=vit_l14 batch=256 images_per_s=... seconds=... steps=N loss0=... sdpa=1 ...`
//
// Exit codes: 0 ok, 2 bad arguments, 1 anything else.
#include <torch/script.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#define SD2_HAVE_CUDA_ALLOCATOR 1
#endif

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#if TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 4)
#error "sd2_step_gpu needs LibTorch >= 2.4 (device-typed autocast, SDPA)"
#endif

namespace sd2_gpu {

struct Config {
  int64_t image = 224, patch = 14, vw = 1024, vl = 24, vh = 16, vm = 4096;
  int64_t tw = 768, tl = 12, th = 12, tm = 3072, ctx = 77, vocab = 49408, proj = 768;
};

bool NamedConfig(const std::string& n, Config* c) {
  *c = Config();
  if (n == "vit_l14") return true;
  if (n == "vit_b16") {
    c->patch = 16, c->vw = 768, c->vl = 12, c->vh = 12, c->vm = 3072;
    c->tw = 512, c->tl = 12, c->th = 8, c->tm = 2048, c->proj = 512;
    return true;
  }
  if (n == "tiny") {
    c->image = 32, c->patch = 8, c->vw = 64, c->vl = 3, c->vh = 4, c->vm = 128;
    c->tw = 64, c->tl = 2, c->th = 4, c->tm = 128, c->vocab = 1000, c->proj = 64;
    return true;
  }
  return false;
}

bool g_sdpa = false;  // fused attention (at::scaled_dot_product_attention, LibTorch >= 2.0)

struct LoraLinearImpl : torch::nn::Module {
  LoraLinearImpl(int64_t in, int64_t out, bool with_bias, int64_t r, double alpha, double drop)
      : scaling(r > 0 ? alpha / double(r) : 0), dropout(drop) {
    weight = register_parameter("weight", torch::randn({out, in}) * 0.02);
    if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
    if (r > 0) {
      lora_A = register_parameter("lora_A", torch::randn({r, in}) * 0.02);
      lora_B = register_parameter("lora_B", torch::randn({out, r}) * 0.02);
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor y = torch::nn::functional::linear(x, weight, bias);
    if (lora_A.defined()) {
      torch::Tensor h = dropout > 0 ? torch::dropout(x, dropout, is_training()) : x;
      y = y + torch::matmul(torch::matmul(h, lora_A.t()), lora_B.t()) * scaling;
    }
    return y;
  }
  torch::Tensor weight, bias, lora_A, lora_B;
  double scaling, dropout;
};
TORCH_MODULE(LoraLinear);

struct LayerImpl : torch::nn::Module {
  LayerImpl(int64_t w, int64_t heads, int64_t mlp) : heads(heads) {
    auto sa = register_module("self_attn", std::make_shared<torch::nn::Module>());
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"})
      proj.push_back(sa->register_module(n, LoraLinear(w, w, true, 8, 32, 0.1)));
    ln1 = register_module("layer_norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
    ln2 = register_module("layer_norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})));
    auto m = register_module("mlp", std::make_shared<torch::nn::Module>());
    fc1 = m->register_module("fc1", LoraLinear(w, mlp, true, 0, 0, 0));
    fc2 = m->register_module("fc2", LoraLinear(mlp, w, true, 0, 0, 0));
  }
  torch::Tensor Attn(const torch::Tensor& x, bool causal) {
    const int64_t b = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads;
    auto split = [&](const torch::Tensor& y) { return y.view({b, t, heads, hd}).transpose(1, 2); };
    torch::Tensor o;
    if (g_sdpa)
      o = at::scaled_dot_product_attention(split(proj[0](x)), split(proj[1](x)), split(proj[2](x)),
                                           {}, 0.0, causal);
    if (!o.defined()) {
      torch::Tensor s = torch::matmul(split(proj[0](x) * (1.0 / std::sqrt(double(hd)))),
                                      split(proj[1](x)).transpose(-1, -2));
      if (causal) s = s + torch::full({t, t}, -INFINITY, s.options()).triu(1);
      o = torch::matmul(torch::softmax(s, -1), split(proj[2](x)));
    }
    return proj[3](o.transpose(1, 2).reshape({b, t, d}));
  }
  torch::Tensor forward(const torch::Tensor& x, bool causal) {
    torch::Tensor h = x + Attn(ln1(x), causal);
    torch::Tensor m = fc1(ln2(h));
    return h + fc2(m * torch::sigmoid(1.702 * m));
  }
  int64_t heads;
  std::vector<LoraLinear> proj;
  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  LoraLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Layer);

// Registers `n` layers as "<owner>.encoder.layers.<i>" (the worker's / HF's names).
std::vector<Layer> MakeEncoder(torch::nn::Module& owner, int64_t n, int64_t w, int64_t heads,
                               int64_t mlp) {
  auto enc = owner.register_module("encoder", std::make_shared<torch::nn::Module>());
  auto list = enc->register_module("layers", torch::nn::ModuleList());
  std::vector<Layer> out;
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(Layer(w, heads, mlp));
    list->push_back(out.back());
  }
  return out;
}

struct Sd2Impl : torch::nn::Module {
  explicit Sd2Impl(const Config& c) : c(c) {
    auto clip = register_module("clip", std::make_shared<torch::nn::Module>());
    auto vm = clip->register_module("vision_model", std::make_shared<torch::nn::Module>());
    auto emb = vm->register_module("embeddings", std::make_shared<torch::nn::Module>());
    patch = emb->register_module(
        "patch_embedding",
        torch::nn::Conv2d(torch::nn::Conv2dOptions(3, c.vw, c.patch).stride(c.patch).bias(false)));
    cls = emb->register_parameter("class_embedding", torch::randn({c.vw}) * 0.02);
    const int64_t n = (c.image / c.patch) * (c.image / c.patch) + 1;
    auto pe = emb->register_module("position_embedding", std::make_shared<torch::nn::Module>());
    vpos = pe->register_parameter("weight", torch::randn({n, c.vw}) * 0.02);
    auto ln = [](int64_t w) { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({w})); };
    pre_ln = vm->register_module("pre_layrnorm", ln(c.vw));
    vision = MakeEncoder(*vm, c.vl, c.vw, c.vh, c.vm);
    post_ln = vm->register_module("post_layernorm", ln(c.vw));
    auto tm = clip->register_module("text_model", std::make_shared<torch::nn::Module>());
    auto temb = tm->register_module("embeddings", std::make_shared<torch::nn::Module>());
    auto te = temb->register_module("token_embedding", std::make_shared<torch::nn::Module>());
    tok = te->register_parameter("weight", torch::randn({c.vocab, c.tw}) * 0.02);
    auto tp = temb->register_module("position_embedding", std::make_shared<torch::nn::Module>());
    tpos = tp->register_parameter("weight", torch::randn({c.ctx, c.tw}) * 0.01);
    text = MakeEncoder(*tm, c.tl, c.tw, c.th, c.tm);
    final_ln = tm->register_module("final_layer_norm", ln(c.tw));
    vproj = clip->register_module("visual_projection", LoraLinear(c.vw, c.proj, false, 0, 0, 0));
    tproj = clip->register_module("text_projection", LoraLinear(c.tw, c.proj, false, 0, 0, 0));
    logit_scale = clip->register_parameter("logit_scale", torch::full({}, 2.6592));
    auto clam = register_module("clam", std::make_shared<torch::nn::Module>());
    for (const char* nm : {"q_proj", "k_proj", "v_proj", "out_proj"})
      clam_proj.push_back(clam->register_module(nm, torch::nn::Linear(c.vw, c.vw)));
    auto ad = register_module("adapter", std::make_shared<torch::nn::Module>());
    fc1 = ad->register_module("fc1", torch::nn::Linear(c.proj + c.vw, c.proj));
    fc2 = ad->register_module("fc2", torch::nn::Linear(c.proj, c.proj));
    bias = register_parameter("bias", torch::full({}, -std::exp(2.6592)));
    // SD2's FreezeBackbone: only LoRA, CLAM, adapter, tau and b train.
    for (auto& p : named_parameters(true)) {
      const std::string& k = p.key();
      p.value().set_requires_grad(k.find("lora_") != std::string::npos ||
                                  k.rfind("clam.", 0) == 0 || k.rfind("adapter.", 0) == 0 ||
                                  k == "clip.logit_scale" || k == "bias");
    }
  }
  torch::Tensor EncodeImage(const torch::Tensor& x) {
    torch::Tensor p = patch(x).flatten(2).transpose(1, 2);
    torch::Tensor h =
        torch::cat({cls.view({1, 1, -1}).expand({p.size(0), 1, p.size(2)}), p}, 1) + vpos;
    h = pre_ln(h);
    std::vector<torch::Tensor> layer_cls;
    for (auto& l : vision) {
      h = l->forward(h, false);
      layer_cls.push_back(h.select(1, 0));
    }
    torch::Tensor f_final = vproj(post_ln(layer_cls.back()));
    torch::Tensor f_cls = torch::stack(layer_cls, 1);  // [B, L, D]
    const int64_t b = f_cls.size(0), l = f_cls.size(1), d = f_cls.size(2), hd = d / c.vh;
    auto split = [&](const torch::Tensor& y) { return y.view({b, l, c.vh, hd}).transpose(1, 2); };
    torch::Tensor a = torch::softmax(
        torch::matmul(split(clam_proj[0](f_cls)), split(clam_proj[1](f_cls)).transpose(-1, -2)) /
            std::sqrt(double(hd)),
        -1);
    torch::Tensor sat =
        clam_proj[3](
            torch::matmul(a, split(clam_proj[2](f_cls))).transpose(1, 2).reshape({b, l, d}))
            .mean(1);
    return fc2(torch::gelu(fc1(torch::cat({sat, f_final}, 1))));
  }
  torch::Tensor EncodeText(const torch::Tensor& ids, int64_t eot) {
    torch::Tensor h = torch::embedding(tok, ids) + tpos.narrow(0, 0, ids.size(1));
    for (auto& l : text) h = l->forward(h, true);
    h = final_ln(h);
    torch::Tensor pos = ids.eq(eot).to(torch::kInt).argmax(1);
    return tproj(h.index({torch::arange(ids.size(0), ids.options()), pos}));
  }
  Config c;
  torch::nn::Conv2d patch{nullptr};
  torch::Tensor cls, vpos, tok, tpos, logit_scale, bias;
  torch::nn::LayerNorm pre_ln{nullptr}, post_ln{nullptr}, final_ln{nullptr};
  std::vector<Layer> vision, text;
  LoraLinear vproj{nullptr}, tproj{nullptr};
  std::vector<torch::nn::Linear> clam_proj;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Sd2);

torch::Tensor Normalize(const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); }

// alpha L_C + L_S + L_D, worker/train/losses.cc with its defaults (CE mean, L_S sum, shared tau).
torch::Tensor Loss(Sd2& m, const torch::Tensor& x, const torch::Tensor& y,
                   const torch::Tensor& labels, const torch::Tensor& desc, int64_t eot) {
  const int64_t b = x.size(0);
  torch::Tensor fn = Normalize(m->EncodeImage(x).to(torch::kFloat32));
  torch::Tensor un = Normalize(m->EncodeText(labels, eot).to(torch::kFloat32));
  torch::Tensor v = m->EncodeText(desc, eot).to(torch::kFloat32);
  torch::Tensor tau = m->logit_scale.exp();
  torch::Tensor logits = tau * torch::matmul(fn, un.t());
  torch::Tensor l_c = -torch::log_softmax(logits, 1).gather(1, y.view({-1, 1})).mean();
  torch::Tensor l_s =
      (torch::matmul(un, un.t()) - torch::eye(un.size(0), un.options())).pow(2).sum();
  torch::Tensor z = 2 * torch::eye(b, fn.options()) - 1;
  torch::Tensor l_d = torch::zeros({}, fn.options());
  for (const torch::Tensor& part : {v.narrow(0, 0, b), v.narrow(0, b, b)})
    l_d = l_d -
          torch::log_sigmoid(z * (tau * torch::matmul(fn, Normalize(part).t()) + m->bias)).sum() /
              double(b);
  return 2.0 * l_c + l_s + l_d;
}

// AdamW with the worker's formula (weight decay only on tensors with dim >= 2), as multi-tensor
// (_foreach) kernels: a few launches per step instead of ~6 per tensor.
struct AdamW {
  double lr = 5e-7, wd = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int64_t t = 0;
  std::vector<torch::Tensor> params, m, v;
  std::vector<torch::Tensor> decay;
  explicit AdamW(std::vector<torch::Tensor> p) : params(std::move(p)) {
    for (auto& q : params) {
      m.push_back(torch::zeros_like(q));
      v.push_back(torch::zeros_like(q));
      if (q.dim() >= 2) decay.push_back(q);
    }
  }
  void Step() {
    torch::NoGradGuard g;
    ++t;
    const double bc1 = 1 - std::pow(b1, double(t)), bc2 = 1 - std::pow(b2, double(t));
    std::vector<torch::Tensor> grads;
    for (auto& q : params) grads.push_back(q.grad().defined() ? q.grad() : torch::zeros_like(q));
    if (!decay.empty()) torch::_foreach_mul_(decay, 1 - lr * wd);
    torch::_foreach_mul_(m, b1);
    torch::_foreach_add_(m, grads, 1 - b1);
    torch::_foreach_mul_(v, b2);
    torch::_foreach_addcmul_(v, grads, grads, 1 - b2);
    std::vector<torch::Tensor> denom = torch::_foreach_sqrt(v);
    torch::_foreach_div_(denom, std::sqrt(bc2));
    torch::_foreach_add_(denom, eps);
    torch::_foreach_addcdiv_(params, m, denom, -lr / bc1);
  }
};

void SetAutocast(bool on) {
  at::autocast::set_autocast_enabled(at::kCUDA, on);
  if (on) at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  if (!on) at::autocast::clear_cache();
}

struct Args {
  std::string config = "vit_l14", device = "cuda", check;
  int64_t batch = 0, steps = 10, warmup = 3, max_batch = 2048;
  bool bf16 = false, sdpa = false, check_autocast = false;
};

struct Inputs {
  torch::Tensor x, y, labels, desc;
};

// Synthetic batch (same shapes as the Python reference's synthetic mode): images, types,
// 2B descriptions of 60 tokens, 5 labels of 20 tokens, each ending with EOT = vocab - 1.
Inputs MakeInputs(const Config& c, int64_t b, const torch::Device& dev) {
  auto gen = at::detail::createCPUGenerator(1);
  Inputs in;
  in.x = torch::randn({b, 3, c.image, c.image}, gen).to(dev);
  in.y = (torch::arange(b) % 5).to(dev);
  in.desc = torch::randint(1, c.vocab - 1, {2 * b, 60}, gen, torch::kInt64);
  in.desc.select(1, 59).fill_(c.vocab - 1);
  in.labels = torch::randint(1, c.vocab - 1, {5, 20}, gen, torch::kInt64);
  in.labels.select(1, 19).fill_(c.vocab - 1);
  in.desc = in.desc.to(dev);
  in.labels = in.labels.to(dev);
  return in;
}

void Sync(const torch::Device& dev) {
  if (dev.is_cuda()) torch::cuda::synchronize(dev.index() < 0 ? 0 : dev.index());
}

void TrainSteps(Sd2& m, AdamW& opt, const Inputs& in, int64_t n, bool bf16, int64_t eot,
                const torch::Device& dev) {
  for (int64_t s = 0; s < n; ++s) {
    for (auto& p : opt.params) p.mutable_grad() = torch::Tensor();
    SetAutocast(bf16);
    torch::Tensor loss = Loss(m, in.x, in.y, in.labels, in.desc, eot);
    SetAutocast(false);
    if (!std::isfinite(loss.item<double>()))
      throw std::runtime_error("loss is not finite at step " + std::to_string(s));
    loss.backward();
    opt.Step();
  }
  Sync(dev);
}

bool IsOom(const c10::Error& e) {
  return std::string(e.what()).find("out of memory") != std::string::npos;
}

void EmptyCache() {
#ifdef SD2_HAVE_CUDA_ALLOCATOR
  c10::cuda::CUDACachingAllocator::emptyCache();
#endif
}

int Run(const Args& a) {
  Config c;
  if (!NamedConfig(a.config, &c)) {
    std::fprintf(stderr, "sd2_step_gpu: unknown config '%s' (vit_l14, vit_b16, tiny)\n",
                 a.config.c_str());
    return 2;
  }
  torch::Device dev(a.device);
  if (dev.is_cuda() && !torch::cuda::is_available()) {
    std::fprintf(stderr, "sd2_step_gpu: --device %s but CUDA is not available\n", a.device.c_str());
    return 1;
  }
  g_sdpa = a.sdpa;
  torch::manual_seed(0);
  Sd2 m(c);
  m->to(dev);
  m->train();
  std::vector<torch::Tensor> trainable;
  for (auto& p : m->parameters(true))
    if (p.requires_grad()) trainable.push_back(p);
  const int64_t eot = c.vocab - 1;

  int64_t batch = a.batch;
  if (batch == 0) {  // largest power of two that trains (two steps) without running out of memory
    for (int64_t b = 8; b <= a.max_batch; b *= 2) {
      try {
        AdamW probe(trainable);
        TrainSteps(m, probe, MakeInputs(c, b, dev), 2, a.bf16, eot, dev);
        batch = b;
      } catch (const c10::Error& e) {
        SetAutocast(false);
        if (!IsOom(e)) throw;
        break;
      }
      for (auto& p : trainable) p.mutable_grad() = torch::Tensor();
      EmptyCache();
    }
    if (batch == 0) {
      std::fprintf(stderr, "sd2_step_gpu: not even a batch of 8 fits\n");
      return 1;
    }
    torch::manual_seed(0);  // fresh weights for the timed run (the probe stepped them)
    m = Sd2(c);
    m->to(dev);
    m->train();
    trainable.clear();
    for (auto& p : m->parameters(true))
      if (p.requires_grad()) trainable.push_back(p);
    EmptyCache();
  }
  Inputs in = MakeInputs(c, batch, dev);
  double loss0 = 0;
  {
    torch::NoGradGuard g;
    m->eval();
    loss0 = Loss(m, in.x, in.y, in.labels, in.desc, eot).item<double>();
    m->train();
  }
  if (!a.check.empty()) {
    c10::Dict<std::string, torch::Tensor> d;
    for (const auto& p : m->named_parameters(true)) d.insert(p.key(), p.value().detach().cpu());
    d.insert("x", in.x.cpu());
    d.insert("y", in.y.cpu());
    d.insert("desc_ids", in.desc.cpu());
    d.insert("label_ids/0", in.labels.cpu());
    std::vector<char> bytes = torch::pickle_save(d);
    std::ofstream(a.check, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  }
  if (a.check_autocast) {
    // bf16 autocast + fused attention against fp32 + explicit attention, same weights and batch
    // (eval mode), then two bf16 training steps that must stay finite and lower nothing to NaN.
    double fused_bf16 = 0;
    {
      torch::NoGradGuard g;
      m->eval();
      g_sdpa = true;
      SetAutocast(true);
      fused_bf16 = Loss(m, in.x, in.y, in.labels, in.desc, eot).item<double>();
      SetAutocast(false);
      g_sdpa = a.sdpa;
      m->train();
    }
    const double rel = std::abs(fused_bf16 - loss0) / std::max(1.0, std::abs(loss0));
    AdamW probe(trainable);
    TrainSteps(m, probe, in, 2, /*bf16=*/true, eot, dev);
    std::printf(
        "autocast_check fp32_loss=%.6f bf16_sdpa_loss=%.6f rel_diff=%.2e tolerance=5e-2 %s\n",
        loss0, fused_bf16, rel, rel <= 5e-2 ? "ok" : "FAILED");
    return rel <= 5e-2 ? 0 : 1;
  }
  AdamW opt(trainable);
  TrainSteps(m, opt, in, a.warmup, a.bf16, eot, dev);
  auto t0 = std::chrono::steady_clock::now();
  TrainSteps(m, opt, in, a.steps, a.bf16, eot, dev);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "config=%s batch=%lld images_per_s=%.3f seconds=%.4f steps=%lld loss0=%.8f sdpa=%d "
      "bf16=%d libtorch=%s\n",
      a.config.c_str(), static_cast<long long>(batch), double(a.steps * batch) / secs, secs,
      static_cast<long long>(a.steps), loss0, int(a.sdpa), int(a.bf16), TORCH_VERSION);
  return 0;
}

}  // namespace sd2_gpu

int main(int argc, char** argv) {
  sd2_gpu::Args a;
  const char* usage =
      "usage: sd2_step_gpu [--config vit_l14|vit_b16|tiny] [--device cuda|cpu] [--batch B (0: "
      "largest that fits)] [--steps N] [--warmup W] [--max-batch M] [--bf16] [--sdpa] "
      "[--check FILE] [--check-autocast]";
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f == "--bf16") {
      a.bf16 = true;
      continue;
    }
    if (f == "--sdpa") {
      a.sdpa = true;
      continue;
    }
    if (f == "--check-autocast") {
      a.check_autocast = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "sd2_step_gpu: %s needs a value\n%s\n", f.c_str(), usage);
      return 2;
    }
    std::string v = argv[++i];
    try {
      size_t used = 0;
      if (f == "--config") {
        a.config = v;
      } else if (f == "--device") {
        a.device = v;
      } else if (f == "--check") {
        a.check = v;
      } else if (f == "--batch" || f == "--steps" || f == "--warmup" || f == "--max-batch") {
        int64_t n = std::stoll(v, &used);
        if (used != v.size() || n < (f == "--batch" ? 0 : 1)) throw std::invalid_argument(v);
        (f == "--batch"    ? a.batch
         : f == "--steps"  ? a.steps
         : f == "--warmup" ? a.warmup
                           : a.max_batch) = n;
      } else {
        std::fprintf(stderr, "sd2_step_gpu: unknown flag '%s'\n%s\n", f.c_str(), usage);
        return 2;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "sd2_step_gpu: %s: bad value '%s'\n", f.c_str(), v.c_str());
      return 2;
    }
  }
  try {
    return sd2_gpu::Run(a);
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "sd2_step_gpu: libtorch: %s\n", e.what_without_backtrace());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sd2_step_gpu: %s\n", e.what());
  }
  return 1;
}

#include "worker/models/clip.h"

#include <atomic>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/bounded_parse.h"
#include "common/file_util.h"
#include "worker/models/export.h"
#include "worker/models/safetensors.h"
#include "worker/models/tokenizer.h"

namespace sd2::worker::models {
namespace {

torch::Tensor QuickGelu(const torch::Tensor& x) { return x * torch::sigmoid(1.702 * x); }

std::string Join(const std::vector<std::string>& v, size_t limit) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < limit; ++i) s += (i ? ", " : "") + v[i];
  if (v.size() > limit) s += ", ... (" + std::to_string(v.size()) + " in all)";
  return s;
}

}  // namespace

StatusOr<ClipConfig> NamedClipConfig(const std::string& name) {
  ClipConfig c;
  c.name = name;
  if (name == "vit_l14") return c;
  if (name == "vit_b16" || name == "vit_b32") {
    c.patch_size = name == "vit_b16" ? 16 : 32;
    c.vision_width = 768, c.vision_layers = 12, c.vision_heads = 12, c.vision_mlp = 3072;
    c.text_width = 512, c.text_layers = 12, c.text_heads = 8, c.text_mlp = 2048;
    c.projection_dim = 512;
    return c;
  }
  if (name == "tiny" || name == "tiny2") {
    bool one = name == "tiny2";
    c.image_size = 32, c.patch_size = 8;
    c.vision_width = 64, c.vision_layers = one ? 1 : 3, c.vision_heads = 4, c.vision_mlp = 128;
    c.text_width = 64, c.text_layers = one ? 1 : 2, c.text_heads = 4, c.text_mlp = 128;
    c.context_length = 77, c.vocab_size = 1000, c.projection_dim = 64;
    return c;
  }
  return InvalidArgumentError("unknown model config '" + name +
                              "' (known: vit_l14, vit_b16, vit_b32, tiny, tiny2)");
}

StatusOr<ClipConfig> ClipConfigFromHfJson(const std::string& json_text) {
  ClipConfig c;
  c.name = "hf";
  try {
    auto j = ParseJsonBoundedOrThrow(json_text);
    auto t = j.value("text_config", nlohmann::json::object());
    auto v = j.value("vision_config", nlohmann::json::object());
    c.text_width = t.value("hidden_size", 512);
    c.text_mlp = t.value("intermediate_size", 2048);
    c.text_heads = t.value("num_attention_heads", 8);
    c.text_layers = t.value("num_hidden_layers", 12);
    c.context_length = t.value("max_position_embeddings", 77);
    c.vocab_size = t.value("vocab_size", 49408);
    c.layer_norm_eps = t.value("layer_norm_eps", 1e-5);
    c.vision_width = v.value("hidden_size", 768);
    c.vision_mlp = v.value("intermediate_size", 3072);
    c.vision_heads = v.value("num_attention_heads", 12);
    c.vision_layers = v.value("num_hidden_layers", 12);
    c.image_size = v.value("image_size", 224);
    c.patch_size = v.value("patch_size", 32);
    c.projection_dim = j.value("projection_dim", 512);
    c.logit_scale_init = j.value("logit_scale_init_value", 2.6592);
    for (const auto* sub : {&t, &v}) {
      std::string act = sub->value("hidden_act", std::string("quick_gelu"));
      if (act != "quick_gelu")
        return InvalidArgumentError("config.json: hidden_act '" + act +
                                    "' is not supported (quick_gelu only)");
    }
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("config.json: ") + e.what());
  }
  if (c.vision_width % c.vision_heads || c.text_width % c.text_heads || c.image_size % c.patch_size)
    return InvalidArgumentError(
        "config.json: widths must divide by heads and image_size by patch_size");
  return c;
}

// ---------------------------------------------------------------------------------------------
LoraLinearImpl::LoraLinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    double bound = 1.0 / std::sqrt(double(in));
    bias = register_parameter("bias", torch::empty({out}).uniform_(-bound, bound));
  }
}

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
  torch::Tensor y =
      torch::nn::functional::linear(x, weight, bias.defined() ? bias : torch::Tensor());
  if (lora_A.defined()) {
    torch::Tensor h = dropout_ > 0 ? torch::dropout(x, dropout_, is_training()) : x;
    y = y + torch::matmul(torch::matmul(h, lora_A.t()), lora_B.t()) * scaling_;
  }
  return y;
}

void LoraLinearImpl::EnableLora(int r, double alpha, double dropout) {
  if (lora_A.defined() || r <= 0) return;
  lora_A = register_parameter("lora_A", torch::empty({r, weight.size(1)}, weight.options()));
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
  lora_B = register_parameter("lora_B", torch::zeros({weight.size(0), r}, weight.options()));
  scaling_ = alpha / r;
  dropout_ = dropout;
}

void LoraLinearImpl::MergeLora() {
  if (!lora_A.defined()) return;
  torch::NoGradGuard g;
  weight.add_(torch::matmul(lora_B, lora_A) * scaling_);
  // Keep the branch registered (checkpoints stay loadable) but make it a no-op.
  lora_B.zero_();
}

ClipAttentionImpl::ClipAttentionImpl(int64_t width, int64_t heads) : heads_(heads) {
  q_proj = register_module("q_proj", LoraLinear(width, width, true));
  k_proj = register_module("k_proj", LoraLinear(width, width, true));
  v_proj = register_module("v_proj", LoraLinear(width, width, true));
  out_proj = register_module("out_proj", LoraLinear(width, width, true));
}

namespace {
std::atomic<bool> g_fused_attention{true};
}  // namespace

void UseFusedAttention(bool on) { g_fused_attention.store(on); }
bool FusedAttentionEnabled() { return g_fused_attention.load(); }

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x, bool causal) {
  const int64_t b = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads_;
  auto split = [&](const torch::Tensor& y) { return y.view({b, t, heads_, hd}).transpose(1, 2); };
  torch::Tensor out;
  if (g_fused_attention.load()) {
    // Fused kernel (flash / memory-efficient on CUDA, a fused CPU kernel otherwise); the
    // default scale is CLIP's 1/sqrt(head_dim).
    out = at::scaled_dot_product_attention(split(q_proj(x)), split(k_proj(x)), split(v_proj(x)),
                                           /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                           /*is_causal=*/causal);
  } else {
    torch::Tensor q = split(q_proj(x) * (1.0 / std::sqrt(double(hd))));
    torch::Tensor k = split(k_proj(x)), v = split(v_proj(x));
    torch::Tensor scores = torch::matmul(q, k.transpose(-1, -2));
    if (causal)
      scores =
          scores +
          torch::full({t, t}, -std::numeric_limits<float>::infinity(), scores.options()).triu(1);
    out = torch::matmul(torch::softmax(scores, -1), v);
  }
  return out_proj(out.transpose(1, 2).reshape({b, t, d}));
}

ClipMlpImpl::ClipMlpImpl(int64_t width, int64_t hidden) {
  fc1 = register_module("fc1", LoraLinear(width, hidden, true));
  fc2 = register_module("fc2", LoraLinear(hidden, width, true));
}

torch::Tensor ClipMlpImpl::forward(const torch::Tensor& x) { return fc2(QuickGelu(fc1(x))); }

ClipEncoderLayerImpl::ClipEncoderLayerImpl(int64_t width, int64_t heads, int64_t mlp_dim,
                                           double eps) {
  self_attn = register_module("self_attn", ClipAttention(width, heads));
  layer_norm1 = register_module(
      "layer_norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  mlp = register_module("mlp", ClipMlp(width, mlp_dim));
  layer_norm2 = register_module(
      "layer_norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x, bool causal) {
  torch::Tensor h = x + self_attn(layer_norm1(x), causal);
  return h + mlp(layer_norm2(h));
}

ClipEncoderImpl::ClipEncoderImpl(int64_t width, int64_t n, int64_t heads, int64_t mlp, double eps) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < n; ++i) {
    blocks.push_back(ClipEncoderLayer(width, heads, mlp, eps));
    layers->push_back(blocks.back());
  }
}

std::vector<torch::Tensor> ClipEncoderImpl::forward(torch::Tensor x, bool causal) {
  std::vector<torch::Tensor> outs;
  for (auto& b : blocks) {
    x = b->forward(x, causal);
    outs.push_back(x);
  }
  return outs;
}

ClipVisionEmbeddingsImpl::ClipVisionEmbeddingsImpl(const ClipConfig& c) {
  patch_embedding = register_module(
      "patch_embedding", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, c.vision_width, c.patch_size)
                                               .stride(c.patch_size)
                                               .bias(false)));
  class_embedding = register_parameter("class_embedding", torch::randn({c.vision_width}) * 0.02);
  int64_t n = (c.image_size / c.patch_size) * (c.image_size / c.patch_size) + 1;
  position_embedding =
      register_module("position_embedding", torch::nn::Embedding(n, c.vision_width));
  torch::NoGradGuard g;
  position_embedding->weight.normal_(0, 0.02);
}

torch::Tensor ClipVisionEmbeddingsImpl::forward(const torch::Tensor& pixels) {
  torch::Tensor p = patch_embedding(pixels).flatten(2).transpose(1, 2);  // [B, N, W]
  torch::Tensor cls = class_embedding.view({1, 1, -1}).expand({p.size(0), 1, p.size(2)});
  torch::Tensor x = torch::cat({cls, p}, 1);
  TORCH_CHECK(x.size(1) == position_embedding->weight.size(0), "image size ", pixels.size(2), "x",
              pixels.size(3), " does not match the model's position embedding");
  return x + position_embedding->weight.unsqueeze(0);
}

ClipVisionTransformerImpl::ClipVisionTransformerImpl(const ClipConfig& c) {
  embeddings = register_module("embeddings", ClipVisionEmbeddings(c));
  auto ln = [&] {
    return torch::nn::LayerNorm(
        torch::nn::LayerNormOptions({c.vision_width}).eps(c.layer_norm_eps));
  };
  pre_layrnorm = register_module("pre_layrnorm", ln());
  encoder = register_module("encoder", ClipEncoder(c.vision_width, c.vision_layers, c.vision_heads,
                                                   c.vision_mlp, c.layer_norm_eps));
  post_layernorm = register_module("post_layernorm", ln());
}

ClipVisionOutput ClipVisionTransformerImpl::Forward(const torch::Tensor& pixels) {
  std::vector<torch::Tensor> hs = encoder(pre_layrnorm(embeddings(pixels)), /*causal=*/false);
  ClipVisionOutput out;
  for (auto& h : hs) out.layer_cls.push_back(h.select(1, 0));
  out.pooled = post_layernorm(out.layer_cls.back());
  return out;
}

ClipTextEmbeddingsImpl::ClipTextEmbeddingsImpl(const ClipConfig& c) {
  token_embedding =
      register_module("token_embedding", torch::nn::Embedding(c.vocab_size, c.text_width));
  position_embedding =
      register_module("position_embedding", torch::nn::Embedding(c.context_length, c.text_width));
  torch::NoGradGuard g;
  token_embedding->weight.normal_(0, 0.02);
  position_embedding->weight.normal_(0, 0.01);
}

torch::Tensor ClipTextEmbeddingsImpl::forward(const torch::Tensor& ids) {
  TORCH_CHECK(ids.size(1) <= position_embedding->weight.size(0), "text of ", ids.size(1),
              " tokens exceeds the context length ", position_embedding->weight.size(0));
  return token_embedding(ids) + position_embedding->weight.narrow(0, 0, ids.size(1)).unsqueeze(0);
}

ClipTextTransformerImpl::ClipTextTransformerImpl(const ClipConfig& c) {
  embeddings = register_module("embeddings", ClipTextEmbeddings(c));
  encoder = register_module("encoder", ClipEncoder(c.text_width, c.text_layers, c.text_heads,
                                                   c.text_mlp, c.layer_norm_eps));
  final_layer_norm = register_module(
      "final_layer_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.text_width}).eps(c.layer_norm_eps)));
}

torch::Tensor ClipTextTransformerImpl::Forward(const torch::Tensor& ids, int64_t eot_id) {
  const int64_t t = ids.size(1);
  torch::Tensor x = embeddings(ids);
  torch::Tensor h = final_layer_norm(encoder(x, /*causal=*/true).back());
  // First EOT per row: argmax over (ids == eot) picks the first maximum; rows without EOT use T-1.
  torch::Tensor is_eot = ids.eq(eot_id);
  torch::Tensor pos = torch::where(is_eot.any(1), is_eot.to(torch::kInt).argmax(1),
                                   torch::full({ids.size(0)}, t - 1, ids.options()));
  return h.index({torch::arange(ids.size(0), ids.options()), pos});
}

ClipModelImpl::ClipModelImpl(const ClipConfig& c) : config_(c) {
  vision_model = register_module("vision_model", ClipVisionTransformer(c));
  text_model = register_module("text_model", ClipTextTransformer(c));
  visual_projection =
      register_module("visual_projection", LoraLinear(c.vision_width, c.projection_dim, false));
  text_projection =
      register_module("text_projection", LoraLinear(c.text_width, c.projection_dim, false));
  logit_scale = register_parameter("logit_scale", torch::full({}, c.logit_scale_init));
}

torch::Tensor ClipModelImpl::EncodeImage(const torch::Tensor& pixels) {
  return visual_projection(vision_model->Forward(pixels).pooled);
}

torch::Tensor ClipModelImpl::EncodeText(const torch::Tensor& ids, int64_t eot_id) {
  return text_projection(text_model->Forward(ids, eot_id));
}

void EnableLoraIn(torch::nn::Module& root, const LoraOptions& o) {
  for (const auto& item : root.named_modules()) {
    auto* lin = dynamic_cast<LoraLinearImpl*>(item.value().get());
    if (!lin) continue;
    std::string name = item.key();
    std::string leaf = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
    if (o.targets.count(leaf)) lin->EnableLora(o.r, o.alpha, o.dropout);
  }
}

void ClipModelImpl::EnableLora(const LoraOptions& o) {
  if (o.vision) EnableLoraIn(*vision_model, o);
  if (o.text) EnableLoraIn(*text_model, o);
}

void ClipModelImpl::MergeLora() {
  for (const auto& m : modules())
    if (auto* lin = dynamic_cast<LoraLinearImpl*>(m.get())) lin->MergeLora();
}

// ---------------------------------------------------------------------------------------------
Status LoadNamedTensors(torch::nn::Module& module,
                        const std::map<std::string, torch::Tensor>& tensors,
                        const std::vector<std::string>& optional_substrings,
                        const std::vector<std::string>& ignored_substrings, bool strict,
                        const std::string& what) {
  auto contains_any = [](const std::string& s, const std::vector<std::string>& subs) {
    for (const auto& p : subs)
      if (s.find(p) != std::string::npos) return true;
    return false;
  };
  LoadReport rep;
  std::map<std::string, torch::Tensor> ours;
  for (const auto& p : module.named_parameters(true)) ours[p.key()] = p.value();
  for (const auto& b : module.named_buffers(true)) ours[b.key()] = b.value();
  for (const auto& [name, t] : tensors) {
    auto it = ours.find(name);
    if (it == ours.end()) {
      if (!contains_any(name, ignored_substrings)) rep.unexpected.push_back(name);
      continue;
    }
    if (it->second.sizes() != t.sizes()) {
      std::ostringstream os;
      os << name << " (file " << t.sizes() << ", model " << it->second.sizes() << ")";
      rep.misshaped.push_back(os.str());
    }
  }
  for (const auto& [name, p] : ours)
    if (!tensors.count(name) && !contains_any(name, optional_substrings))
      rep.missing.push_back(name);
  if (!rep.misshaped.empty() || (strict && (!rep.missing.empty() || !rep.unexpected.empty()))) {
    std::string msg = what + ": tensors do not match the model.";
    if (!rep.missing.empty()) msg += " Missing: " + Join(rep.missing, 20) + ".";
    if (!rep.unexpected.empty()) msg += " Unexpected: " + Join(rep.unexpected, 20) + ".";
    if (!rep.misshaped.empty()) msg += " Mis-shaped: " + Join(rep.misshaped, 20) + ".";
    return InvalidArgumentError(msg);
  }
  torch::NoGradGuard g;
  for (const auto& [name, t] : tensors) {
    auto it = ours.find(name);
    if (it != ours.end()) it->second.copy_(t.to(it->second.dtype()));
  }
  return OkStatus();
}

StatusOr<std::map<std::string, torch::Tensor>> ReadTensors(const std::string& path) {
  SD2_ASSIGN_OR_RETURN(SafetensorsFile f, ReadSafetensors(path));
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : f.tensors) {
    if (t.dtype == Dtype::kI64 || t.dtype == Dtype::kI32) {
      std::vector<int64_t> v = t.ToInt64();
      out[name] =
          torch::from_blob(v.data(), {int64_t(v.size())}, torch::kInt64).clone().view(t.shape);
    } else if (t.dtype == Dtype::kU8) {
      out[name] = torch::from_blob(const_cast<char*>(t.data.data()), {int64_t(t.data.size())},
                                   torch::kUInt8)
                      .clone()
                      .view(t.shape);
    } else {
      std::vector<float> v = t.ToFloat();
      out[name] =
          torch::from_blob(v.data(), {int64_t(v.size())}, torch::kFloat32).clone().view(t.shape);
    }
  }
  return out;
}

Status WriteTensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                    const std::map<std::string, std::string>& metadata) {
  SafetensorsFile f;
  f.metadata = metadata;
  for (const auto& [name, t0] : tensors) {
    torch::Tensor t = t0.detach().to(torch::kCPU).contiguous();
    Dtype d;
    if (t.scalar_type() == torch::kFloat32)
      d = Dtype::kF32;
    else if (t.scalar_type() == torch::kInt64)
      d = Dtype::kI64;
    else if (t.scalar_type() == torch::kUInt8)
      d = Dtype::kU8;
    else if (t.scalar_type() == torch::kFloat64)
      d = Dtype::kF64;
    else {
      t = t.to(torch::kFloat32);
      d = Dtype::kF32;
    }
    f.Add(name, d, t.sizes().vec(), t.data_ptr());
  }
  return WriteSafetensors(path, f);
}

StatusOr<ClipModel> LoadHfClip(const std::string& dir) {
  SD2_ASSIGN_OR_RETURN(std::string cfg_text, ReadFile(dir + "/config.json"));
  SD2_ASSIGN_OR_RETURN(ClipConfig cfg, ClipConfigFromHfJson(cfg_text));
  SD2_ASSIGN_OR_RETURN(auto tensors, ReadTensors(dir + "/model.safetensors"));
  ClipModel model(cfg);
  SD2_RETURN_IF_ERROR(LoadNamedTensors(*model, tensors, {"lora_"}, {"position_ids"}, true,
                                       dir + "/model.safetensors"));
  return model;
}

}  // namespace sd2::worker::models

namespace sd2::worker::models {

std::string ClipConfigToHfJson(const ClipConfig& c) {
  nlohmann::json j = {{"architectures", {"CLIPModel"}},
                      {"model_type", "clip"},
                      {"projection_dim", c.projection_dim},
                      {"logit_scale_init_value", c.logit_scale_init},
                      {"text_config",
                       {{"hidden_size", c.text_width},
                        {"intermediate_size", c.text_mlp},
                        {"num_attention_heads", c.text_heads},
                        {"num_hidden_layers", c.text_layers},
                        {"max_position_embeddings", c.context_length},
                        {"vocab_size", c.vocab_size},
                        {"layer_norm_eps", c.layer_norm_eps},
                        {"hidden_act", "quick_gelu"},
                        {"projection_dim", c.projection_dim}}},
                      {"vision_config",
                       {{"hidden_size", c.vision_width},
                        {"intermediate_size", c.vision_mlp},
                        {"num_attention_heads", c.vision_heads},
                        {"num_hidden_layers", c.vision_layers},
                        {"image_size", c.image_size},
                        {"patch_size", c.patch_size},
                        {"num_channels", 3},
                        {"layer_norm_eps", c.layer_norm_eps},
                        {"hidden_act", "quick_gelu"},
                        {"projection_dim", c.projection_dim}}}};
  return j.dump(2) + "\n";
}

Status SaveHfClip(ClipModel& model, const std::string& dir) {
  SD2_RETURN_IF_ERROR(MakeDirs(dir));
  std::map<std::string, torch::Tensor> tensors;
  {
    torch::NoGradGuard g;
    // Merge LoRA branches into a copy so the caller's model is untouched.
    std::map<std::string, torch::Tensor> lora;
    for (const auto& p : model->named_parameters(true)) {
      const std::string& name = p.key();
      if (name.find("lora_") != std::string::npos) {
        lora[name] = p.value();
        continue;
      }
      tensors[name] = p.value().detach().to(torch::kCPU, torch::kFloat32).clone();
    }
    for (const auto& item : model->named_modules()) {
      auto* lin = dynamic_cast<LoraLinearImpl*>(item.value().get());
      if (lin == nullptr || !lin->lora_A.defined()) continue;
      const std::string w = item.key() + ".weight";
      tensors[w] += torch::matmul(lin->lora_B, lin->lora_A).to(torch::kCPU) * lin->scaling();
    }
  }
  SD2_RETURN_IF_ERROR(WriteFileAtomic(dir + "/config.json", ClipConfigToHfJson(model->config())));
  return WriteTensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
}

Status ExportClipFromCheckpoint(const std::string& checkpoint, const ClipConfig& c,
                                const std::string& dir, int* imported) {
  SD2_ASSIGN_OR_RETURN(auto tensors, ReadTensors(checkpoint));
  torch::manual_seed(0);  // the tensors the checkpoint lacks are the same on every export
  ClipModel model(c);
  std::map<std::string, torch::Tensor> params;
  for (const auto& p : model->named_parameters(true)) params[p.key()] = p.value();
  int n = 0;
  torch::NoGradGuard g;
  for (const auto& [name, t] : tensors) {
    for (const char* prefix : {"param/", "param/clip.", "", "clip.", "model."}) {
      const std::string pre(prefix);
      if (name.compare(0, pre.size(), pre) != 0) continue;
      const std::string key = name.substr(pre.size());
      if (key.find("lora_") != std::string::npos && params.count(key) == 0 &&
          (key.rfind("vision_model.", 0) == 0 || key.rfind("text_model.", 0) == 0)) {
        return InvalidArgumentError(
            checkpoint + ": '" + name +
            "' is a LoRA factor: the checkpoint holds only the trained branches, not the base "
            "weights; export a trial that trains the whole tower (clip, sd2 with backbone=full)");
      }
      auto it = params.find(key);
      if (it == params.end()) continue;
      if (it->second.sizes() != t.sizes()) {
        std::ostringstream os;
        os << checkpoint << ": '" << name << "' has shape " << t.sizes() << ", the model's '" << key
           << "' " << it->second.sizes() << " (wrong model config?)";
        return InvalidArgumentError(os.str());
      }
      it->second.copy_(t.to(it->second.dtype()));
      ++n;
      break;
    }
  }
  if (n == 0)
    return NotFoundError(checkpoint +
                         ": no tensor names a CLIP parameter (vision_model.*, "
                         "text_model.*, ...)");
  if (imported != nullptr) *imported = n;
  return SaveHfClip(model, dir);
}

}  // namespace sd2::worker::models

namespace sd2::worker::models {

StatusOr<std::string> ExportClip(const ExportClipOptions& o) {
  if (o.checkpoint.empty() || o.model.empty() || o.out.empty())
    return InvalidArgumentError("export-clip needs a checkpoint, a model and an output folder");
  ClipConfig c;
  if (PathExists(o.model + "/config.json")) {
    SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(o.model + "/config.json"));
    SD2_ASSIGN_OR_RETURN(c, ClipConfigFromHfJson(text));
  } else {
    SD2_ASSIGN_OR_RETURN(c, NamedClipConfig(o.model));
  }
  if (!o.tokenizer.empty()) {
    SD2_ASSIGN_OR_RETURN(Tokenizer tok, Tokenizer::FromHfDir(o.tokenizer));
    c.vocab_size = tok.vocab_size();
  }
  int imported = 0;
  SD2_RETURN_IF_ERROR(ExportClipFromCheckpoint(o.checkpoint, c, o.out, &imported));
  if (!o.tokenizer.empty()) {
    for (const char* f : {"/vocab.json", "/merges.txt"}) {
      SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(o.tokenizer + f));
      SD2_RETURN_IF_ERROR(WriteFileAtomic(o.out + f, text));
    }
  }
  ClipModel probe(c);
  const size_t total = probe->named_parameters(true).size();
  return "wrote " + o.out + ": " + std::to_string(imported) + " of " + std::to_string(total) +
         " tensors from " + o.checkpoint + " (the rest freshly initialised)";
}

}  // namespace sd2::worker::models

// CLIP image and text towers with the architecture of Hugging Face `CLIPModel` (pre-LayerNorm
// blocks, quick-GELU, causal text mask, end-of-text pooling, bias-free projections, logit
// scale), LoRA-capable linear layers, named configs and Hugging Face / safetensors loading.
// Parameter names equal Hugging Face's ("vision_model.encoder.layers.3.self_attn.q_proj.weight"),
// LoRA adds "<linear>.lora_A" / "<linear>.lora_B".
//
// Text pooling: the hidden state at the first <|endoftext|> of each row. With OpenAI's and our
// learned vocabularies EOT has the largest id, so this equals OpenAI's / old HF configs' argmax
// of ids; new HF configs (eos_token_id = 2 bug aside) pool at eos_token_id, also the first EOT.
//
//   SD2_ASSIGN_OR_RETURN(ClipConfig cfg, NamedClipConfig("tiny"));
//   ClipModel clip(cfg);
//   clip->EnableLora({.r = 8, .alpha = 32, .dropout = 0.1});     // q,k,v,out of both towers
//   ClipVisionOutput v = clip->vision_model->Forward(pixels);     // v.pooled, v.layer_cls
//   torch::Tensor img = clip->EncodeImage(pixels), txt = clip->EncodeText(ids, eot_id);
//   SD2_RETURN_IF_ERROR(LoadHfClip("/models/clip-vit-large-patch14", clip));
#ifndef SD2_WORKER_MODELS_CLIP_H_
#define SD2_WORKER_MODELS_CLIP_H_

#include <torch/torch.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::worker::models {

struct ClipConfig {
  std::string name;
  int image_size = 224, patch_size = 14;
  int vision_width = 1024, vision_layers = 24, vision_heads = 16, vision_mlp = 4096;
  int text_width = 768, text_layers = 12, text_heads = 12, text_mlp = 3072;
  int context_length = 77, vocab_size = 49408;
  int projection_dim = 768;
  double layer_norm_eps = 1e-5;
  double logit_scale_init = 2.6592;  // ln(1/0.07)
};

// "vit_l14" (openai/clip-vit-large-patch14), "vit_b16", "vit_b32", "tiny" (32 px, patch 8,
// width 64, 3 vision / 2 text layers, 4 heads), "tiny2" (one layer each, for the fastest tests).
// `vocab_size` of tiny configs is a default; the method sets it from the tokenizer.
StatusOr<ClipConfig> NamedClipConfig(const std::string& name);
// From a Hugging Face CLIP config.json (text_config / vision_config / projection_dim).
StatusOr<ClipConfig> ClipConfigFromHfJson(const std::string& json_text);

struct LoraOptions {
  int r = 8;
  double alpha = 32;
  double dropout = 0.1;
  std::set<std::string> targets = {"q_proj", "k_proj", "v_proj", "out_proj"};
  bool vision = true, text = true;
};

// A linear layer y = x W^T + b with an optional LoRA branch (dropout(x) A^T B^T * alpha/r).
class LoraLinearImpl : public torch::nn::Module {
 public:
  LoraLinearImpl(int64_t in, int64_t out, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  void EnableLora(int r, double alpha, double dropout);
  // Folds B A * alpha/r into W and removes the branch (inference).
  void MergeLora();
  bool has_lora() const { return lora_A.defined(); }
  double scaling() const { return scaling_; }
  torch::Tensor weight, bias, lora_A, lora_B;

 private:
  double scaling_ = 0, dropout_ = 0;
};
TORCH_MODULE(LoraLinear);

// Attention kernel of every CLIP block: at::scaled_dot_product_attention (default), or the
// explicit softmax(QK^T/sqrt(d) + mask) V path (tests compare the two; also a fallback).
void UseFusedAttention(bool on);
bool FusedAttentionEnabled();

class ClipAttentionImpl : public torch::nn::Module {
 public:
  ClipAttentionImpl(int64_t width, int64_t heads);
  // Self-attention; `causal` masks future positions (the text tower).
  torch::Tensor forward(const torch::Tensor& x, bool causal);
  LoraLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module {
 public:
  ClipMlpImpl(int64_t width, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& x);
  LoraLinear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ClipMlp);

class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  ClipEncoderLayerImpl(int64_t width, int64_t heads, int64_t mlp, double eps);
  torch::Tensor forward(const torch::Tensor& x, bool causal);
  ClipAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

class ClipEncoderImpl : public torch::nn::Module {
 public:
  ClipEncoderImpl(int64_t width, int64_t layers, int64_t heads, int64_t mlp, double eps);
  // Returns the output of every layer (size = layers).
  std::vector<torch::Tensor> forward(torch::Tensor x, bool causal);
  std::vector<ClipEncoderLayer> blocks;
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(ClipEncoder);

struct ClipVisionOutput {
  torch::Tensor pooled;                  // post_layernorm(CLS of the last layer) [B, width]
  std::vector<torch::Tensor> layer_cls;  // CLS token after each layer [B, width], L entries
};

class ClipVisionEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipVisionEmbeddingsImpl(const ClipConfig& c);
  torch::Tensor forward(const torch::Tensor& pixels);
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::Tensor class_embedding;
  torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipVisionEmbeddings);

// The image tower (HF CLIPVisionTransformer). Baselines put a head on `pooled` or on the
// projected embedding (ClipModel::EncodeImage).
class ClipVisionTransformerImpl : public torch::nn::Module {
 public:
  explicit ClipVisionTransformerImpl(const ClipConfig& c);
  ClipVisionOutput Forward(const torch::Tensor& pixels);
  ClipVisionEmbeddings embeddings{nullptr};
  torch::nn::LayerNorm pre_layrnorm{nullptr}, post_layernorm{nullptr};  // HF's spelling
  ClipEncoder encoder{nullptr};
};
TORCH_MODULE(ClipVisionTransformer);

class ClipTextEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipTextEmbeddingsImpl(const ClipConfig& c);
  torch::Tensor forward(const torch::Tensor& ids);
  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
};
TORCH_MODULE(ClipTextEmbeddings);

class ClipTextTransformerImpl : public torch::nn::Module {
 public:
  explicit ClipTextTransformerImpl(const ClipConfig& c);
  // ids [B, T] int64 (T <= context_length); pooled at the first `eot_id` of each row (the last
  // position when a row has none). Returns [B, text_width].
  torch::Tensor Forward(const torch::Tensor& ids, int64_t eot_id);
  ClipTextEmbeddings embeddings{nullptr};
  ClipEncoder encoder{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};
};
TORCH_MODULE(ClipTextTransformer);

class ClipModelImpl : public torch::nn::Module {
 public:
  explicit ClipModelImpl(const ClipConfig& c);
  const ClipConfig& config() const { return config_; }
  torch::Tensor EncodeImage(const torch::Tensor& pixels);  // [B, projection_dim]
  torch::Tensor EncodeText(const torch::Tensor& ids, int64_t eot_id);
  // Adds LoRA to the target linears of the chosen towers; freezes nothing.
  void EnableLora(const LoraOptions& o);
  void MergeLora();
  ClipVisionTransformer vision_model{nullptr};
  ClipTextTransformer text_model{nullptr};
  LoraLinear visual_projection{nullptr}, text_projection{nullptr};
  torch::Tensor logit_scale;

 private:
  ClipConfig config_;
};
TORCH_MODULE(ClipModel);

// Adds LoRA to every LoraLinear under `root` whose own name is in o.targets.
void EnableLoraIn(torch::nn::Module& root, const LoraOptions& o);

// Copies tensors into the module's parameters/buffers by name (float32, reshaped check).
// Names in `ignore_missing_prefixes`-matching params may be absent. Fails listing every
// missing, unexpected and mis-shaped tensor (up to 20 each) in one message.
struct LoadReport {
  std::vector<std::string> missing, unexpected, misshaped;
};
Status LoadNamedTensors(torch::nn::Module& module,
                        const std::map<std::string, torch::Tensor>& tensors,
                        const std::vector<std::string>& optional_substrings,
                        const std::vector<std::string>& ignored_substrings, bool strict,
                        const std::string& what);
// Reads a safetensors file into float32 (or int64 for integer dtypes) torch tensors.
StatusOr<std::map<std::string, torch::Tensor>> ReadTensors(const std::string& path);
// Writes float32/int64/uint8 CPU tensors (made contiguous) atomically.
Status WriteTensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                    const std::map<std::string, std::string>& metadata = {});

// Loads a Hugging Face CLIP folder (config.json + model.safetensors) into a new ClipModel.
StatusOr<ClipModel> LoadHfClip(const std::string& dir);

// The Hugging Face config.json of `c` (CLIPModel, quick_gelu), read back by
// ClipConfigFromHfJson.
std::string ClipConfigToHfJson(const ClipConfig& c);
// Writes `model` as a Hugging Face CLIP folder that LoadHfClip (and transformers' CLIPModel)
// reads: dir/config.json and dir/model.safetensors (LoRA branches are merged into a copy
// first, so no lora_* tensor is written). Creates `dir`; replaces the two files atomically.
Status SaveHfClip(ClipModel& model, const std::string& dir);
// Makes a Hugging Face CLIP folder from a trained trial's checkpoint: the model of config `c`
// (fresh weights) gets every tensor of `checkpoint` whose name, after dropping one of the
// prefixes "param/" (the trainer's checkpoints), "param/clip.", "", "clip.", "model.", names
// one of its parameters (LoRA branches merged; a
// checkpoint of `clip`, `clip_lora`, `clip_svd` or `sd2` holds the image tower, sd2 also the
// text tower). NotFound when no tensor matches; InvalidArgument on a shape mismatch.
// `imported` receives how many model tensors came from the checkpoint.
Status ExportClipFromCheckpoint(const std::string& checkpoint, const ClipConfig& c,
                                const std::string& dir, int* imported = nullptr);

}  // namespace sd2::worker::models

#endif  // SD2_WORKER_MODELS_CLIP_H_

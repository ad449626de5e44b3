#include "worker/baselines/baselines.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "common/bounded_parse.h"
#include "common/file_util.h"
#include "worker/baselines/recce.h"
#include "worker/baselines/register.h"
#include "worker/baselines/spsl.h"
#include "worker/baselines/svd_residual.h"
#include "worker/baselines/xception.h"
#include "worker/data/augment.h"
#include "worker/models/clip.h"
#include "worker/models/safetensors.h"
#include "worker/models/sd2_model.h"
#include "worker/models/tokenizer.h"
#include "worker/train/trial_data.h"

namespace sd2::worker::baselines {
namespace {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using json = nlohmann::json;

template <typename T>
T Hp(const json& hp, const char* key, T dflt) {
  if (!hp.is_object() || !hp.contains(key) || hp[key].is_null()) return dflt;
  return hp[key].get<T>();
}

// Xception sizes by model name: "tiny" (width 1/16, 2 middle blocks), "small" (1/4, 4),
// anything else the published network; hparams width / middle_blocks override.
XceptionOptions XceptionFor(const json& config) {
  const std::string model = config.value("model", std::string());
  const json hp = config.value("hparams", json::object());
  XceptionOptions o;
  if (model == "tiny") {
    o.width = 1.0 / 16;
    o.middle_blocks = 2;
  } else if (model == "small") {
    o.width = 0.25;
    o.middle_blocks = 4;
  }
  o.width = Hp<double>(hp, "width", o.width);
  o.middle_blocks = Hp<int>(hp, "middle_blocks", o.middle_blocks);
  return o;
}

// CLIP config by model name (default vit_l14), or from hparams.pretrained (HF folder).
StatusOr<models::ClipModel> ClipFor(const json& config, int* image_size) {
  const json hp = config.value("hparams", json::object());
  const std::string pretrained = Hp<std::string>(hp, "pretrained", "");
  if (!pretrained.empty()) {
    SD2_ASSIGN_OR_RETURN(models::ClipModel clip, models::LoadHfClip(pretrained));
    *image_size = Hp<int>(hp, "image_size", clip->config().image_size);
    return clip;
  }
  std::string name = config.value("model", std::string());
  if (name.empty()) name = "vit_l14";
  SD2_ASSIGN_OR_RETURN(models::ClipConfig cfg, models::NamedClipConfig(name));
  cfg.image_size = Hp<int>(hp, "image_size", cfg.image_size);
  *image_size = cfg.image_size;
  return models::ClipModel(cfg);
}

void Freeze(torch::nn::Module& m) {
  for (auto& p : m.parameters()) p.set_requires_grad(false);
}

bool IsBatchNormStat(const std::string& name) {
  auto ends = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends("running_mean") || ends("running_var");
}

// A CLIP image tower with a linear head on the pooled output: clip, clip_lora, clip_svd, univfd.
StatusOr<std::unique_ptr<Detector>> BuildClipDetector(const std::string& method,
                                                      const json& config) {
  const json hp = config.value("hparams", json::object());
  auto det = std::make_unique<Detector>();
  det->norm = data::Normalization::kClip;
  SD2_ASSIGN_OR_RETURN(models::ClipModel clip, ClipFor(config, &det->image_size));
  models::ClipVisionTransformer tower = clip->vision_model;
  const int64_t width = tower->post_layernorm->weight.size(0);
  det->root = std::make_shared<torch::nn::Module>("ClipDetector");
  det->root->register_module("vision_model", tower);
  auto head = det->root->register_module("head", torch::nn::Linear(width, 2));
  if (method == "clip_lora") {
    models::LoraOptions lo;
    lo.r = Hp<int>(hp, "lora_r", 8);
    lo.alpha = Hp<double>(hp, "lora_alpha", 32.0);
    lo.dropout = Hp<double>(hp, "lora_dropout", 0.1);
    if (lo.r < 1) return InvalidArgumentError("clip_lora: lora_r must be >= 1");
    for (auto& p : tower->parameters()) p.set_requires_grad(false);
    models::EnableLoraIn(*tower, lo);
    det->variant = {{"lora_r", lo.r}, {"lora_alpha", lo.alpha}, {"lora_dropout", lo.dropout}};
  } else if (method == "clip_svd") {
    const int64_t rank = Hp<int64_t>(hp, "svd_rank", 1);
    const double orth = Hp<double>(hp, "svd_orthogonal_weight", 0.0);
    const double keep = Hp<double>(hp, "svd_keep_sv_weight", 0.0);
    if (rank < 1 || rank >= width) {
      return InvalidArgumentError("clip_svd: svd_rank must be in [1, " + std::to_string(width) +
                                  "), got " + std::to_string(rank));
    }
    if (orth < 0 || keep < 0) return InvalidArgumentError("clip_svd: loss weights must be >= 0");
    Freeze(*tower);
    SvdResidual svd(*tower, rank, orth > 0);
    det->root->register_module("svd", svd);
    det->before_forward = [svd]() mutable { svd->Apply(); };
    det->variant = {
        {"svd_rank", rank}, {"svd_orthogonal_weight", orth}, {"svd_keep_sv_weight", keep}};
    if (orth > 0 || keep > 0) {
      det->loss = [det_ptr = det.get(), svd, orth, keep](const torch::Tensor& x,
                                                         const torch::Tensor& y,
                                                         std::map<std::string, double>* m) mutable {
        torch::Tensor ce = F::cross_entropy(det_ptr->logits(x), y);
        (*m)["loss_ce"] = ce.item<double>();
        torch::Tensor total = ce;
        if (orth > 0) {
          torch::Tensor o = svd->OrthogonalLoss();
          (*m)["loss_orthogonal"] = o.item<double>();
          total = total + orth * o;
        }
        if (keep > 0) {
          torch::Tensor k = svd->KeepSingularValueLoss();
          (*m)["loss_keep_sv"] = k.item<double>();
          total = total + keep * k;
        }
        return total;
      };
    }
  } else if (method == "univfd") {
    Freeze(*tower);
    det->variant = {{"encoder", Hp<std::string>(hp, "pretrained", "").empty()
                                    ? "random-init (no hparams.pretrained)"
                                    : "pretrained"}};
  } else if (method != "clip") {
    return InvalidArgumentError("unknown CLIP baseline '" + method + "'");
  }
  det->features = [tower](const torch::Tensor& x) mutable { return tower->Forward(x).pooled; };
  det->logits = [det_ptr = det.get(), head](const torch::Tensor& x) mutable {
    return head->forward(det_ptr->features(x));
  };
  return det;
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> Detector::TrainableParameters() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : root->named_parameters(true)) {
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  }
  for (auto& b : root->named_buffers(true)) {
    if (IsBatchNormStat(b.key())) out.emplace_back("buffer/" + b.key(), b.value());
  }
  return out;
}

StatusOr<train::StepOutput> Detector::Loss(const train::TorchBatch& batch, int64_t /*step*/) {
  if (before_forward) before_forward();
  train::StepOutput out;
  torch::Tensor total;
  if (loss) {
    total = loss(batch.pixels, batch.label, &out.metrics);
  } else {
    total = F::cross_entropy(logits(batch.pixels), batch.label);
  }
  out.metrics["loss"] = total.item<double>();
  out.loss = total;
  return out;
}

StatusOr<torch::Tensor> Detector::Score(const train::TorchBatch& batch) {
  if (before_forward) before_forward();
  return torch::softmax(logits(batch.pixels).to(torch::kFloat32), 1).select(1, 1);
}

StatusOr<std::unique_ptr<Detector>> BuildDetector(const std::string& method, const json& config) {
  try {
    const json hp = config.value("hparams", json::object());
    torch::manual_seed(config.value("seed", uint64_t(0)));
    const std::string optimizer = Hp<std::string>(hp, "optimizer", "adam");
    std::unique_ptr<Detector> det;
    if (method == "xception" || method == "recce" || method == "spsl") {
      det = std::make_unique<Detector>();
      det->norm = data::Normalization::kHalf;
      det->image_size = Hp<int>(hp, "image_size", 256);
      XceptionOptions xo = XceptionFor(config);
      if (xo.width <= 0 || xo.middle_blocks < 0) {
        return InvalidArgumentError(method + ": width must be > 0 and middle_blocks >= 0");
      }
      if (method == "xception") {
        Xception net(xo);
        det->root = net.ptr();
        det->logits = [net](const torch::Tensor& x) mutable { return net->forward(x); };
      } else if (method == "spsl") {
        SpslOptions so;
        so.encoder = xo;
        Spsl net(so);
        det->root = net.ptr();
        det->logits = [net](const torch::Tensor& x) mutable { return net->forward(x); };
      } else {
        if (xo.middle_blocks < 2) {
          return InvalidArgumentError("recce: needs at least 2 middle blocks, got " +
                                      std::to_string(xo.middle_blocks));
        }
        RecceOptions ro;
        ro.encoder = xo;
        Recce net(ro);
        RecceLossOptions lo;
        const json var = config.value("variant", json::object());
        lo.recons = Hp<bool>(hp, "recce_recons", var.value("recce_recons", false));
        lo.metric = Hp<bool>(hp, "recce_metric", var.value("recce_metric", false));
        det->root = net.ptr();
        det->variant = {{"recce_recons", lo.recons}, {"recce_metric", lo.metric}};
        det->logits = [net](const torch::Tensor& x) mutable { return net->Forward(x).logits; };
        det->loss = [net, lo](const torch::Tensor& x, const torch::Tensor& y,
                              std::map<std::string, double>* m) mutable {
          std::vector<std::pair<std::string, double>> parts;
          torch::Tensor l = RecceLoss(net->Forward(x), x, y, lo, &parts);
          for (const auto& [k, v] : parts) (*m)[k] = v;
          return l;
        };
      }
      const std::string pretrained = Hp<std::string>(hp, "pretrained", "");
      if (!pretrained.empty()) {
        SD2_ASSIGN_OR_RETURN(auto tensors, models::ReadTensors(pretrained));
        torch::nn::Module* target = det->root.get();
        std::map<std::string, torch::Tensor> renamed;
        // The ImageNet checkpoint names the bare Xception; RECCE nests it as "encoder.", SPSL as
        // "backbone." (whose conv1 has a 4th channel, initialised from the RGB mean below).
        const std::string prefix =
            method == "recce" ? "encoder." : (method == "spsl" ? "backbone." : "");
        for (auto& [k, v] : tensors) {
          // The ImageNet head (1000-way) is never reused.
          if (k.rfind("last_linear.", 0) == 0 || k.rfind("fc.", 0) == 0) continue;
          if (method == "spsl" && k == "conv1.weight") {
            torch::Tensor w =
                det->root->named_parameters()["backbone.conv1.weight"].detach().clone();
            if (v.dim() != 4 || v.size(1) != 3 || v.size(0) != w.size(0)) {
              return InvalidArgumentError(pretrained + ": conv1.weight has shape " +
                                          c10::str(v.sizes()) + ", expected RGB filters");
            }
            w.narrow(1, 0, 3).copy_(v);
            renamed[prefix + k] = w;
            continue;
          }
          renamed[prefix + k] = v;
        }
        SD2_RETURN_IF_ERROR(models::LoadNamedTensors(
            *target, renamed, {"last_linear.", "fc.", "decoder", "reasoning", "attention"},
            {"num_batches_tracked"}, true, pretrained));
        if (method == "spsl")
          std::dynamic_pointer_cast<SpslImpl>(det->root)->InitPhaseChannelFromRgb();
      }
    } else if (method == "clip" || method == "clip_lora" || method == "clip_svd" ||
               method == "univfd") {
      SD2_ASSIGN_OR_RETURN(det, BuildClipDetector(method, config));
    } else {
      return InvalidArgumentError("unknown baseline method '" + method + "'");
    }
    det->method = method;
    if (optimizer == "adam") det->l2 = Hp<double>(hp, "weight_decay", 5e-4);
    det->variant["optimizer"] = optimizer == "adam" ? "adam (coupled L2 weight decay)" : optimizer;
    return det;
  } catch (const json::exception& e) {
    return InvalidArgumentError(method + ": bad trial config: " + e.what());
  } catch (const c10::Error& e) {
    return InvalidArgumentError(method + ": " + e.what_without_backtrace());
  }
}

StatusOr<std::string> NewestCheckpointIn(const std::string& dir) {
  std::string best;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("checkpoint-", 0) == 0 && name.size() > 12 &&
        name.compare(name.size() - 12, 12, ".safetensors") == 0 && e.path().string() > best) {
      best = e.path().string();
    }
  }
  if (ec) return NotFoundError("cannot list " + dir + ": " + ec.message());
  if (best.empty()) return NotFoundError("no checkpoint-*.safetensors in " + dir);
  return best;
}

Status LoadTrainedWeights(const std::string& checkpoint, train::TrainableModel& model) {
  SD2_ASSIGN_OR_RETURN(auto tensors, models::ReadTensors(checkpoint));
  torch::NoGradGuard g;
  for (auto& [name, p] : model.TrainableParameters()) {
    auto it = tensors.find("param/" + name);
    if (it == tensors.end()) return DataLossError(checkpoint + ": no tensor for " + name);
    if (it->second.sizes() != p.sizes()) {
      return DataLossError(checkpoint + ": shape mismatch for " + name);
    }
    p.copy_(it->second);
  }
  return OkStatus();
}

namespace {

// The frozen encoder of a probe: features of an SD² model or of a CLIP-family detector,
// rebuilt from the encoder trial's config and loaded from its newest checkpoint.
StatusOr<std::unique_ptr<Detector>> BuildProbe(const json& config, const std::string& work_dir) {
  const json probe = config.value("probe", json::object());
  const std::string of = probe.value("of", std::string());
  if (of.empty())
    return InvalidArgumentError("probe: config.probe.of (encoder trial key) is missing");
  const std::string enc_dir = (fs::path(work_dir).parent_path() / of).string();
  json enc_config;
  if (PathExists(enc_dir + "/trial_config.json")) {
    SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(enc_dir + "/trial_config.json"));
    enc_config = ParseJsonBoundedOrThrow(text);
  } else {
    enc_config = {{"method", probe.value("encoder_method", std::string())},
                  {"model", config.value("model", std::string())},
                  {"seed", config.value("seed", 0)},
                  {"hparams", json::object()}};
  }
  const std::string enc_method = enc_config.value("method", std::string());
  SD2_ASSIGN_OR_RETURN(std::string ckpt, NewestCheckpointIn(enc_dir));
  const json hp = config.value("hparams", json::object());
  auto det = std::make_unique<Detector>();
  det->method = "probe";
  det->norm = data::Normalization::kClip;
  det->root = std::make_shared<torch::nn::Module>("Probe");
  int64_t dim = 0;
  if (enc_method == "sd2") {
    const json ehp = enc_config.value("hparams", json::object());
    const json abl = enc_config.value("ablation", json::object());
    const std::string pretrained = Hp<std::string>(ehp, "pretrained", "");
    models::ClipConfig ccfg;
    if (!pretrained.empty()) {
      SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(pretrained + "/config.json"));
      SD2_ASSIGN_OR_RETURN(ccfg, models::ClipConfigFromHfJson(text));
    } else {
      std::string name = enc_config.value("model", std::string());
      SD2_ASSIGN_OR_RETURN(ccfg, models::NamedClipConfig(name.empty() ? "vit_l14" : name));
      // A learned vocabulary sets the text embedding's size (and the RNG draws before the
      // image tower): rebuild with the same one.
      if (PathExists(enc_dir + "/tokenizer/merges.txt")) {
        SD2_ASSIGN_OR_RETURN(auto tok, models::Tokenizer::FromHfDir(enc_dir + "/tokenizer"));
        ccfg.vocab_size = tok.vocab_size();
      }
    }
    ccfg.image_size = Hp<int>(ehp, "image_size", ccfg.image_size);
    models::LoraOptions lora;
    lora.r = Hp<int>(ehp, "lora_r", 8);
    lora.alpha = Hp<double>(ehp, "lora_alpha", 32.0);
    lora.dropout = Hp<double>(ehp, "lora_dropout", 0.1);
    models::Sd2ModelOptions mo;
    mo.clam = abl.value("clam", true);
    const json var = enc_config.value("variant", json::object());
    mo.separate_siglip_temperature =
        Hp<std::string>(ehp, "siglip_temperature",
                        var.value("siglip_temperature", std::string("shared"))) == "separate";
    torch::manual_seed(enc_config.value("seed", uint64_t(0)));
    models::Sd2Model model(ccfg, mo, lora);
    if (!pretrained.empty()) {
      SD2_ASSIGN_OR_RETURN(auto tensors, models::ReadTensors(pretrained + "/model.safetensors"));
      SD2_RETURN_IF_ERROR(models::LoadNamedTensors(*model->clip, tensors, {"lora_"},
                                                   {"position_ids"}, true, pretrained));
    }
    model->FreezeBackbone();
    SD2_ASSIGN_OR_RETURN(auto tensors, models::ReadTensors(ckpt));
    torch::NoGradGuard g;
    for (auto& p : model->named_parameters(true)) {
      if (!p.value().requires_grad()) continue;
      auto it = tensors.find("param/" + p.key());
      if (it == tensors.end()) return DataLossError(ckpt + ": no tensor for " + p.key());
      if (it->second.sizes() != p.value().sizes()) {
        return DataLossError(ckpt + ": shape mismatch for " + p.key());
      }
      p.value().copy_(it->second);
    }
    Freeze(*model);
    det->image_size = ccfg.image_size;
    dim = ccfg.projection_dim;
    det->root->register_module("encoder", model);
    det->features = [model](const torch::Tensor& x) mutable { return model->EncodeImage(x); };
  } else if (enc_method == "clip" || enc_method == "clip_lora" || enc_method == "clip_svd" ||
             enc_method == "univfd") {
    SD2_ASSIGN_OR_RETURN(std::unique_ptr<Detector> enc, BuildDetector(enc_method, enc_config));
    SD2_RETURN_IF_ERROR(LoadTrainedWeights(ckpt, *enc));
    Freeze(*enc->root);
    det->image_size = enc->image_size;
    det->before_forward = enc->before_forward;
    std::shared_ptr<Detector> shared(std::move(enc));
    dim = shared->root->named_parameters()["head.weight"].size(1);
    det->root->register_module("encoder", shared->root);
    det->features = [shared](const torch::Tensor& x) { return shared->features(x); };
  } else {
    return InvalidArgumentError("probe: cannot probe the encoder of method '" + enc_method +
                                "' (sd2, clip, clip_lora, clip_svd, univfd)");
  }
  auto head = det->root->register_module("head", torch::nn::Linear(dim, 2));
  det->logits = [det_ptr = det.get(), head](const torch::Tensor& x) mutable {
    torch::Tensor f;
    {
      torch::NoGradGuard g;
      det_ptr->root->children()[0]->eval();  // the frozen encoder never leaves eval mode
      f = det_ptr->features(x).detach();
    }
    return head->forward(f);
  };
  det->variant = {{"encoder_method", enc_method}, {"encoder_checkpoint", ckpt}};
  if (Hp<std::string>(hp, "optimizer", "adam") == "adam")
    det->l2 = Hp<double>(hp, "weight_decay", 0.0);
  return det;
}

}  // namespace

Status BaselineMethod::Run(TrialContext& ctx) {
  const json& cfg = ctx.config;
  Communicator* comm = ctx.comm;
  const int rank = comm->rank(), world = comm->size();
  try {
    const json hp = cfg.value("hparams", json::object());
    const uint64_t seed = cfg.value("seed", uint64_t(0));
    train::ConfigureCpuThreads(Hp<int>(hp, "threads", 0), world);
    if (rank == 0 && !ctx.work_dir.empty()) {
      SD2_RETURN_IF_ERROR(MakeDirs(ctx.work_dir));
      SD2_RETURN_IF_ERROR(WriteFileAtomic(ctx.work_dir + "/trial_config.json", cfg.dump(2)));
    }
    std::unique_ptr<Detector> det;
    if (name_ == "probe") {
      SD2_ASSIGN_OR_RETURN(det, BuildProbe(cfg, ctx.work_dir));
    } else {
      SD2_ASSIGN_OR_RETURN(det, BuildDetector(name_, cfg));
    }
    det->root->to(torch::Device(ctx.device));
    if (ctx.report_variant) ctx.report_variant(det->variant);

    train::TrainerOptions to;
    to.lr = Hp<double>(hp, "lr", 2e-4);
    const std::string optimizer = Hp<std::string>(hp, "optimizer", "adam");
    if (optimizer != "adam" && optimizer != "adamw") {
      return InvalidArgumentError(name_ + ": optimizer must be adam or adamw, got '" + optimizer +
                                  "'");
    }
    to.weight_decay = optimizer == "adamw" ? Hp<double>(hp, "weight_decay", 0.01) : 0.0;
    to.l2 = det->l2;  // adam: coupled L2, applied in the trainer's optimizer step
    to.epochs = Hp<int64_t>(hp, "epochs", 10);
    to.total_steps = Hp<int64_t>(hp, "steps", 0);
    to.checkpoint_every = Hp<int64_t>(hp, "checkpoint_every", 0);
    to.log_every = Hp<int64_t>(hp, "log_every", 10);
    to.seed = seed;
    to.device = ctx.device;
    to.work_dir = ctx.work_dir;
    const json data = cfg.value("data", json::object());
    data::LoaderOptions base;
    base.manifest = data.value("manifest", std::string());
    base.root = data.value("root", std::string());
    base.scale = cfg.value("scale", int64_t(0));
    // Scales above the matching records (the probe's small GenImage split, demo sets) train on
    // all of them, as sd2 does; the loader's num_samples() tells how many.
    base.clamp_scale = true;
    base.seed = seed;
    base.image_size = det->image_size;
    base.norm = det->norm;
    base.threads = Hp<int>(hp, "loader_threads", 2);
    SD2_ASSIGN_OR_RETURN(base.augment,
                         data::AugmentPreset(Hp<std::string>(hp, "augment", "default")));
    const json train_filter =
        name_ == "probe" && cfg.contains("probe") && cfg["probe"].contains("train")
            ? cfg["probe"]["train"]
            : data.value("train", json::object());

    train::Trainer trainer(to, det.get(), &ctx);
    return train::TrainThenEvaluate(trainer, base, train_filter, Hp<int64_t>(hp, "batch_size", 32),
                                    cfg.value("eval", json::array()),
                                    Hp<int>(hp, "eval_batch_size", 64), comm);
  } catch (const json::exception& e) {
    return InvalidArgumentError(name_ + ": bad trial config: " + e.what());
  } catch (const c10::Error& e) {
    return InternalError(name_ + ": " + e.what_without_backtrace());
  }
}

}  // namespace sd2::worker::baselines

namespace sd2::worker {

std::vector<std::string> BaselineMethodNames() {
  return {"xception", "recce", "spsl", "clip", "clip_lora", "clip_svd", "univfd", "probe"};
}

void RegisterBaselineMethods() {
  for (const std::string& name : BaselineMethodNames()) {
    MethodRegistry::Global().Register(
        name, [name]() { return std::make_unique<baselines::BaselineMethod>(name); });
  }
}

}  // namespace sd2::worker

#include "worker/train/sd2_method.h"

#include <algorithm>
#include <random>
#include <thread>

#include "common/file_util.h"
#include "worker/data/augment.h"
#include "worker/data/loader.h"
#ifdef SD2_HAVE_WORKER_DATA
#include "worker/data/manifest.h"
#include "worker/train/trial_data.h"
#endif

namespace sd2::worker::train {
namespace {

uint64_t StepSeed(uint64_t seed, int64_t step) {
  uint64_t x = seed * 0xD6E8FEB86659FD93ull + uint64_t(step) * 0x9E3779B97F4A7C15ull + 1;
  x ^= x >> 32;
  x *= 0xD6E8FEB86659FD93ull;
  x ^= x >> 32;
  return x;
}

template <typename T>
T Hp(const nlohmann::json& hp, const char* key, T dflt) {
  if (!hp.contains(key) || hp[key].is_null()) return dflt;
  return hp[key].get<T>();
}

}  // namespace

torch::Tensor PadTokenRows(const std::vector<const std::vector<int>*>& rows,
                           const torch::Device& device) {
  size_t t = 1;
  for (const auto* r : rows) t = std::max(t, r->size());
  torch::Tensor ids = torch::zeros({int64_t(rows.size()), int64_t(t)}, torch::kInt64);
  auto a = ids.accessor<int64_t, 2>();
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t k = 0; k < rows[i]->size(); ++k) a[int64_t(i)][int64_t(k)] = (*rows[i])[k];
  return ids.to(device);
}

torch::Tensor TokenizeBatch(const models::Tokenizer& tok, const std::vector<std::string>& texts,
                            int context, const torch::Device& device) {
  std::vector<std::vector<int>> rows;
  for (const auto& s : texts) rows.push_back(tok.EncodeWithContext(s, context));
  std::vector<const std::vector<int>*> ptrs;
  for (const auto& r : rows) ptrs.push_back(&r);
  return PadTokenRows(ptrs, device);
}

Sd2Trainable::Sd2Trainable(models::Sd2Model model, models::Tokenizer tokenizer, TypeLabels labels,
                           LossOptions loss, Communicator* comm, uint64_t seed)
    : model_(std::move(model)),
      tok_(std::move(tokenizer)),
      labels_(std::move(labels)),
      loss_(std::move(loss)),
      comm_(comm),
      seed_(seed) {
  for (size_t c = 0; c < 5; ++c)
    for (const auto& l : labels_[c])
      label_ids_[c].push_back(tok_.EncodeWithContext(l, kLabelTokens));
}

const std::vector<int>& Sd2Trainable::DescriptionIds(const std::string& text) {
  auto it = description_ids_.find(text);
  if (it != description_ids_.end()) return it->second;
  if (description_ids_.size() >= 200000) description_ids_.clear();  // bounded at large scales
  return description_ids_.emplace(text, tok_.EncodeWithContext(text, kDescriptionTokens))
      .first->second;
}

std::vector<std::pair<std::string, torch::Tensor>> Sd2Trainable::TrainableParameters() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : model_->named_parameters(true))
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  return out;
}

std::array<int, 5> Sd2Trainable::SampleLabels(int64_t step) const {
  std::mt19937_64 rng(StepSeed(seed_, step));
  std::array<int, 5> idx{};
  for (size_t c = 0; c < 5; ++c) idx[c] = int(rng() % labels_[c].size());
  return idx;
}

StatusOr<StepOutput> Sd2Trainable::Loss(const TorchBatch& batch, int64_t step) {
  const torch::Device dev = batch.pixels.device();
  const int64_t b = batch.pixels.size(0);
  std::array<int, 5> pick = SampleLabels(step);
  std::vector<const std::vector<int>*> label_rows;
  for (size_t c = 0; c < 5; ++c) label_rows.push_back(&label_ids_[c][size_t(pick[c])]);
  torch::Tensor f = model_->EncodeImage(batch.pixels);
  torch::Tensor u = model_->EncodeText(PadTokenRows(label_rows, dev), tok_.eot_id());
  torch::Tensor vf_all, ve_all;
  if (loss_.ld_face || loss_.ld_env) {
    if (!batch.meta || int64_t(batch.meta->face.size()) != b ||
        int64_t(batch.meta->env.size()) != b)
      return InvalidArgumentError("sd2: the batch lacks facial/environmental descriptions");
    std::vector<const std::vector<int>*> rows;
    for (const auto& t : batch.meta->face) rows.push_back(&DescriptionIds(t));
    for (const auto& t : batch.meta->env) rows.push_back(&DescriptionIds(t));
    torch::Tensor v = model_->EncodeText(PadTokenRows(rows, dev), tok_.eot_id());
    torch::Tensor local = torch::cat({v.narrow(0, 0, b), v.narrow(0, b, b)}, 1);  // [B, 2D]
    SD2_ASSIGN_OR_RETURN(torch::Tensor all, GatherWithGrad(local, comm_));
    const int64_t d = v.size(1);
    vf_all = all.narrow(1, 0, d);
    ve_all = all.narrow(1, d, d);
  }
  torch::Tensor ls = model_->clip->logit_scale;
  torch::Tensor ls_d = model_->siglip_scale.defined() ? model_->siglip_scale : ls;
  last_ = ComputeSd2Losses(f, u, vf_all, ve_all, batch.type_index, ls, ls_d, model_->bias,
                           int64_t(comm_->rank()) * b, loss_);
  StepOutput out;
  out.loss = last_.total;
  out.metrics = {{"loss", last_.total.item<double>()},
                 {"L_C", last_.l_c.item<double>()},
                 {"L_S", last_.l_s.item<double>()},
                 {"L_D", last_.l_d.item<double>()},
                 {"tau", ls.exp().item<double>()}};
  return out;
}

StatusOr<torch::Tensor> Sd2Trainable::Score(const TorchBatch& batch) {
  std::vector<const std::vector<int>*> simple;
  for (size_t c = 0; c < 5; ++c) simple.push_back(&label_ids_[c][0]);
  torch::Tensor u = model_->EncodeText(PadTokenRows(simple, batch.pixels.device()), tok_.eot_id());
  torch::Tensor f = model_->EncodeImage(batch.pixels).to(torch::kFloat32);
  auto norm = [](const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); };
  torch::Tensor logits =
      model_->clip->logit_scale.exp() * torch::matmul(norm(f), norm(u.to(torch::kFloat32)).t());
  return 1.0 - torch::softmax(logits, 1).select(1, 0);
}

// ---------------------------------------------------------------------------------------------
Status Sd2Method::Run(TrialContext& ctx) {
#ifndef SD2_HAVE_WORKER_DATA
  (void)ctx;
  return FailedPreconditionError("sd2: built without worker/data");
#else
  const nlohmann::json& cfg = ctx.config;
  Communicator* comm = ctx.comm;
  const int rank = comm->rank(), world = comm->size();
  try {
    const nlohmann::json hp = cfg.value("hparams", nlohmann::json::object());
    const nlohmann::json abl = cfg.value("ablation", nlohmann::json::object());
    const nlohmann::json var = cfg.value("variant", nlohmann::json::object());
    const uint64_t seed = cfg.value("seed", uint64_t(0));
    const int threads = ConfigureCpuThreads(Hp<int>(hp, "threads", 0), world);

    const data::ManifestReadOptions ro;

    // Model config and tokenizer.
    const std::string pretrained = Hp<std::string>(hp, "pretrained", "");
    models::ClipConfig ccfg;
    std::optional<models::Tokenizer> tok;
    if (!pretrained.empty()) {
      SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(pretrained + "/config.json"));
      SD2_ASSIGN_OR_RETURN(ccfg, models::ClipConfigFromHfJson(text));
      SD2_ASSIGN_OR_RETURN(tok, models::Tokenizer::FromHfDir(pretrained));
    } else {
      SD2_ASSIGN_OR_RETURN(ccfg,
                           models::NamedClipConfig(cfg.value("model", std::string("vit_l14"))));
      std::string vocab_dir = Hp<std::string>(hp, "vocab", "");
      if (vocab_dir.empty()) {
        // Learn a vocabulary from the training descriptions + type labels (rank 0, deterministic).
        vocab_dir = ctx.work_dir + "/tokenizer";
        if (rank == 0 && !PathExists(vocab_dir + "/merges.txt")) {
          const auto data = cfg.value("data", nlohmann::json::object());
          SD2_ASSIGN_OR_RETURN(auto recs,
                               data::ReadManifest(data.value("manifest", std::string()), ro));
          SD2_ASSIGN_OR_RETURN(data::Filter f,
                               data::FilterFromJson(data.value("train", nlohmann::json::object())));
          std::vector<std::string> texts;
          SD2_ASSIGN_OR_RETURN(TypeLabels labels, PaperTypeLabels());
          for (const auto& l : labels) texts.insert(texts.end(), l.begin(), l.end());
          for (const auto& r : recs) {
            if (texts.size() > 20000) break;
            if (!data::Matches(f, r)) continue;
            texts.push_back(r.face);
            texts.push_back(r.env);
          }
          SD2_ASSIGN_OR_RETURN(models::Tokenizer learned,
                               models::LearnBpe(texts, Hp<int>(hp, "vocab_size", 1000)));
          SD2_RETURN_IF_ERROR(learned.Save(vocab_dir));
        }
        SD2_RETURN_IF_ERROR(comm->Barrier());
      }
      SD2_ASSIGN_OR_RETURN(tok, models::Tokenizer::FromHfDir(vocab_dir));
      ccfg.vocab_size = tok->vocab_size();
    }
    ccfg.image_size = Hp<int>(hp, "image_size", ccfg.image_size);

    LossOptions lo;
    lo.alpha = Hp<double>(hp, "alpha", 2.0);
    lo.lc_reduction =
        Hp<std::string>(hp, "lc_reduction", var.value("lc_reduction", std::string("mean")));
    lo.ls_reduction =
        Hp<std::string>(hp, "ls_reduction", var.value("ls_reduction", std::string("sum")));
    lo.ld_face = abl.value("ld_face", true);
    lo.ld_env = abl.value("ld_env", true);
    SD2_RETURN_IF_ERROR(ValidateLossOptions(lo));
    std::string siglip_t = Hp<std::string>(hp, "siglip_temperature",
                                           var.value("siglip_temperature", std::string("shared")));
    if (siglip_t != "shared" && siglip_t != "separate")
      return InvalidArgumentError("siglip_temperature must be 'shared' or 'separate', got '" +
                                  siglip_t + "'");
    // A random-init backbone has nothing for LoRA to adapt: train the towers fully then.
    const std::string backbone =
        Hp<std::string>(hp, "backbone", pretrained.empty() ? "full" : "lora");
    if (backbone != "lora" && backbone != "full")
      return InvalidArgumentError("backbone must be 'lora' or 'full', got '" + backbone + "'");
    const std::string label_sampling = Hp<std::string>(hp, "label_sampling", "all");
    if (label_sampling != "all" && label_sampling != "simple")
      return InvalidArgumentError("label_sampling must be 'all' or 'simple', got '" +
                                  label_sampling + "'");
    if (ctx.report_variant)
      ctx.report_variant({{"backbone", backbone},
                          {"label_sampling", label_sampling},
                          {"lc_reduction", lo.lc_reduction},
                          {"ls_reduction", lo.ls_reduction},
                          {"siglip_temperature", siglip_t},
                          {"clam", abl.value("clam", true)},
                          {"ld_face", lo.ld_face},
                          {"ld_env", lo.ld_env},
                          {"text_pooling", "first_eot"}});

    models::LoraOptions lora;
    lora.r = Hp<int>(hp, "lora_r", 8);
    lora.alpha = Hp<double>(hp, "lora_alpha", 32.0);
    lora.dropout = Hp<double>(hp, "lora_dropout", 0.1);
    models::Sd2ModelOptions mo;
    mo.clam = abl.value("clam", true);
    mo.separate_siglip_temperature = siglip_t == "separate";
    torch::manual_seed(seed);  // identical initialisation on every rank
    models::Sd2Model model(ccfg, mo, lora);
    if (!pretrained.empty()) {
      SD2_ASSIGN_OR_RETURN(auto tensors, models::ReadTensors(pretrained + "/model.safetensors"));
      SD2_RETURN_IF_ERROR(models::LoadNamedTensors(*model->clip, tensors, {"lora_"},
                                                   {"position_ids"}, true,
                                                   pretrained + "/model.safetensors"));
      torch::NoGradGuard g;
      model->bias.fill_(-model->clip->logit_scale.exp().item<double>());
      if (model->siglip_scale.defined()) model->siglip_scale.copy_(model->clip->logit_scale);
    }
    model->FreezeBackbone();
    if (backbone == "full")
      for (auto& p : model->parameters(true)) p.set_requires_grad(true);
    model->to(torch::Device(ctx.device));
    SD2_ASSIGN_OR_RETURN(TypeLabels labels, PaperTypeLabels());
    if (label_sampling == "simple")
      for (auto& l : labels) l.resize(1);
    Sd2Trainable trainable(model, *tok, labels, lo, comm, seed);

    TrainerOptions to;
    to.lr = Hp<double>(hp, "lr", 5e-7);
    to.weight_decay = Hp<double>(hp, "weight_decay", 0.01);
    to.epochs = Hp<int64_t>(hp, "epochs", 4);
    to.total_steps = Hp<int64_t>(hp, "steps", 0);
    to.warmup = Hp<int64_t>(hp, "warmup", 0);
    to.schedule = Hp<std::string>(hp, "schedule", "constant");
    to.accumulation = Hp<int64_t>(hp, "accumulation", 1);
    to.checkpoint_every = Hp<int64_t>(hp, "checkpoint_every", 0);
    to.log_every = Hp<int64_t>(hp, "log_every", 10);
    to.seed = seed;
    to.device = ctx.device;
    to.work_dir = ctx.work_dir;
    const auto data = cfg.value("data", nlohmann::json::object());
    data::LoaderOptions base;
    base.manifest = data.value("manifest", std::string());
    base.root = data.value("root", std::string());
    base.scale = cfg.value("scale", int64_t(0));
    if (base.scale > 0) {
      // A scale above the matching records (small demo sets) trains on all of them; the
      // number actually used is recorded with the attempt.
      SD2_ASSIGN_OR_RETURN(auto recs, data::ReadManifest(base.manifest, ro));
      SD2_ASSIGN_OR_RETURN(data::Filter f,
                           data::FilterFromJson(data.value("train", nlohmann::json::object())));
      int64_t n = 0;
      for (const auto& r : recs) n += data::Matches(f, r) ? 1 : 0;
      if (n > 0 && base.scale > n) {
        if (ctx.report_variant) ctx.report_variant({{"scale_clamped_to", n}});
        base.scale = n;
      }
    }
    base.seed = seed;
    base.image_size = ccfg.image_size;
    base.norm = data::Normalization::kClip;
    base.threads = Hp<int>(hp, "loader_threads", std::min(threads, 2));
    SD2_ASSIGN_OR_RETURN(base.augment,
                         data::AugmentPreset(Hp<std::string>(hp, "augment", "default")));

    Trainer trainer(to, &trainable, &ctx);
    return TrainThenEvaluate(trainer, base, data.value("train", nlohmann::json::object()),
                             Hp<int64_t>(hp, "batch_size", 512),
                             cfg.value("eval", nlohmann::json::array()),
                             Hp<int>(hp, "eval_batch_size", 128), comm);
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgumentError(std::string("sd2: bad trial config: ") + e.what());
  } catch (const c10::Error& e) {
    return InternalError(std::string("sd2: ") + e.what_without_backtrace());
  }
#endif
}

}  // namespace sd2::worker::train

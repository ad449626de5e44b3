// Training-step benchmark of the C++ worker (issue 9): images per second of the worker's own
// train step (sd2::worker::train::Trainer: forward, the three SD² losses, backward, AdamW) on a
// fixed in-memory batch, and the inputs for the Python reference (bench/reference/
// train_step_sd2.py) so that both sides run the same network, weights, batch and optimizer.
//
//   train_step_bench sd2 --out DIR [--model tiny] [--batch 8] [--steps 20] [--warmup 3]
//                    [--threads 1] [--seed 0]
//   -> writes DIR/in.safetensors (weights, batch, token ids of every step, config, hparams) and
//      prints `loss0=<eval-mode loss of step 0> images_per_s=<...> seconds=<...> steps=<N>
//      batch=<B>` (timed: N optimizer steps after W warm-up steps).
//
// Exit codes: 0 ok, 2 bad arguments, 1 anything else (message on stderr).
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/status.h"
#include "worker/comm/mpi_communicator.h"
#include "worker/data/loader.h"
#include "worker/models/clip.h"
#include "worker/models/sd2_model.h"
#include "worker/models/tokenizer.h"
#include "worker/train/sd2_method.h"
#include "worker/train/text_labels.h"
#include "worker/train/trainer.h"

namespace sd2::bench {
namespace {

namespace wt = sd2::worker::train;
namespace wm = sd2::worker::models;
namespace wd = sd2::worker::data;

constexpr const char* kUsage =
    "usage: train_step_bench sd2 --out DIR [--model tiny] [--batch 8] [--steps 20] "
    "[--warmup 3] [--threads 1] [--seed 0]";

const char* const kFaces[] = {"a young woman with long brown hair smiling",
                              "an old man with a grey beard",
                              "a middle-aged person with glasses and a neutral expression",
                              "a child with short black hair laughing"};
const char* const kEnvs[] = {"a bright office with white walls", "a dark street at night",
                             "an outdoor park with green trees", "a studio with soft lighting"};

struct Args {
  std::string method, out, model = "tiny";
  int64_t batch = 8, steps = 20, warmup = 3, threads = 1;
  uint64_t seed = 0;
};

StatusOr<int64_t> ParseInt(const std::string& flag, const std::string& value, int64_t min) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty())
    return InvalidArgumentError(flag + ": '" + value + "' is not an integer");
  if (v < min) return InvalidArgumentError(flag + " must be >= " + std::to_string(min));
  return v;
}

StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args a;
  if (argc < 2) return InvalidArgumentError(kUsage);
  a.method = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) return InvalidArgumentError(flag + " needs a value\n" + kUsage);
    std::string v = argv[++i];
    if (flag == "--out") {
      a.out = v;
    } else if (flag == "--model") {
      a.model = v;
    } else if (flag == "--batch") {
      SD2_ASSIGN_OR_RETURN(a.batch, ParseInt(flag, v, 1));
    } else if (flag == "--steps") {
      SD2_ASSIGN_OR_RETURN(a.steps, ParseInt(flag, v, 1));
    } else if (flag == "--warmup") {
      SD2_ASSIGN_OR_RETURN(a.warmup, ParseInt(flag, v, 1));
    } else if (flag == "--threads") {
      SD2_ASSIGN_OR_RETURN(a.threads, ParseInt(flag, v, 1));
    } else if (flag == "--seed") {
      SD2_ASSIGN_OR_RETURN(int64_t s, ParseInt(flag, v, 0));
      a.seed = uint64_t(s);
    } else {
      return InvalidArgumentError("unknown flag '" + flag + "'\n" + kUsage);
    }
  }
  if (a.method != "sd2")
    return InvalidArgumentError("unknown method '" + a.method + "' (this driver has: sd2)");
  if (a.out.empty()) return InvalidArgumentError(std::string("--out is required\n") + kUsage);
  return a;
}

// Returns the same batch every time (the step benchmark measures the step, not the loader).
class RepeatLoader : public wd::Loader {
 public:
  explicit RepeatLoader(wd::Batch b) : batch_(std::move(b)) {}
  StatusOr<bool> Next(wd::Batch* b) override {
    *b = batch_;
    b->epoch = 0;
    b->index = index_++;
    return true;
  }
  int64_t batches_per_epoch() const override { return int64_t(1) << 40; }
  int64_t num_samples() const override { return batch_.size; }
  int64_t skipped() const override { return 0; }

 private:
  wd::Batch batch_;
  int64_t index_ = 0;
};

wd::Batch MakeBatch(int64_t b, int image_size, uint64_t seed) {
  wd::Batch batch;
  batch.size = b;
  batch.height = batch.width = image_size;
  batch.pixels.resize(size_t(b * 3 * image_size * image_size));
  std::mt19937_64 rng(seed * 7919 + 17);
  std::normal_distribution<float> noise(0, 1);
  for (float& p : batch.pixels) p = noise(rng);
  for (int64_t i = 0; i < b; ++i) {
    int type = int(i % 5);
    batch.type_index.push_back(type);
    batch.label.push_back(type != 0);
    batch.sample_id.push_back("s" + std::to_string(i));
    batch.video_id.push_back("v" + std::to_string(i));
    batch.type.push_back(wd::kTypeNames[type]);
    batch.face.push_back(kFaces[i % 4]);
    batch.env.push_back(kEnvs[(i / 4) % 4]);
    batch.dataset.push_back("synthetic");
  }
  return batch;
}

Status Run(const Args& a) {
  torch::set_num_threads(int(a.threads));
  SD2_ASSIGN_OR_RETURN(wt::TypeLabels labels, wt::PaperTypeLabels());
  std::vector<std::string> texts;
  for (const auto& l : labels) texts.insert(texts.end(), l.begin(), l.end());
  for (const char* f : kFaces) texts.push_back(f);
  for (const char* e : kEnvs) texts.push_back(e);
  SD2_ASSIGN_OR_RETURN(wm::Tokenizer tok, wm::LearnBpe(texts, 800));
  SD2_ASSIGN_OR_RETURN(wm::ClipConfig cfg, wm::NamedClipConfig(a.model));
  cfg.vocab_size = tok.vocab_size();
  wm::LoraOptions lora;  // r 8, alpha 32, dropout 0.1 (the method's defaults)
  wt::LossOptions loss_options;
  wt::TrainerOptions to;  // lr 5e-7, weight decay 0.01, AdamW betas/eps: the paper's / defaults
  to.total_steps = a.warmup + a.steps;
  to.log_every = 1;
  to.seed = a.seed;
  to.device = "cpu";

  torch::manual_seed(a.seed);
  wm::Sd2Model model(cfg, wm::Sd2ModelOptions(), lora);
  {
    // LoRA B starts at zero; perturb it so the first-step check covers the LoRA branch too.
    torch::NoGradGuard g;
    for (auto& p : model->named_parameters(true))
      if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0, 0.02);
  }
  model->FreezeBackbone();
  std::unique_ptr<worker::Communicator> comm = worker::MakeLocalCommunicator();
  wt::Sd2Trainable trainable(model, tok, labels, loss_options, comm.get(), a.seed);
  wd::Batch batch = MakeBatch(a.batch, cfg.image_size, a.seed);

  // Inputs of the Python reference.
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model->named_parameters(true)) out[p.key()] = p.value().detach();
  out["x"] = torch::from_blob(batch.pixels.data(), {a.batch, 3, cfg.image_size, cfg.image_size},
                              torch::kFloat32)
                 .clone();
  out["y"] = torch::tensor(std::vector<int64_t>(batch.type_index.begin(), batch.type_index.end()),
                           torch::kInt64);
  std::vector<std::string> desc = batch.face;
  desc.insert(desc.end(), batch.env.begin(), batch.env.end());
  out["desc_ids"] = wt::TokenizeBatch(tok, desc, wt::kDescriptionTokens, torch::kCPU);
  for (int64_t s = 0; s < to.total_steps; ++s) {
    std::array<int, 5> pick = trainable.SampleLabels(s);
    std::vector<std::string> lt;
    for (size_t c = 0; c < 5; ++c) lt.push_back(labels[c][size_t(pick[c])]);
    out["label_ids/" + std::to_string(s)] =
        wt::TokenizeBatch(tok, lt, wt::kLabelTokens, torch::kCPU);
  }
  nlohmann::json jc = {{"image_size", cfg.image_size},         {"patch_size", cfg.patch_size},
                       {"vision_width", cfg.vision_width},     {"vision_layers", cfg.vision_layers},
                       {"vision_heads", cfg.vision_heads},     {"vision_mlp", cfg.vision_mlp},
                       {"text_width", cfg.text_width},         {"text_layers", cfg.text_layers},
                       {"text_heads", cfg.text_heads},         {"text_mlp", cfg.text_mlp},
                       {"context_length", cfg.context_length}, {"vocab_size", cfg.vocab_size},
                       {"projection_dim", cfg.projection_dim}};
  nlohmann::json jh = {{"lr", to.lr},
                       {"weight_decay", to.weight_decay},
                       {"beta1", to.beta1},
                       {"beta2", to.beta2},
                       {"eps", to.eps},
                       {"alpha", loss_options.alpha},
                       {"lora_r", lora.r},
                       {"lora_alpha", lora.alpha},
                       {"lora_dropout", lora.dropout},
                       {"eot_id", tok.eot_id()}};
  SD2_RETURN_IF_ERROR(MakeDirs(a.out));
  SD2_RETURN_IF_ERROR(wm::WriteTensors(a.out + "/in.safetensors", out,
                                       {{"config", jc.dump()}, {"hparams", jh.dump()}}));

  // First-step loss in eval mode (no dropout): must equal the reference's.
  double loss0 = 0;
  {
    torch::NoGradGuard g;
    model->eval();
    wt::TorchBatch tb = wt::ToTorch(batch, torch::kCPU);
    SD2_ASSIGN_OR_RETURN(wt::StepOutput o, trainable.Loss(tb, 0));
    loss0 = o.loss.item<double>();
    model->train();
  }

  // The worker's training loop; step times come from its per-step metric reports.
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> step_end(size_t(to.total_steps + 1));
  std::vector<bool> seen(step_end.size(), false);
  worker::TrialContext ctx;
  ctx.comm = comm.get();
  ctx.device = "cpu";
  ctx.report_metric = [&](int64_t step, const std::string&, double) {
    if (step >= 0 && step < int64_t(seen.size()) && !seen[size_t(step)]) {
      seen[size_t(step)] = true;
      step_end[size_t(step)] = Clock::now();
    }
  };
  wt::Trainer trainer(to, &trainable, &ctx);
  SD2_RETURN_IF_ERROR(trainer.Train([&](int64_t, int64_t) -> StatusOr<std::unique_ptr<wd::Loader>> {
    return std::unique_ptr<wd::Loader>(new RepeatLoader(batch));
  }));
  if (!seen[size_t(a.warmup)] || !seen[size_t(to.total_steps)])
    return InternalError("the trainer did not report every step");
  double secs =
      std::chrono::duration<double>(step_end[size_t(to.total_steps)] - step_end[size_t(a.warmup)])
          .count();
  std::printf("loss0=%.8f images_per_s=%.3f seconds=%.4f steps=%lld batch=%lld\n", loss0,
              double(a.steps * a.batch) / secs, secs, static_cast<long long>(a.steps),
              static_cast<long long>(a.batch));
  return OkStatus();
}

}  // namespace
}  // namespace sd2::bench

int main(int argc, char** argv) {
  sd2::StatusOr<sd2::bench::Args> args = sd2::bench::ParseArgs(argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "train_step_bench: %s\n", args.status().message().c_str());
    return 2;
  }
  sd2::Status s;
  try {
    s = sd2::bench::Run(*args);
  } catch (const c10::Error& e) {
    s = sd2::InternalError(std::string("libtorch: ") + e.what_without_backtrace());
  }
  if (!s.ok()) {
    std::fprintf(stderr, "train_step_bench: %s\n", s.ToString().c_str());
    return sd2::ExitCodeFor(s);
  }
  return 0;
}

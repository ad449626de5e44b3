// Training-step benchmark of the C++ worker (issue 9): images per second of the worker's own
// train step (sd2::worker::train::Trainer: forward, the method's losses, backward, the trainer's
// optimizer step) on a fixed in-memory batch, and the inputs for the Python reference so that
// both sides run the same network, weights, batch and optimizer.
//
//   train_step_bench METHOD --out DIR [--model tiny] [--batch 8] [--steps 20] [--warmup 3]
//                    [--threads 1] [--seed 0] [--image-size 32] [--hparams JSON]
//
// METHOD `sd2`: the SD² model with the worker's Sd2Trainable (reference bench/reference/
// train_step_sd2.py). METHOD xception | recce | spsl | clip | clip_lora | clip_svd | univfd: the
// worker's detector from sd2::worker::baselines::BuildDetector (the sweep's default hparams for
// the method, `model`, `image_size` (baselines only; 32 px default) and the batch size set here,
// then --hparams merged over them, e.g. '{"weight_decay": 0}')
// trained by the Trainer with the options BaselineMethod::Run gives it: Adam with coupled L2
// (Detector::l2 as TrainerOptions::l2, in the optimizer step), clip_svd's before_forward (reference
// bench/reference/ train_step_baselines.py). CPU threads:
// sd2::worker::train::ConfigureCpuThreads(threads, 1), as the worker.
//
// Writes DIR/in.safetensors (weights, batch, config, hparams; for sd2 also the token ids of every
// step) and prints `loss0=<eval-mode loss before training> images_per_s=<...> seconds=<...>
// cpu_images_per_s=<...> cpu_seconds=<...> steps=<N> batch=<B> [loss_end=<eval-mode loss after
// training>]` (timed: N optimizer steps after W warm-up steps, between the trainer's step
// reports; wall clock, and this process's CPU time).
//
// Exit codes: 0 ok, 2 bad arguments, 1 anything else (message on stderr).
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/status.h"
#include "sweeps/sweep.h"
#include "worker/baselines/baselines.h"
#include "worker/comm/mpi_communicator.h"
#include "worker/data/loader.h"
#include "worker/models/clip.h"
#include "worker/models/sd2_model.h"
#include "worker/models/tokenizer.h"
#include "worker/train/sd2_method.h"
#include "worker/train/text_labels.h"
#include "worker/train/trainer.h"
#include "worker/train/trial_data.h"

namespace sd2::bench {
namespace {

namespace wt = sd2::worker::train;
namespace wm = sd2::worker::models;
namespace wd = sd2::worker::data;
namespace wb = sd2::worker::baselines;
using json = nlohmann::json;

constexpr const char* kUsage =
    "usage: train_step_bench sd2|xception|recce|spsl|clip|clip_lora|clip_svd|univfd --out DIR "
    "[--model tiny] [--batch 8] [--steps 20] [--warmup 3] [--threads 1] [--seed 0] "
    "[--image-size 32] [--hparams JSON]";

const char* const kBaselines[] = {"xception",  "recce",    "spsl",  "clip",
                                  "clip_lora", "clip_svd", "univfd"};

const char* const kFaces[] = {"a young woman with long brown hair smiling",
                              "an old man with a grey beard",
                              "a middle-aged person with glasses and a neutral expression",
                              "a child with short black hair laughing"};
const char* const kEnvs[] = {"a bright office with white walls", "a dark street at night",
                             "an outdoor park with green trees", "a studio with soft lighting"};

struct Args {
  std::string method, out, model = "tiny";
  int64_t batch = 8, steps = 20, warmup = 3, threads = 1, image_size = 32;
  uint64_t seed = 0;
  json hparams = json::object();  // baselines: merged over the sweep's defaults
};

bool IsBaseline(const std::string& m) {
  for (const char* b : kBaselines)
    if (m == b) return true;
  return false;
}

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
    } else if (flag == "--image-size") {
      SD2_ASSIGN_OR_RETURN(a.image_size, ParseInt(flag, v, 8));
    } else if (flag == "--hparams") {
      a.hparams = json::parse(v, nullptr, /*allow_exceptions=*/false);
      if (!a.hparams.is_object())
        return InvalidArgumentError("--hparams: '" + v + "' is not a JSON object");
    } else if (flag == "--seed") {
      SD2_ASSIGN_OR_RETURN(int64_t s, ParseInt(flag, v, 0));
      a.seed = uint64_t(s);
    } else {
      return InvalidArgumentError("unknown flag '" + flag + "'\n" + kUsage);
    }
  }
  if (a.method != "sd2" && !IsBaseline(a.method))
    return InvalidArgumentError("unknown method '" + a.method + "'\n" + kUsage);
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

// Pixels N(0, 1) for sd2 (as before), U(-1, 1) for the baselines (the normalised range that
// RECCE's training noise clips to). Types cycle 0..4, so both labels occur.
wd::Batch MakeBatch(int64_t b, int image_size, uint64_t seed, bool uniform) {
  wd::Batch batch;
  batch.size = b;
  batch.height = batch.width = image_size;
  batch.pixels.resize(size_t(b * 3 * image_size * image_size));
  std::mt19937_64 rng(seed * 7919 + 17);
  std::normal_distribution<float> noise(0, 1);
  std::uniform_real_distribution<float> flat(-1, 1);
  for (float& p : batch.pixels) p = uniform ? flat(rng) : noise(rng);
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

json ClipConfigJson(const wm::ClipConfig& cfg) {
  return {{"image_size", cfg.image_size},         {"patch_size", cfg.patch_size},
          {"vision_width", cfg.vision_width},     {"vision_layers", cfg.vision_layers},
          {"vision_heads", cfg.vision_heads},     {"vision_mlp", cfg.vision_mlp},
          {"text_width", cfg.text_width},         {"text_layers", cfg.text_layers},
          {"text_heads", cfg.text_heads},         {"text_mlp", cfg.text_mlp},
          {"context_length", cfg.context_length}, {"vocab_size", cfg.vocab_size},
          {"projection_dim", cfg.projection_dim}};
}

// LoRA B starts at zero; perturb it so that the first-step check covers the LoRA branch too.
void PerturbLoraB(torch::nn::Module& m) {
  torch::NoGradGuard g;
  for (auto& p : m.named_parameters(true))
    if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0, 0.02);
}

// Eval-mode (no dropout, no noise, BatchNorm running statistics) loss of `batch`.
StatusOr<double> EvalLoss(wt::TrainableModel& model, const wd::Batch& batch, int64_t step) {
  torch::NoGradGuard g;
  model.module().eval();
  wt::TorchBatch tb = wt::ToTorch(batch, torch::kCPU);
  SD2_ASSIGN_OR_RETURN(wt::StepOutput o, model.Loss(tb, step));
  model.module().train();
  return o.loss.item<double>();
}

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

struct Timing {
  double wall = 0, cpu = 0;  // seconds
};

// Runs the worker's training loop on `batch` (repeated) and returns the wall-clock and process
// CPU seconds between the trainer's reports of step `warmup` and of the last step.
StatusOr<Timing> TimeTrainer(const wt::TrainerOptions& to, wt::TrainableModel* model,
                             worker::Communicator* comm, const wd::Batch& batch, int64_t warmup) {
  using Clock = std::chrono::steady_clock;
  std::vector<Clock::time_point> step_end(size_t(to.total_steps + 1));
  std::vector<double> step_cpu(step_end.size(), 0);
  std::vector<bool> seen(step_end.size(), false);
  worker::TrialContext ctx;
  ctx.comm = comm;
  ctx.device = "cpu";
  ctx.report_metric = [&](int64_t step, const std::string&, double) {
    if (step >= 0 && step < int64_t(seen.size()) && !seen[size_t(step)]) {
      seen[size_t(step)] = true;
      step_end[size_t(step)] = Clock::now();
      step_cpu[size_t(step)] = ProcessCpuSeconds();
    }
  };
  wt::Trainer trainer(to, model, &ctx);
  // SD2_TRAIN_TRACE=FILE: a chrome trace of every operator of the training loop (diagnostics;
  // the profiler's overhead spoils the timing).
  std::unique_ptr<torch::autograd::profiler::RecordProfile> trace;
  if (const char* f = std::getenv("SD2_TRAIN_TRACE"); f != nullptr && *f != '\0')
    trace = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(f));
  SD2_RETURN_IF_ERROR(trainer.Train([&](int64_t, int64_t) -> StatusOr<std::unique_ptr<wd::Loader>> {
    return std::unique_ptr<wd::Loader>(new RepeatLoader(batch));
  }));
  trace.reset();
  const size_t first = size_t(warmup), last = size_t(to.total_steps);
  if (!seen[first] || !seen[last]) return InternalError("the trainer did not report every step");
  Timing t;
  t.wall = std::chrono::duration<double>(step_end[last] - step_end[first]).count();
  t.cpu = step_cpu[last] - step_cpu[first];
  return t;
}

// One line for run_method.sh; loss_end and l2 (the detector's coupled L2) for the baselines.
void PrintResult(const Args& a, double loss0, const Timing& t, std::optional<double> loss_end,
                 std::optional<double> l2) {
  const double images = double(a.steps * a.batch);
  std::printf(
      "loss0=%.8f images_per_s=%.3f seconds=%.4f cpu_images_per_s=%.3f cpu_seconds=%.4f "
      "steps=%lld batch=%lld",
      loss0, images / t.wall, t.wall, images / t.cpu, t.cpu, static_cast<long long>(a.steps),
      static_cast<long long>(a.batch));
  if (loss_end) std::printf(" loss_end=%.8f", *loss_end);
  if (l2) std::printf(" l2=%g", *l2);
  std::printf("\n");
}

Status RunSd2(const Args& a) {
  wt::ConfigureCpuThreads(int(a.threads), 1);
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
  PerturbLoraB(*model);
  model->FreezeBackbone();
  std::unique_ptr<worker::Communicator> comm = worker::MakeLocalCommunicator();
  wt::Sd2Trainable trainable(model, tok, labels, loss_options, comm.get(), a.seed);
  wd::Batch batch = MakeBatch(a.batch, cfg.image_size, a.seed, /*uniform=*/false);

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
  json jh = {{"lr", to.lr},
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
  SD2_RETURN_IF_ERROR(
      wm::WriteTensors(a.out + "/in.safetensors", out,
                       {{"config", ClipConfigJson(cfg).dump()}, {"hparams", jh.dump()}}));

  // First-step loss in eval mode (no dropout): must equal the reference's.
  SD2_ASSIGN_OR_RETURN(double loss0, EvalLoss(trainable, batch, 0));
  SD2_ASSIGN_OR_RETURN(Timing t, TimeTrainer(to, &trainable, comm.get(), batch, a.warmup));
  PrintResult(a, loss0, t, std::nullopt, std::nullopt);
  return OkStatus();
}

// The Xception sizes BuildDetector picks for a model name and hparams (worker/baselines/
// baselines.cc XceptionFor). The reference builds its network from these; its strict
// state-dict load fails if they do not match our weights.
json XceptionConfigJson(const std::string& model, const json& hp) {
  double width = 1.0;
  int middle = 8;
  if (model == "tiny") {
    width = 1.0 / 16;
    middle = 2;
  } else if (model == "small") {
    width = 0.25;
    middle = 4;
  }
  if (hp.contains("width") && !hp["width"].is_null()) width = hp["width"].get<double>();
  if (hp.contains("middle_blocks") && !hp["middle_blocks"].is_null())
    middle = hp["middle_blocks"].get<int>();
  return {{"width", width}, {"middle_blocks", middle}};
}

// Eval-mode cross-entropy of the detector's logits plus l2/2 ||w||^2 over its trainable tensors:
// the loss the reference computes (all methods at their default hparams train on cross-entropy;
// the L2 term is computed here, whether the worker adds it to the loss or to the gradient). The
// training path itself is checked by the loss after training.
double DetectorEvalLoss(wb::Detector& det, const wd::Batch& batch) {
  torch::NoGradGuard g;
  det.root->eval();
  wt::TorchBatch tb = wt::ToTorch(batch, torch::kCPU);
  if (det.before_forward) det.before_forward();
  double loss =
      torch::nn::functional::cross_entropy(det.logits(tb.pixels), tb.label).item<double>();
  if (det.l2 > 0) {
    double sq = 0;
    for (const auto& p : det.root->parameters())
      if (p.requires_grad()) sq += p.pow(2).sum().item<double>();
    loss += 0.5 * det.l2 * sq;
  }
  det.root->train();
  return loss;
}

Status RunBaseline(const Args& a) {
  wt::ConfigureCpuThreads(int(a.threads), 1);
  // The trial config the coordinator would send: the sweep's defaults for the method, the model,
  // image size and batch size of this benchmark.
  json hp = sweeps::DefaultHparams(a.method);
  hp["image_size"] = a.image_size;
  hp["batch_size"] = a.batch;
  hp["threads"] = a.threads;
  hp["steps"] = a.warmup + a.steps;
  hp.merge_patch(a.hparams);
  const json config = {{"method", a.method}, {"model", a.model}, {"seed", a.seed}, {"hparams", hp}};
  SD2_ASSIGN_OR_RETURN(std::unique_ptr<wb::Detector> det, wb::BuildDetector(a.method, config));
  if (a.method == "clip_lora") PerturbLoraB(*det->root);

  // The trainer options of BaselineMethod::Run (worker/baselines/baselines.cc), with a step
  // report after every step (the timing points).
  const std::string optimizer = hp.value("optimizer", std::string("adam"));
  wt::TrainerOptions to;
  to.lr = hp.value("lr", 2e-4);
  to.weight_decay = optimizer == "adamw" ? hp.value("weight_decay", 0.01) : 0.0;
  to.l2 = det->l2;
  to.total_steps = a.warmup + a.steps;
  to.log_every = 1;
  to.seed = a.seed;
  to.device = "cpu";

  std::unique_ptr<worker::Communicator> comm = worker::MakeLocalCommunicator();
  wd::Batch batch = MakeBatch(a.batch, det->image_size, a.seed, /*uniform=*/true);

  // Inputs of the Python reference: every parameter and buffer under the worker's names, the
  // batch, the names of the trainable tensors, the network's config and the optimizer's hparams.
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : det->root->named_parameters(true)) out[p.key()] = p.value().detach();
  for (const auto& b : det->root->named_buffers(true)) out[b.key()] = b.value().detach();
  out["input/x"] = torch::from_blob(batch.pixels.data(),
                                    {a.batch, 3, det->image_size, det->image_size}, torch::kFloat32)
                       .clone();
  out["input/y"] =
      torch::tensor(std::vector<int64_t>(batch.label.begin(), batch.label.end()), torch::kInt64);
  json trainable = json::array();
  for (const auto& p : det->root->named_parameters(true))
    if (p.value().requires_grad()) trainable.push_back(p.key());
  json net;
  if (a.method == "xception" || a.method == "recce" || a.method == "spsl") {
    net = XceptionConfigJson(a.model, hp);
  } else {
    SD2_ASSIGN_OR_RETURN(wm::ClipConfig cfg, wm::NamedClipConfig(a.model));
    cfg.image_size = det->image_size;
    net = ClipConfigJson(cfg);
  }
  json jh = {{"optimizer", optimizer}, {"lr", to.lr},
             {"l2", det->l2},          {"weight_decay", to.weight_decay},
             {"beta1", to.beta1},      {"beta2", to.beta2},
             {"eps", to.eps},          {"variant", det->variant}};
  SD2_RETURN_IF_ERROR(MakeDirs(a.out));
  SD2_RETURN_IF_ERROR(wm::WriteTensors(a.out + "/in.safetensors", out,
                                       {{"method", a.method},
                                        {"config", net.dump()},
                                        {"hparams", jh.dump()},
                                        {"trainable", trainable.dump()}}));

  const double loss0 = DetectorEvalLoss(*det, batch);
  SD2_ASSIGN_OR_RETURN(Timing t, TimeTrainer(to, det.get(), comm.get(), batch, a.warmup));
  // After training, again in eval mode: equal to the reference's where training draws no
  // random numbers (no dropout, no noise).
  const double loss_end = DetectorEvalLoss(*det, batch);
  PrintResult(a, loss0, t, loss_end, det->l2);
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
    s = args->method == "sd2" ? sd2::bench::RunSd2(*args) : sd2::bench::RunBaseline(*args);
  } catch (const c10::Error& e) {
    s = sd2::InternalError(std::string("libtorch: ") + e.what_without_backtrace());
  }
  if (!s.ok()) {
    std::fprintf(stderr, "train_step_bench: %s\n", s.ToString().c_str());
    return sd2::ExitCodeFor(s);
  }
  return 0;
}

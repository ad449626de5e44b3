#include "worker/train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/autocast_mode.h>
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/file_util.h"
#include "worker/models/clip.h"
#include "worker/models/safetensors.h"

namespace sd2::worker::train {
namespace {

// bf16 autocast on CUDA for one scope (LibTorch 2.x's device-typed API), restoring the previous
// state and clearing the cast cache on exit, also when the step throws.
class CudaBf16Autocast {
 public:
  explicit CudaBf16Autocast(bool enable) : enable_(enable) {
    if (!enable_) return;
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    old_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~CudaBf16Autocast() {
    if (!enable_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, old_dtype_);
  }
  CudaBf16Autocast(const CudaBf16Autocast&) = delete;
  CudaBf16Autocast& operator=(const CudaBf16Autocast&) = delete;

 private:
  bool enable_;
  bool was_enabled_ = false;
  at::ScalarType old_dtype_ = at::kBFloat16;
};

constexpr const char* kCheckpointPrefix = "checkpoint-";
constexpr const char* kCheckpointSuffix = ".safetensors";

uint64_t MixSeed(uint64_t seed, int64_t step, int64_t micro, int rank) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ (uint64_t(step) + 0x632BE59BD9B4E019ull);
  x ^= (uint64_t(micro) << 32) ^ uint64_t(rank) * 0xD1B54A32D192ED03ull;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return x & 0x7FFFFFFFFFFFFFFFull;
}

std::vector<std::pair<int64_t, std::string>> ListCheckpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    const std::string pre = kCheckpointPrefix, suf = kCheckpointSuffix;
    if (n.size() <= pre.size() + suf.size() || n.rfind(pre, 0) != 0 ||
        n.compare(n.size() - suf.size(), suf.size(), suf) != 0)
      continue;
    std::string num = n.substr(pre.size(), n.size() - pre.size() - suf.size());
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(num), dir + "/" + n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TorchBatch ToTorch(const data::Batch& b, const torch::Device& device) {
  TorchBatch t;
  t.pixels = torch::from_blob(const_cast<float*>(b.pixels.data()),
                              {b.size, b.channels, b.height, b.width}, torch::kFloat32)
                 .to(device, /*non_blocking=*/false, /*copy=*/true);
  std::vector<int64_t> ti(b.type_index.begin(), b.type_index.end()),
      lb(b.label.begin(), b.label.end());
  t.type_index = torch::tensor(ti, torch::kInt64).to(device);
  t.label = torch::tensor(lb, torch::kInt64).to(device);
  t.meta = &b;
  return t;
}

Status ValidateTrainerOptions(const TrainerOptions& o) {
  if (!(o.lr > 0)) return InvalidArgumentError("lr must be > 0");
  if (o.weight_decay < 0) return InvalidArgumentError("weight_decay must be >= 0");
  if (!(o.l2 >= 0)) return InvalidArgumentError("l2 must be >= 0");
  if (o.schedule != "constant" && o.schedule != "cosine")
    return InvalidArgumentError("schedule must be 'constant' or 'cosine', got '" + o.schedule +
                                "'");
  if (o.accumulation < 1) return InvalidArgumentError("accumulation must be >= 1");
  if (o.epochs < 1 && o.total_steps <= 0)
    return InvalidArgumentError("epochs must be >= 1 (or steps > 0)");
  if (o.warmup < 0 || o.checkpoint_every < 0)
    return InvalidArgumentError("warmup and checkpoint_every must be >= 0");
  return OkStatus();
}

Trainer::Trainer(TrainerOptions o, TrainableModel* model, TrialContext* ctx)
    : o_(std::move(o)), model_(model), ctx_(ctx), device_(o_.device) {}

double Trainer::LearningRate(int64_t step) const {
  if (o_.warmup > 0 && step < o_.warmup) return o_.lr * double(step + 1) / double(o_.warmup);
  if (o_.schedule == "cosine" && total_steps_ > o_.warmup) {
    double p = double(step - o_.warmup) / double(total_steps_ - o_.warmup);
    return o_.lr * 0.5 * (1 + std::cos(M_PI * std::min(1.0, p)));
  }
  return o_.lr;
}

std::string Trainer::NewestCheckpoint() const {
  if (o_.work_dir.empty()) return "";
  auto list = ListCheckpoints(o_.work_dir);
  return list.empty() ? "" : list.back().second;
}

Status Trainer::SaveCheckpoint() {
  if (o_.work_dir.empty() || ctx_->comm->rank() != 0) return OkStatus();
  SD2_RETURN_IF_ERROR(MakeDirs(o_.work_dir));  // a method need not have made it
  std::map<std::string, torch::Tensor> t;
  for (auto& [name, p] : model_->TrainableParameters()) {
    t["param/" + name] = p.detach().to(torch::kCPU, torch::kFloat32);
    if (m_.count(name)) {
      t["adam_m/" + name] = m_[name].to(torch::kCPU);
      t["adam_v/" + name] = v_[name].to(torch::kCPU);
    }
  }
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    t["rng/cpu"] = gen.get_state();
  }
  std::map<std::string, std::string> meta = {{"format", "sd2-checkpoint-1"},
                                             {"step", std::to_string(step_)},
                                             {"next_epoch", std::to_string(next_epoch_)},
                                             {"next_batch", std::to_string(next_batch_)},
                                             {"seed", std::to_string(o_.seed)}};
  char name[64];
  std::snprintf(name, sizeof(name), "%s%010lld%s", kCheckpointPrefix, static_cast<long long>(step_),
                kCheckpointSuffix);
  std::string path = o_.work_dir + "/" + name;
  SD2_RETURN_IF_ERROR(models::WriteTensors(path, t, meta));
  auto list = ListCheckpoints(o_.work_dir);
  for (size_t i = 0; i + 2 < list.size(); ++i) std::remove(list[i].second.c_str());
  if (ctx_->report_checkpoint) ctx_->report_checkpoint(step_, path);
  return OkStatus();
}

Status Trainer::LoadCheckpoint(const std::string& path) {
  SD2_ASSIGN_OR_RETURN(models::SafetensorsFile f, models::ReadSafetensors(path));
  if (f.metadata["format"] != "sd2-checkpoint-1")
    return DataLossError(path + ": not an sd2 checkpoint");
  SD2_ASSIGN_OR_RETURN(auto tensors, models::ReadTensors(path));
  torch::NoGradGuard g;
  m_.clear();
  v_.clear();
  for (auto& [name, p] : model_->TrainableParameters()) {
    auto it = tensors.find("param/" + name);
    if (it == tensors.end())
      return DataLossError(path + ": no tensor for trainable parameter " + name);
    if (it->second.sizes() != p.sizes())
      return DataLossError(path + ": shape mismatch for " + name);
    p.copy_(it->second);
    if (tensors.count("adam_m/" + name)) {
      m_[name] = tensors["adam_m/" + name].to(device_);
      v_[name] = tensors["adam_v/" + name].to(device_);
    }
  }
  if (tensors.count("rng/cpu")) {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(tensors["rng/cpu"]);
  }
  try {
    step_ = std::stoll(f.metadata["step"]);
    next_epoch_ = std::stoll(f.metadata["next_epoch"]);
    next_batch_ = std::stoll(f.metadata["next_batch"]);
  } catch (const std::exception&) {
    return DataLossError(path + ": bad step/position metadata");
  }
  return OkStatus();
}

// Gradients are summed in fp32 buckets of at most kBucketBytes. With a device communicator
// (NCCL) the buckets stay on the GPU; otherwise they are staged through host memory for MPI.
Status Trainer::AllReduceGradients(const std::vector<torch::Tensor>& params) {
  Communicator* comm = ctx_->comm;
  const int world = comm->size();
  if (world == 1 || params.empty()) return OkStatus();
  constexpr int64_t kBucketBytes = int64_t(64) << 20;
  const bool on_device = comm->device_buffers() && device_.is_cuda();
  const torch::Device stage = on_device ? device_ : torch::Device(torch::kCPU);
  size_t first = 0;
  while (first < params.size()) {
    size_t last = first;
    int64_t elems = 0;
    while (last < params.size() &&
           (last == first || (elems + params[last].numel()) * 4 <= kBucketBytes)) {
      elems += params[last].numel();
      ++last;
    }
    std::vector<torch::Tensor> flat;
    flat.reserve(last - first);
    for (size_t i = first; i < last; ++i) {
      const torch::Tensor& p = params[i];
      flat.push_back(
          p.grad().defined()
              ? p.grad().reshape({-1}).to(stage, torch::kFloat32)
              : torch::zeros({p.numel()},
                             torch::TensorOptions().dtype(torch::kFloat32).device(stage)));
    }
    torch::Tensor buf = torch::cat(flat).contiguous();
    SD2_RETURN_IF_ERROR(comm->AllReduceSum(buf.data_ptr<float>(), size_t(buf.numel())));
    buf.div_(world);
    int64_t off = 0;
    for (size_t i = first; i < last; ++i) {
      const torch::Tensor& p = params[i];
      torch::Tensor g =
          buf.narrow(0, off, p.numel()).view(p.sizes()).to(p.device(), p.scalar_type());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(g);
      } else {
        p.mutable_grad() = g.clone();
      }
      off += p.numel();
    }
    first = last;
  }
  return OkStatus();
}

void Trainer::AdamWStep(const std::vector<std::pair<std::string, torch::Tensor>>& params) {
  torch::NoGradGuard g;
  const double lr = LearningRate(step_);
  const int64_t t = step_ + 1;
  const double bc1 = 1 - std::pow(o_.beta1, double(t)), bc2 = 1 - std::pow(o_.beta2, double(t));
  for (const auto& [name, p] : params) {
    if (!p.grad().defined()) continue;
    torch::Tensor grad = o_.l2 > 0 ? p.grad().add(p, o_.l2) : p.grad();
    if (!m_.count(name)) {
      m_[name] = torch::zeros_like(p);
      v_[name] = torch::zeros_like(p);
    }
    torch::Tensor &m = m_[name], &v = v_[name];
    if (p.dim() >= 2 && o_.weight_decay > 0) p.mul_(1 - lr * o_.weight_decay);
    m.mul_(o_.beta1).add_(grad, 1 - o_.beta1);
    v.mul_(o_.beta2).addcmul_(grad, grad, 1 - o_.beta2);
    torch::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(o_.eps);
    p.addcdiv_(m, denom, -lr / bc1);
  }
}

Status Trainer::Train(const LoaderFactory& make_loader) {
  SD2_RETURN_IF_ERROR(ValidateTrainerOptions(o_));
  Communicator* comm = ctx_->comm;
  const int rank = comm->rank();
  // Resume from the newest readable checkpoint.
  if (!o_.work_dir.empty()) {
    auto list = ListCheckpoints(o_.work_dir);
    for (auto it = list.rbegin(); it != list.rend(); ++it) {
      Status s = LoadCheckpoint(it->second);
      if (s.ok()) break;
      step_ = 0, next_epoch_ = 0, next_batch_ = 0;
      if (ctx_->report_metric) ctx_->report_metric(0, "train/bad_checkpoint", 1);
    }
  }
  SD2_ASSIGN_OR_RETURN(auto loader, make_loader(next_epoch_, next_batch_));
  const int64_t bpe = loader->batches_per_epoch();
  if (bpe <= 0)
    return FailedPreconditionError(
        "the training loader has no batches (too few samples for the batch size?)");
  total_steps_ = o_.total_steps > 0 ? o_.total_steps : o_.epochs * bpe / o_.accumulation;
  auto params = model_->TrainableParameters();
  std::vector<torch::Tensor> tensors;
  for (auto& p : params) tensors.push_back(p.second);
  model_->module().train();
  const bool autocast = o_.bf16_autocast && device_.is_cuda();
  auto t0 = std::chrono::steady_clock::now();
  int64_t images = 0, steps_timed = 0;
  data::Batch batch;
  bool data_left = true;
  while (step_ < total_steps_ && data_left) {
    // Stop / preemption, decided by rank 0 and shared with the group.
    std::string flag = "0";
    if (rank == 0) {
      if (ctx_->preempted && ctx_->preempted())
        flag = "p";
      else if (ctx_->should_stop && ctx_->should_stop())
        flag = "s";
    }
    if (comm->size() > 1) SD2_RETURN_IF_ERROR(comm->Broadcast(&flag, 0));
    if (flag == "p") {
      SD2_RETURN_IF_ERROR(SaveCheckpoint());
      return AbortedError("preempted at step " + std::to_string(step_));
    }
    if (flag == "s") return CancelledError("stopped at step " + std::to_string(step_));

    for (auto& p : tensors) p.mutable_grad() = torch::Tensor();
    std::map<std::string, double> metrics;
    int64_t micro = 0;
    for (; micro < o_.accumulation; ++micro) {
      SD2_ASSIGN_OR_RETURN(bool more, loader->Next(&batch));
      if (!more) {
        data_left = false;
        break;
      }
      next_epoch_ = batch.epoch;
      next_batch_ = batch.index + 1;
      if (next_batch_ >= bpe) next_epoch_ += 1, next_batch_ = 0;
      torch::manual_seed(MixSeed(o_.seed, step_, micro, rank));
      TorchBatch tb = ToTorch(batch, device_);
      images += batch.size;
      try {
        StatusOr<StepOutput> out = [&] {
          CudaBf16Autocast guard(autocast);
          return model_->Loss(tb, step_);
        }();
        if (!out.ok()) return out.status();
        torch::Tensor loss = out->loss.to(torch::kFloat32);
        if (!std::isfinite(loss.item<double>()))
          return InternalError("loss is not finite at step " + std::to_string(step_));
        (loss / double(o_.accumulation)).backward();
        for (const auto& [k, v] : out->metrics) metrics[k] += v / double(o_.accumulation);
      } catch (const c10::Error& e) {
        return InternalError(std::string("training step failed: ") + e.what_without_backtrace());
      }
    }
    if (micro < o_.accumulation) break;  // incomplete accumulation at the end of the data
    SD2_RETURN_IF_ERROR(AllReduceGradients(tensors));
    AdamWStep(params);
    ++step_;
    ++steps_timed;
    if (ctx_->report_metric &&
        (step_ % std::max<int64_t>(1, o_.log_every) == 0 || step_ == total_steps_)) {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (const auto& [k, v] : metrics) ctx_->report_metric(step_, "train/" + k, v);
      ctx_->report_metric(step_, "train/lr", LearningRate(step_ - 1));
      ctx_->report_metric(step_, "train/images_per_s", secs > 0 ? images * comm->size() / secs : 0);
      ctx_->report_metric(step_, "train/skipped_files", double(loader->skipped()));
    }
    if (o_.checkpoint_every > 0 && step_ % o_.checkpoint_every == 0 && step_ < total_steps_)
      SD2_RETURN_IF_ERROR(SaveCheckpoint());
  }
  return SaveCheckpoint();
}

Status Trainer::Evaluate(const std::string& eval_set, data::Loader* loader) {
  model_->module().eval();
  torch::NoGradGuard g;
  data::Batch batch;
  std::vector<ScoreRow> rows;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool more, loader->Next(&batch));
    if (!more) break;
    TorchBatch tb = ToTorch(batch, device_);
    torch::Tensor scores;
    try {
      SD2_ASSIGN_OR_RETURN(scores, model_->Score(tb));
      scores = scores.to(torch::kCPU, torch::kFloat64).contiguous();
    } catch (const c10::Error& e) {
      model_->module().train();
      return InternalError(std::string("evaluation failed: ") + e.what_without_backtrace());
    }
    if (scores.numel() != batch.size) {
      model_->module().train();
      return InternalError("evaluation: " + std::to_string(scores.numel()) + " scores for " +
                           std::to_string(batch.size) + " samples");
    }
    const double* s = scores.data_ptr<double>();
    for (int64_t i = 0; i < batch.size; ++i) {
      ScoreRow r;
      r.sample_id = batch.sample_id[size_t(i)];
      r.video_id = i < int64_t(batch.video_id.size()) ? batch.video_id[size_t(i)] : "";
      r.label = batch.label[size_t(i)];
      r.type = i < int64_t(batch.type.size()) ? batch.type[size_t(i)] : "";
      r.score = s[i];
      rows.push_back(std::move(r));
    }
  }
  // One report per set: a receiver may (and `sd2-worker run` does) replace a set's scores
  // with each report.
  if (ctx_->report_scores) ctx_->report_scores(eval_set, rows);
  model_->module().train();
  return OkStatus();
}

}  // namespace sd2::worker::train

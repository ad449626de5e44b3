#include "worker/runtime/smoke_method.h"

#include <chrono>
#include <cmath>
#include <thread>

#include "common/file_util.h"
#include "common/hash.h"

namespace sd2::worker {
namespace {

double Unit(const std::string& seed) {
  std::string h = Sha256Hex(seed).substr(0, 13);
  return static_cast<double>(std::stoull(h, nullptr, 16)) / static_cast<double>(1ULL << 52);
}

Status CheckCollectives(Communicator& comm, const std::string& key) {
  int n = comm.size();
  int r = comm.rank();
  double sums[2] = {static_cast<double>(r + 1), 1.0};
  SD2_RETURN_IF_ERROR(comm.AllReduceSum(sums, 2));
  if (sums[0] != n * (n + 1) / 2.0 || sums[1] != n) {
    return InternalError("smoke: AllReduceSum gave " + std::to_string(sums[0]) + "," +
                         std::to_string(sums[1]) + " on rank " + std::to_string(r) + ", expected " +
                         std::to_string(n * (n + 1) / 2.0) + "," + std::to_string(n));
  }
  float mine = static_cast<float>(r);
  std::vector<float> all(n);
  SD2_RETURN_IF_ERROR(comm.AllGather(&mine, 1, all.data()));
  for (int i = 0; i < n; ++i) {
    if (all[i] != static_cast<float>(i)) {
      return InternalError("smoke: AllGather slot " + std::to_string(i) + " holds " +
                           std::to_string(all[i]) + " on rank " + std::to_string(r));
    }
  }
  std::string msg = r == 0 ? "smoke:" + key : "";
  SD2_RETURN_IF_ERROR(comm.Broadcast(&msg, 0));
  if (msg != "smoke:" + key) {
    return InternalError("smoke: Broadcast delivered '" + msg + "' on rank " + std::to_string(r));
  }
  return OkStatus();
}

class SmokeMethod : public Method {
 public:
  Status Run(TrialContext& ctx) override {
    // Its collectives use host memory: the MPI side of a group that trains over NCCL.
    Communicator& comm = ctx.comm->device_buffers() && ctx.host_comm ? *ctx.host_comm : *ctx.comm;
    if (comm.device_buffers()) {
      return FailedPreconditionError("smoke: needs a communicator with host buffers, got " +
                                     comm.backend() + " only");
    }
    const nlohmann::json hp = ctx.config.value("hparams", nlohmann::json::object());
    double duration_s = hp.value("duration_s", 0.2);
    int64_t steps = hp.value("steps", int64_t{0});
    if (steps == 0) steps = 10;  // the sweeps' default "steps = 0" means "method default"
    int64_t every = std::max<int64_t>(1, hp.value("checkpoint_every", int64_t{5}));
    int64_t fail_attempts = hp.value("fail_attempts", int64_t{0});
    if (steps < 1 || duration_s < 0) {
      return InvalidArgumentError("smoke: hparams.steps must be >= 0 and duration_s >= 0");
    }
    SD2_RETURN_IF_ERROR(CheckCollectives(comm, ctx.trial_key));
    // Resume: rank 0 reads the checkpoint and tells the others.
    std::string ckpt = ctx.work_dir + "/smoke_step";
    std::string start_text = "0";
    if (comm.rank() == 0 && PathExists(ckpt)) {
      auto t = ReadFile(ckpt);
      if (t.ok()) start_text = *t;
    }
    SD2_RETURN_IF_ERROR(comm.Broadcast(&start_text, 0));
    int64_t start = std::strtoll(start_text.c_str(), nullptr, 10);
    if (ctx.report_variant) ctx.report_variant({{"smoke", 1}, {"resumed_from", start}});
    auto pause = std::chrono::duration<double>(duration_s / static_cast<double>(steps));
    for (int64_t step = start; step < steps; ++step) {
      std::this_thread::sleep_for(pause);
      double loss = std::exp(-0.1 * static_cast<double>(step)) +
                    0.01 * Unit(ctx.trial_key + ":" + std::to_string(step));
      double local = loss;
      SD2_RETURN_IF_ERROR(comm.AllReduceSum(&local, 1));
      if (ctx.report_metric) ctx.report_metric(step, "loss", local / comm.size());
      bool done = step + 1 == steps;
      // Every rank must agree on stopping, or the collectives would deadlock.
      double stop = (ctx.should_stop && ctx.should_stop()) ? 1.0 : 0.0;
      SD2_RETURN_IF_ERROR(comm.AllReduceSum(&stop, 1));
      if ((step + 1) % every == 0 || done || stop > 0) {
        if (comm.rank() == 0) {
          SD2_RETURN_IF_ERROR(WriteFileAtomic(ckpt, std::to_string(step + 1)));
          if (ctx.report_checkpoint) ctx.report_checkpoint(step + 1, ckpt);
        }
      }
      if (stop > 0 && !done)
        return CancelledError("smoke: stopped at step " + std::to_string(step + 1));
    }
    if (ctx.attempt <= fail_attempts) {
      return InternalError("smoke: failing attempt " + std::to_string(ctx.attempt) +
                           " on purpose (fail_attempts = " + std::to_string(fail_attempts) + ")");
    }
    std::vector<std::string> sets;
    if (ctx.config.contains("eval") && ctx.config["eval"].is_array()) {
      for (const auto& e : ctx.config["eval"]) {
        if (e.is_object() && e.contains("name") && e["name"].is_string()) {
          sets.push_back(e["name"].get<std::string>());
        }
      }
    }
    if (sets.empty()) sets.push_back("smoke");
    for (const auto& s : sets) {
      if (ctx.report_scores) ctx.report_scores(s, SmokeScores(ctx.trial_key, s, 100));
    }
    return OkStatus();
  }
};

}  // namespace

std::vector<ScoreRow> SmokeScores(const std::string& trial_key, const std::string& eval_set,
                                  int n) {
  std::vector<ScoreRow> rows;
  rows.reserve(n);
  char buf[32];
  for (int i = 0; i < n; ++i) {
    ScoreRow r;
    std::snprintf(buf, sizeof buf, "s%05d", i);
    r.sample_id = buf;
    std::snprintf(buf, sizeof buf, "v%04d", i / 5);
    r.video_id = buf;
    r.label = (i / 5) % 2;
    r.type = r.label ? "FS" : "REAL";
    double u = Unit(trial_key + "/" + eval_set + "/" + r.sample_id);
    r.score = 0.7 * u + 0.3 * r.label;
    rows.push_back(std::move(r));
  }
  return rows;
}

void RegisterSmokeMethod() {
  MethodRegistry::Global().Register("smoke", [] { return std::make_unique<SmokeMethod>(); });
}

}  // namespace sd2::worker

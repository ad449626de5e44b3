#include "worker/runtime/devices.h"

#include <cstdlib>
#include <sstream>

#ifdef SD2_HAVE_TORCH_METHODS
#include "worker/train/cuda_devices.h"
#endif

namespace sd2::worker {

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

StatusOr<std::optional<LocalRank>> LocalRankFromEnv(const EnvLookup& env) {
  for (const char* name : kLocalRankVariables) {
    std::optional<std::string> v = env(name);
    if (!v) continue;
    bool digits =
        !v->empty() && v->size() <= 9 && v->find_first_not_of("0123456789") == std::string::npos;
    if (!digits) {
      return InvalidArgumentError(std::string(name) + "='" + *v +
                                  "': not a non-negative integer (the node-local rank)");
    }
    return std::optional<LocalRank>(LocalRank{std::stoi(*v), name});
  }
  return std::optional<LocalRank>();
}

std::vector<std::string> VisibleDeviceList(const EnvLookup& env) {
  std::vector<std::string> out;
  std::optional<std::string> v = env("CUDA_VISIBLE_DEVICES");
  if (!v) return out;
  std::stringstream ss(*v);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

StatusOr<DeviceBinding> ResolveDevice(const DeviceRequest& r, const EnvLookup& env) {
  if (r.devices != "cpu" && r.devices != "cuda") {
    return InvalidArgumentError("--devices '" + r.devices + "': expected cpu or cuda");
  }
  DeviceBinding b;
  if (r.devices == "cpu") {
    b.rule = "--devices cpu";
    return b;
  }
  if (r.node_local_ranks < 1 || r.node_local_rank < 0 || r.node_local_rank >= r.node_local_ranks) {
    return InvalidArgumentError("node-local rank " + std::to_string(r.node_local_rank) + " of " +
                                std::to_string(r.node_local_ranks) + " ranks");
  }
  SD2_ASSIGN_OR_RETURN(std::optional<LocalRank> from_env, LocalRankFromEnv(env));
  b.local_rank = from_env ? from_env->rank : r.node_local_rank;
  b.local_rank_source = from_env ? from_env->source : "mpi";
  const int ranks = r.node_local_ranks;
  if (b.local_rank >= ranks) {
    return FailedPreconditionError(
        b.local_rank_source + " says local rank " + std::to_string(b.local_rank) + ", but MPI " +
        "counts " + std::to_string(ranks) + " rank(s) of this job on this node (a stale " +
        b.local_rank_source + " in the environment?)");
  }
  const std::vector<std::string> listed = VisibleDeviceList(env);
  std::optional<std::string> cvd = env("CUDA_VISIBLE_DEVICES");
  const std::string cvd_text =
      cvd ? "CUDA_VISIBLE_DEVICES='" + *cvd + "'" : std::string("CUDA_VISIBLE_DEVICES not set");
  const std::string who = "local rank " + std::to_string(b.local_rank) + " (" +
                          b.local_rank_source + ") of " + std::to_string(ranks) +
                          " rank(s) on this node";
  if (r.visible_devices < 0) {
    return FailedPreconditionError(
        "--devices cuda, but this sd2-worker was built without LibTorch, so it has no CUDA; "
        "build with LibTorch (docs/gpu.md) or run with --devices cpu");
  }
  if (r.visible_devices == 0) {
    return FailedPreconditionError("--devices cuda, but the CUDA runtime sees no GPU (" + cvd_text +
                                   "); " + who);
  }
  if (r.visible_devices >= ranks) {
    b.ordinal = b.local_rank;
    b.rule = who + ", " + std::to_string(r.visible_devices) +
             " visible device(s): cuda:" + std::to_string(b.ordinal);
  } else if (r.visible_devices == 1 && listed.size() == 1) {
    b.ordinal = 0;
    b.rule = who + ", one device bound to this rank (" + cvd_text + "): cuda:0";
  } else {
    return FailedPreconditionError(
        std::to_string(ranks) +
        " rank(s) on this node need one GPU each, but the CUDA runtime "
        "sees " +
        std::to_string(r.visible_devices) + " (" + cvd_text + "); " + who + ". Ask for " +
        std::to_string(ranks) +
        " GPU(s) per node (#SBATCH --gpus-per-node), bind "
        "one per rank (srun --gpus-per-task=1), or start fewer ranks per node");
  }
  b.device = "cuda:" + std::to_string(b.ordinal);
  b.physical =
      b.ordinal < static_cast<int>(listed.size()) ? listed[b.ordinal] : std::to_string(b.ordinal);
  return b;
}

int VisibleCudaDevices() {
#ifdef SD2_HAVE_TORCH_METHODS
  return CudaDeviceCount();
#else
  return -1;
#endif
}

SlurmJobIds SlurmJobFromEnv(const EnvLookup& env) {
  SlurmJobIds ids;
  ids.job_id = env("SLURM_JOB_ID").value_or("");
  ids.array_job_id = env("SLURM_ARRAY_JOB_ID").value_or("");
  ids.array_task_id = env("SLURM_ARRAY_TASK_ID").value_or("");
  return ids;
}

}  // namespace sd2::worker

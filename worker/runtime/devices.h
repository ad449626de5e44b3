// Which device each rank of a worker group trains on, and where it runs (host, Slurm job).
// Torch-free and pure: everything comes in through an environment lookup and the number of CUDA
// devices the process sees, so the rule is unit-tested without a GPU (devices_test.cc).
//
// The rule (docs/cluster.md, "GPUs"), for `--devices cuda`, with V the devices the CUDA runtime
// sees (CUDA_VISIBLE_DEVICES lists them when set; they are ordinals 0..V-1 to the process) and
// L the ranks of this job on this node:
//   - V >= L: the rank with node-local rank r uses cuda:r (every rank sees the node's GPUs, as
//     `#SBATCH --gpus-per-node` and plain mpirun give them);
//   - V == 1 and CUDA_VISIBLE_DEVICES names one device: cuda:0 (the launcher bound one GPU per
//     rank: `srun --gpus-per-task=1`, `--gpu-bind=single:1`, or by hand);
//   - otherwise FailedPrecondition: fewer GPUs than ranks need; V <= 0 is an error too.
// The node-local rank comes from OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), SLURM_LOCALID (srun),
// MPI_LOCALRANKID (MPICH / Intel MPI) or LOCAL_RANK, the first one set; without any, from MPI
// (the rank among the job's processes that share this node).
//
//   DeviceRequest req;
//   req.devices = "cuda";  req.visible_devices = VisibleCudaDevices();
//   req.node_local_rank = 0;  req.node_local_ranks = 2;   // from MPI_Comm_split_type
//   SD2_ASSIGN_OR_RETURN(DeviceBinding b, ResolveDevice(req, ProcessEnv()));
//   ctx.device = b.device;   // "cuda:1"
#ifndef SD2_WORKER_RUNTIME_DEVICES_H_
#define SD2_WORKER_RUNTIME_DEVICES_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::worker {

// An environment variable's value; nullopt when it is not set.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
// getenv.
EnvLookup ProcessEnv();

// The variables the node-local rank is read from, in order of preference.
inline constexpr const char* kLocalRankVariables[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                                                      "MPI_LOCALRANKID", "LOCAL_RANK"};

struct LocalRank {
  int rank = 0;
  std::string source;  // the variable it came from
};
// The first of kLocalRankVariables that is set; nullopt when none is. InvalidArgument when the
// value is not a non-negative integer ("SLURM_LOCALID='x': not a non-negative integer").
StatusOr<std::optional<LocalRank>> LocalRankFromEnv(const EnvLookup& env);

struct DeviceRequest {
  std::string devices = "cpu";  // "cpu" | "cuda"
  // CUDA devices the process sees (torch::cuda::device_count()); -1: built without CUDA.
  int visible_devices = 0;
  // This process's rank among the job's processes on this node, and their number, as MPI
  // counts them (MPI_Comm_split_type SHARED); the rank is the fallback when no variable is set.
  int node_local_rank = 0;
  int node_local_ranks = 1;
};

struct DeviceBinding {
  std::string device = "cpu";  // "cpu" or "cuda:N": what the method trains on
  int ordinal = -1;            // N; -1 on the CPU
  int local_rank = 0;
  std::string local_rank_source;  // a variable of kLocalRankVariables, or "mpi"
  // The device as the node knows it: the CUDA_VISIBLE_DEVICES entry at N (an index or a UUID),
  // or N when the variable is not set; "cpu" on the CPU. For the attempt record.
  std::string physical = "cpu";
  std::string rule;  // why: "local rank 1 of 2, 8 visible devices"
};

// Applies the rule above. InvalidArgument for devices other than cpu|cuda or a bad local-rank
// variable; FailedPrecondition when the GPUs are not there (the message names the local rank,
// the ranks on the node, the visible devices and CUDA_VISIBLE_DEVICES).
StatusOr<DeviceBinding> ResolveDevice(const DeviceRequest& request, const EnvLookup& env);

// CUDA_VISIBLE_DEVICES split at commas (empty entries dropped); empty when unset.
std::vector<std::string> VisibleDeviceList(const EnvLookup& env);

// CUDA devices this process sees: torch::cuda::device_count() in a LibTorch build
// (worker/train/cuda_devices.h), -1 in a build without LibTorch.
int VisibleCudaDevices();

// The Slurm job a process runs in (empty strings outside Slurm): SLURM_JOB_ID,
// SLURM_ARRAY_JOB_ID, SLURM_ARRAY_TASK_ID.
struct SlurmJobIds {
  std::string job_id;
  std::string array_job_id;
  std::string array_task_id;
};
SlurmJobIds SlurmJobFromEnv(const EnvLookup& env);

}  // namespace sd2::worker

#endif  // SD2_WORKER_RUNTIME_DEVICES_H_

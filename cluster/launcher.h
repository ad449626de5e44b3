// Launcher: starts, watches and stops worker groups — the coordinator's one view of a cluster.
// A worker group is `ranks` MPI processes of `sd2-worker --coordinator ENDPOINT` that take
// trials together. Implementations: LocalMpirunLauncher (mpirun on this machine or a host
// file), SlurmLauncher (sbatch jobs, job arrays), FakeLauncher (tests).
//
//   GroupSpec spec;
//   spec.name = "table6";  spec.ranks = 4;  spec.gpus_per_rank = 1;
//   spec.coordinator = "tcp://login1:5555";
//   SD2_ASSIGN_OR_RETURN(LaunchHandle h, launcher->Launch(spec));
//   SD2_ASSIGN_OR_RETURN(LaunchState s, launcher->Poll(h));   // kPending, kRunning, ...
//   SD2_RETURN_IF_ERROR(launcher->Cancel(h));
#ifndef SD2_CLUSTER_LAUNCHER_H_
#define SD2_CLUSTER_LAUNCHER_H_

#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::cluster {

// sd2-worker's exit code for "checkpointed and stopped because of SIGUSR1/SIGTERM" — the
// attempt is preempted, not failed, and the trial resumes on another group.
inline constexpr int kWorkerExitPreempted = 3;

// The shape of one worker group and what its ranks run.
struct GroupSpec {
  std::string name = "sd2";  // label: Slurm job name, log file names
  int ranks = 1;             // MPI processes in the group
  int gpus_per_rank = 0;     // 0: CPU-only group
  int nodes = 1;             // nodes the group spans (Slurm); ranks must divide evenly
  int cpus_per_rank = 1;     // CPU cores per rank (Slurm --cpus-per-task)
  // The worker's --devices: "" derives it (cuda when gpus_per_rank > 0, else the worker's
  // default, cpu); "cpu" or "cuda" is the user's explicit choice and wins.
  std::string devices;
  std::string coordinator;               // endpoint the ranks connect to, e.g. "tcp://login1:5555"
  std::string work_dir;                  // passed as --work-dir when set (checkpoints, scratch)
  int idle_exit_seconds = 0;             // passed as --idle-exit when > 0
  std::vector<std::string> worker_args;  // more sd2-worker arguments, appended last
  std::map<std::string, std::string> env;  // environment for every rank
};

// Checks the numbers of a spec; InvalidArgument with the offending field otherwise.
Status ValidateGroupSpec(const GroupSpec& spec);

// The --devices a group's workers get: `devices` when set, else "cuda" when the group has
// GPUs (gpus_per_rank > 0), else "" (no flag: the worker's default, cpu).
std::string WorkerDevices(const std::string& devices, int gpus_per_rank);

// True when `args` already holds a --devices flag (`--devices X` or `--devices=X`).
bool HasDevicesFlag(const std::vector<std::string>& args);

// The sd2-worker command line one rank runs for `spec`:
//   WORKER --coordinator EP [--work-dir DIR] [--idle-exit S] [--devices D] [worker_args...]
// --devices D is WorkerDevices(spec.devices, spec.gpus_per_rank), left out when worker_args
// carries its own --devices.
std::vector<std::string> WorkerCommand(const GroupSpec& spec, const std::string& worker_binary);

enum class LaunchState {
  kPending,  // submitted, not started (Slurm queue; a requeued job waits here too)
  kRunning,
  kDone,       // ended with exit code 0 (e.g. the worker's --idle-exit)
  kFailed,     // ended with another exit code, was cancelled, or vanished
  kPreempted,  // ended as preempted (exit code 3, Slurm PREEMPTED)
};
const char* LaunchStateName(LaunchState s);
inline bool IsTerminal(LaunchState s) {
  return s == LaunchState::kDone || s == LaunchState::kFailed || s == LaunchState::kPreempted;
}

// Identifies one launched group: a pid for local mpirun, a Slurm job id ("1234" or "1234_7"
// for an array task).
struct LaunchHandle {
  std::string launcher;  // "local", "slurm", "fake"
  std::string id;
  bool operator==(const LaunchHandle& o) const { return launcher == o.launcher && id == o.id; }
  bool operator<(const LaunchHandle& o) const {
    return launcher != o.launcher ? launcher < o.launcher : id < o.id;
  }
};

// Not thread-safe: the coordinator calls it from its one io_context thread.
class Launcher {
 public:
  virtual ~Launcher() = default;
  // Starts one group. Errors: InvalidArgument for a bad spec, Unavailable when the cluster
  // refused (sbatch failed), NotFound when a program is missing.
  virtual StatusOr<LaunchHandle> Launch(const GroupSpec& spec) = 0;
  // Starts `count` identical groups. The default calls Launch `count` times and stops at the
  // first error; SlurmLauncher submits job arrays.
  virtual StatusOr<std::vector<LaunchHandle>> LaunchMany(const GroupSpec& spec, int count);
  // Where a group stands now.
  virtual StatusOr<LaunchState> Poll(const LaunchHandle& handle) = 0;
  // Where each of `handles` stands, in one query where the cluster allows it (SlurmLauncher:
  // one squeue for all). The default calls Poll for each.
  virtual std::map<LaunchHandle, StatusOr<LaunchState>> PollMany(
      const std::vector<LaunchHandle>& handles);
  // Stops a group (SIGTERM to mpirun, scancel). Cancelling a finished group is OK.
  virtual Status Cancel(const LaunchHandle& handle) = 0;
};

}  // namespace sd2::cluster

#endif  // SD2_CLUSTER_LAUNCHER_H_

// Renders sbatch scripts for the two ways sd2 runs on Slurm:
//  - groups: one (array) job per worker group; each connects to a long-lived coordinator
//    (`sd2-worker --coordinator EP`) and takes trials until none are left;
//  - allocation: one job that runs a whole sweep with the mpirun sweep launch
//    (`sd2-worker --sweep FILE --group-size G --db PATH`, coordinator inside the job, database
//    on shared storage), requeued until the sweep is done.
// Both scripts ask Slurm for USR1 SECONDS before the end (`--signal=B:USR1@SECONDS`), forward
// it to the worker, which checkpoints and exits 3 (preempted), and then requeue the job.
//
//   SlurmJobOptions job;  job.partition = "gpu";  job.time = "12:00:00";
//   GroupSpec spec;  spec.ranks = 4;  spec.gpus_per_rank = 1;  spec.coordinator =
//   "tcp://login1:5555"; SD2_ASSIGN_OR_RETURN(std::string script, RenderGroupsScript(spec, job,
//   /*array_size=*/8));
#ifndef SD2_CLUSTER_SLURM_SCRIPT_H_
#define SD2_CLUSTER_SLURM_SCRIPT_H_

#include <map>
#include <string>
#include <vector>

#include "cluster/launcher.h"
#include "common/status.h"

namespace sd2::cluster {

// How the batch script starts the ranks of the worker inside the allocation.
enum class RankLauncher {
  kSrun,    // srun --kill-on-bad-exit=1 WORKER ...   (Slurm starts every task)
  kMpirun,  // mpirun -np "$SLURM_NTASKS" WORKER ...  (Open MPI reads the allocation)
  kDirect,  // WORKER ...  (one rank, no launcher: single-rank groups and tests)
};
const char* RankLauncherName(RankLauncher l);
// "srun", "mpirun", "direct"; InvalidArgument otherwise.
StatusOr<RankLauncher> ParseRankLauncher(const std::string& name);

// Job-level options shared by both shapes. Empty strings leave the #SBATCH line out.
struct SlurmJobOptions {
  std::string partition;
  std::string account;
  std::string qos;
  std::string time = "24:00:00";  // HH:MM:SS, D-HH:MM:SS or MM:SS
  int signal_seconds = 300;       // USR1 this long before the time limit (0: no --signal)
  bool requeue = true;            // --requeue, and `scontrol requeue` after a preemption
  std::string output_dir;         // where %x-%j.out logs go; empty: the submit directory
  RankLauncher rank_launcher = RankLauncher::kSrun;
  std::string worker_binary = "sd2-worker";  // default of $SD2_WORKER in the script
  std::vector<std::string> extra_sbatch;     // more lines, e.g. "--constraint=a100"
  // How the script asks for GPUs (tasks per node x GPUs per rank of them): "gpus-per-node"
  // (`#SBATCH --gpus-per-node=N`, Slurm >= 19.05) or "gres" (`#SBATCH --gres=gpu:N`, for
  // clusters that only configure generic resources).
  std::string gpu_request = "gpus-per-node";
};

// Checks time format, signal seconds and option text (no newlines); InvalidArgument names
// the field.
Status ValidateJobOptions(const SlurmJobOptions& job);

// The groups shape: `array_size` > 1 renders `--array=0-(array_size-1)`; 1 renders a plain job.
StatusOr<std::string> RenderGroupsScript(const GroupSpec& spec, const SlurmJobOptions& job,
                                         int array_size);

// One allocation that runs a whole sweep.
struct AllocationSpec {
  std::string name = "sd2";
  std::string sweep_file;  // absolute path on shared storage
  std::string db_path;     // absolute path on shared storage
  int nodes = 1;
  int tasks_per_node = 1;  // ranks per node; the world is nodes * tasks_per_node ranks
  int group_size = 1;      // ranks per worker group; must divide the world
  int gpus_per_rank = 0;
  int cpus_per_rank = 1;
  // The worker's --devices, as GroupSpec::devices: "" gives cuda when gpus_per_rank > 0.
  std::string devices;
  std::string work_dir;
  std::map<std::string, std::string> vars;  // --var NAME=VALUE
  std::map<std::string, std::string> env;
  std::vector<std::string> worker_args;  // more sd2-worker arguments, appended last
};
StatusOr<std::string> RenderAllocationScript(const AllocationSpec& spec,
                                             const SlurmJobOptions& job);

// "HH:MM:SS", "MM:SS", "MM", "D-HH", "D-HH:MM", "D-HH:MM:SS" (Slurm's --time formats) ->
// seconds; InvalidArgument otherwise.
StatusOr<int64_t> ParseSlurmTime(const std::string& text);

}  // namespace sd2::cluster

#endif  // SD2_CLUSTER_SLURM_SCRIPT_H_

// SlurmLauncher: worker groups as Slurm batch jobs. Launch renders a groups-shape script
// (cluster/slurm_script.h) into a script directory and submits it with `sbatch --parsable`;
// LaunchMany submits one job array per MaxArraySize tasks (read from `scontrol show config`);
// Poll asks `squeue`, then `scontrol show job`, then `sacct` (the test Slurm has no accounting);
// Cancel runs `scancel`. Every command goes through a CommandRunner, so unit tests check the
// exact argv and feed canned output to the parsers below.
//
//   SystemCommandRunner runner;
//   SlurmLauncherOptions opts;  opts.script_dir = "/shared/sd2/slurm";  opts.job.partition = "gpu";
//   SlurmLauncher slurm(&runner, opts);
//   SD2_ASSIGN_OR_RETURN(auto handles, slurm.LaunchMany(spec, 16));   // "1234_0" ... "1234_15"
//   SD2_ASSIGN_OR_RETURN(LaunchState s, slurm.Poll(handles[0]));
#ifndef SD2_CLUSTER_SLURM_LAUNCHER_H_
#define SD2_CLUSTER_SLURM_LAUNCHER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/command_runner.h"
#include "cluster/launcher.h"
#include "cluster/slurm_script.h"

namespace sd2::cluster {

struct SlurmLauncherOptions {
  SlurmJobOptions job;
  std::string script_dir;  // rendered scripts are written here (required; shared storage is best)
  std::string sbatch = "sbatch";
  std::string squeue = "squeue";
  std::string sacct = "sacct";
  std::string scancel = "scancel";
  std::string scontrol = "scontrol";
  int max_array_size = 0;  // 0: read MaxArraySize from `scontrol show config` on first use
};

// --- Parsers of Slurm command output (pure functions, unit-tested on canned text) ---

// `sbatch --parsable` prints "JOBID" or "JOBID;CLUSTER". Returns JOBID.
StatusOr<std::string> ParseSbatchParsable(const std::string& out);
// Maps a Slurm job state ("RUNNING", "CANCELLED by 0", "FAILED", "CANCELLED+", ...) and the
// job's exit code to a LaunchState. InvalidArgument for a state Slurm does not have.
StatusOr<LaunchState> SlurmStateToLaunchState(const std::string& slurm_state, int exit_code);
// `squeue -h -r -t all -o %i|%T -j ID`: the state of job `id`, nullopt when not listed.
std::optional<std::string> ParseSqueueState(const std::string& out, const std::string& id);
// `scontrol show job -o ID` (one line of KEY=VALUE pairs) -> its pairs.
std::map<std::string, std::string> ParseScontrolRecord(const std::string& line);
// "3:0" (exit code : signal) -> 3; a non-zero signal gives 128 + signal. InvalidArgument else.
StatusOr<int> ParseSlurmExitCode(const std::string& text);
struct SacctRecord {
  std::string state;
  int exit_code = 0;
};
// `sacct -n -P -X -o JobID,State,ExitCode -j ID`: the record of job `id`, nullopt if absent.
StatusOr<std::optional<SacctRecord>> ParseSacct(const std::string& out, const std::string& id);
// `scontrol show config`: the MaxArraySize value. NotFound when the line is missing.
StatusOr<int> ParseMaxArraySize(const std::string& config);
// Splits `count` one-group jobs into arrays Slurm accepts: task indices must be below
// MaxArraySize, so each array has at most `max_array_size` tasks. Returns the size of each.
std::vector<int> SplitIntoArrays(int count, int max_array_size);

// Not thread-safe.
class SlurmLauncher : public Launcher {
 public:
  // `runner` must outlive the launcher.
  SlurmLauncher(CommandRunner* runner, SlurmLauncherOptions options);

  StatusOr<LaunchHandle> Launch(const GroupSpec& spec) override;
  StatusOr<std::vector<LaunchHandle>> LaunchMany(const GroupSpec& spec, int count) override;
  StatusOr<LaunchState> Poll(const LaunchHandle& handle) override;
  // One `squeue -j ID1,ID2,...` for all handles; only jobs squeue no longer shows as pending,
  // running or preempted are looked up one by one (scontrol, then sacct) for their exit code.
  std::map<LaunchHandle, StatusOr<LaunchState>> PollMany(
      const std::vector<LaunchHandle>& handles) override;
  Status Cancel(const LaunchHandle& handle) override;

  // MaxArraySize of the cluster (cached after the first call).
  StatusOr<int> MaxArraySize();
  // Path of the last script written (for logs and tests).
  const std::string& last_script() const { return last_script_; }

 private:
  StatusOr<std::string> Submit(const GroupSpec& spec, int array_size);
  StatusOr<std::string> JobIdOf(const LaunchHandle& handle) const;
  // Steps 2 and 3 of Poll (scontrol, sacct) for a job squeue did not settle.
  StatusOr<LaunchState> PollFinished(const std::string& id);

  CommandRunner* runner_;
  SlurmLauncherOptions options_;
  int submissions_ = 0;
  std::string last_script_;
};

}  // namespace sd2::cluster

#endif  // SD2_CLUSTER_SLURM_LAUNCHER_H_

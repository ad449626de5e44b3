// LocalMpirunLauncher: runs each worker group as `mpirun -np N ... sd2-worker --coordinator EP`
// on this machine (or on the hosts of a host file), tracks the mpirun pid, and stops the group
// with SIGTERM to mpirun's process group (mpirun forwards it to the ranks, which checkpoint).
//
//   SystemCommandRunner runner;
//   LocalMpirunOptions opts;
//   opts.worker_binary = "/opt/sd2/bin/sd2-worker";
//   opts.hostfile = "hosts.txt";                 // optional; see WriteHostFile
//   opts.pass_env = {"NCCL_SOCKET_IFNAME"};      // forwarded with -x
//   LocalMpirunLauncher launcher(&runner, opts);
//   SD2_ASSIGN_OR_RETURN(LaunchHandle h, launcher.Launch(spec));
#ifndef SD2_CLUSTER_LOCAL_LAUNCHER_H_
#define SD2_CLUSTER_LOCAL_LAUNCHER_H_

#include <map>
#include <string>
#include <vector>

#include "cluster/command_runner.h"
#include "cluster/launcher.h"

namespace sd2::cluster {

struct LocalMpirunOptions {
  std::string mpirun = "mpirun";             // mpirun program (PATH lookup)
  std::string worker_binary = "sd2-worker";  // what every rank runs
  std::string hostfile;                      // --hostfile when set
  std::string map_by;                        // --map-by when set, e.g. "ppr:4:node"
  bool oversubscribe = false;                // --oversubscribe (more ranks than cores)
  bool allow_run_as_root = false;            // --allow-run-as-root
  // Names of variables of the launching environment forwarded to the ranks with `-x NAME`.
  std::vector<std::string> pass_env;
  std::vector<std::string> extra_mpirun_args;  // inserted before the worker command
  std::string log_dir;  // each group's output is appended to LOG_DIR/NAME.log; empty: inherit
};

// Writes an Open MPI host file: one "HOST slots=SLOTS" line per host.
// InvalidArgument for an empty host list or slots < 1.
Status WriteHostFile(const std::string& path, const std::vector<std::string>& hosts, int slots);

// Not thread-safe.
class LocalMpirunLauncher : public Launcher {
 public:
  // `runner` must outlive the launcher.
  LocalMpirunLauncher(CommandRunner* runner, LocalMpirunOptions options);

  // The exact mpirun argv Launch runs for `spec` (the spec's env goes with -x NAME=VALUE).
  std::vector<std::string> MpirunCommand(const GroupSpec& spec) const;

  StatusOr<LaunchHandle> Launch(const GroupSpec& spec) override;
  // Exit 0 -> kDone, kWorkerExitPreempted -> kPreempted, other -> kFailed. A finished state is
  // remembered, so polling again gives the same answer.
  StatusOr<LaunchState> Poll(const LaunchHandle& handle) override;
  Status Cancel(const LaunchHandle& handle) override;

 private:
  StatusOr<int64_t> PidOf(const LaunchHandle& handle) const;

  CommandRunner* runner_;
  LocalMpirunOptions options_;
  std::map<int64_t, LaunchState> finished_;
};

}  // namespace sd2::cluster

#endif  // SD2_CLUSTER_LOCAL_LAUNCHER_H_

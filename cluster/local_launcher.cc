#include "cluster/local_launcher.h"

#include <csignal>
#include <utility>

#include "common/file_util.h"

namespace sd2::cluster {

Status WriteHostFile(const std::string& path, const std::vector<std::string>& hosts, int slots) {
  if (hosts.empty()) return InvalidArgumentError("host file: no hosts given");
  if (slots < 1) return InvalidArgumentError("host file: slots must be >= 1");
  std::string text;
  for (const auto& h : hosts) {
    if (h.empty() || h.find_first_of(" \t\n") != std::string::npos) {
      return InvalidArgumentError("host file: bad host name '" + h + "'");
    }
    text += h + " slots=" + std::to_string(slots) + "\n";
  }
  return WriteFileAtomic(path, text);
}

LocalMpirunLauncher::LocalMpirunLauncher(CommandRunner* runner, LocalMpirunOptions options)
    : runner_(runner), options_(std::move(options)) {}

std::vector<std::string> LocalMpirunLauncher::MpirunCommand(const GroupSpec& spec) const {
  std::vector<std::string> argv = {options_.mpirun, "-np", std::to_string(spec.ranks)};
  if (!options_.hostfile.empty()) {
    argv.push_back("--hostfile");
    argv.push_back(options_.hostfile);
  }
  if (!options_.map_by.empty()) {
    argv.push_back("--map-by");
    argv.push_back(options_.map_by);
  }
  if (options_.oversubscribe) argv.push_back("--oversubscribe");
  if (options_.allow_run_as_root) argv.push_back("--allow-run-as-root");
  for (const auto& name : options_.pass_env) {
    argv.push_back("-x");
    argv.push_back(name);
  }
  for (const auto& [name, value] : spec.env) {
    argv.push_back("-x");
    argv.push_back(name + "=" + value);
  }
  argv.insert(argv.end(), options_.extra_mpirun_args.begin(), options_.extra_mpirun_args.end());
  std::vector<std::string> worker = WorkerCommand(spec, options_.worker_binary);
  argv.insert(argv.end(), worker.begin(), worker.end());
  return argv;
}

StatusOr<LaunchHandle> LocalMpirunLauncher::Launch(const GroupSpec& spec) {
  SD2_RETURN_IF_ERROR(ValidateGroupSpec(spec));
  if (spec.coordinator.empty()) {
    return InvalidArgumentError("local launch: the group spec has no coordinator endpoint");
  }
  std::string log;
  if (!options_.log_dir.empty()) {
    SD2_RETURN_IF_ERROR(MakeDirs(options_.log_dir));
    log = options_.log_dir + "/" + spec.name + ".log";
  }
  // mpirun also hands the spec's env to the ranks through -x; setting it for mpirun itself
  // makes MCA settings (OMPI_MCA_*) apply to the launch too.
  SD2_ASSIGN_OR_RETURN(int64_t pid, runner_->Start(MpirunCommand(spec), spec.env, log));
  return LaunchHandle{"local", std::to_string(pid)};
}

StatusOr<int64_t> LocalMpirunLauncher::PidOf(const LaunchHandle& handle) const {
  if (handle.launcher != "local") {
    return InvalidArgumentError("local launcher: handle of launcher '" + handle.launcher + "'");
  }
  try {
    size_t used = 0;
    int64_t pid = std::stoll(handle.id, &used);
    if (used == handle.id.size() && pid > 0) return pid;
  } catch (const std::exception&) {
  }
  return InvalidArgumentError("local launcher: bad pid '" + handle.id + "'");
}

StatusOr<LaunchState> LocalMpirunLauncher::Poll(const LaunchHandle& handle) {
  SD2_ASSIGN_OR_RETURN(int64_t pid, PidOf(handle));
  if (auto it = finished_.find(pid); it != finished_.end()) return it->second;
  SD2_ASSIGN_OR_RETURN(std::optional<int> code, runner_->TryWait(pid));
  if (!code) return LaunchState::kRunning;
  LaunchState s = *code == 0                      ? LaunchState::kDone
                  : *code == kWorkerExitPreempted ? LaunchState::kPreempted
                                                  : LaunchState::kFailed;
  finished_[pid] = s;
  return s;
}

Status LocalMpirunLauncher::Cancel(const LaunchHandle& handle) {
  SD2_ASSIGN_OR_RETURN(int64_t pid, PidOf(handle));
  if (finished_.count(pid)) return OkStatus();
  SD2_ASSIGN_OR_RETURN(LaunchState s, Poll(handle));
  if (IsTerminal(s)) return OkStatus();
  return runner_->Signal(pid, SIGTERM);
}

}  // namespace sd2::cluster

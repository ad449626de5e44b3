#include "cluster/launcher.h"

namespace sd2::cluster {

Status ValidateGroupSpec(const GroupSpec& spec) {
  if (spec.ranks < 1) {
    return InvalidArgumentError("group spec: ranks must be >= 1, got " +
                                std::to_string(spec.ranks));
  }
  if (spec.gpus_per_rank < 0) {
    return InvalidArgumentError("group spec: gpus_per_rank must be >= 0, got " +
                                std::to_string(spec.gpus_per_rank));
  }
  if (spec.nodes < 1) {
    return InvalidArgumentError("group spec: nodes must be >= 1, got " +
                                std::to_string(spec.nodes));
  }
  if (spec.ranks % spec.nodes != 0) {
    return InvalidArgumentError("group spec: " + std::to_string(spec.ranks) +
                                " ranks do not split evenly over " + std::to_string(spec.nodes) +
                                " nodes");
  }
  if (spec.cpus_per_rank < 1) {
    return InvalidArgumentError("group spec: cpus_per_rank must be >= 1, got " +
                                std::to_string(spec.cpus_per_rank));
  }
  if (!spec.devices.empty() && spec.devices != "cpu" && spec.devices != "cuda") {
    return InvalidArgumentError("group spec: devices '" + spec.devices +
                                "' must be cpu or cuda (or empty: cuda when gpus_per_rank > 0)");
  }
  if (spec.idle_exit_seconds < 0) {
    return InvalidArgumentError("group spec: idle_exit_seconds must be >= 0");
  }
  if (spec.name.empty() ||
      spec.name.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
          std::string::npos) {
    return InvalidArgumentError("group spec: name '" + spec.name +
                                "' must be non-empty and use only letters, digits, '_', '-', '.'");
  }
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find_first_of("= \t\n") != std::string::npos) {
      return InvalidArgumentError("group spec: bad environment variable name '" + name + "'");
    }
  }
  return OkStatus();
}

std::string WorkerDevices(const std::string& devices, int gpus_per_rank) {
  if (!devices.empty()) return devices;
  return gpus_per_rank > 0 ? "cuda" : "";
}

bool HasDevicesFlag(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--devices" || a.rfind("--devices=", 0) == 0) return true;
  }
  return false;
}

std::vector<std::string> WorkerCommand(const GroupSpec& spec, const std::string& worker_binary) {
  std::vector<std::string> argv = {worker_binary, "--coordinator", spec.coordinator};
  if (!spec.work_dir.empty()) {
    argv.push_back("--work-dir");
    argv.push_back(spec.work_dir);
  }
  if (spec.idle_exit_seconds > 0) {
    argv.push_back("--idle-exit");
    argv.push_back(std::to_string(spec.idle_exit_seconds));
  }
  const std::string devices = WorkerDevices(spec.devices, spec.gpus_per_rank);
  if (!devices.empty() && !HasDevicesFlag(spec.worker_args)) {
    argv.push_back("--devices");
    argv.push_back(devices);
  }
  argv.insert(argv.end(), spec.worker_args.begin(), spec.worker_args.end());
  return argv;
}

const char* LaunchStateName(LaunchState s) {
  switch (s) {
    case LaunchState::kPending:
      return "pending";
    case LaunchState::kRunning:
      return "running";
    case LaunchState::kDone:
      return "done";
    case LaunchState::kFailed:
      return "failed";
    case LaunchState::kPreempted:
      return "preempted";
  }
  return "unknown";
}

StatusOr<std::vector<LaunchHandle>> Launcher::LaunchMany(const GroupSpec& spec, int count) {
  if (count < 0) return InvalidArgumentError("LaunchMany: negative count");
  std::vector<LaunchHandle> out;
  for (int i = 0; i < count; ++i) {
    SD2_ASSIGN_OR_RETURN(LaunchHandle h, Launch(spec));
    out.push_back(std::move(h));
  }
  return out;
}

std::map<LaunchHandle, StatusOr<LaunchState>> Launcher::PollMany(
    const std::vector<LaunchHandle>& handles) {
  std::map<LaunchHandle, StatusOr<LaunchState>> out;
  for (const LaunchHandle& h : handles) out.emplace(h, Poll(h));
  return out;
}

}  // namespace sd2::cluster

// LauncherConfig: how the coordinator keeps worker groups running, read from its config (the
// `[launcher]` table of the coordinator's TOML, handed over as JSON) — which launcher, how many
// groups of what shape per sweep, and the launcher's own options. MakeLauncher builds it.
//
//   // [launcher]
//   // kind = "slurm"          # local | slurm
//   // groups = 4              # groups kept alive per sweep with queued trials
//   // partition = "gpu"
//   // time = "12:00:00"
//   // script_dir = "/shared/sd2/slurm"
//   SD2_ASSIGN_OR_RETURN(LauncherConfig cfg, ParseLauncherConfig(launcher_json));
//   SD2_ASSIGN_OR_RETURN(std::unique_ptr<Launcher> launcher, MakeLauncher(cfg, &runner));
//   GroupKeeper keeper(launcher.get(), cfg.keeper, clock);
//   GroupSpec spec = cfg.group;  spec.ranks = sweep_ranks;  spec.coordinator = my_endpoint;
//   keeper.SetTarget(sweep_id, spec, cfg.groups);
#ifndef SD2_CLUSTER_LAUNCHER_CONFIG_H_
#define SD2_CLUSTER_LAUNCHER_CONFIG_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cluster/command_runner.h"
#include "cluster/group_keeper.h"
#include "cluster/launcher.h"
#include "cluster/local_launcher.h"
#include "cluster/slurm_launcher.h"

namespace sd2::cluster {

struct LauncherConfig {
  std::string kind = "none";  // "none" (groups are started by hand), "local", "slurm"
  int groups = 1;             // groups to keep alive per sweep
  // Shape defaults. SweepGroups replaces ranks and gpus_per_rank with what the sweep's queued
  // trials need (status `needs`); `devices` stays the user's explicit choice when set.
  GroupSpec group;
  LocalMpirunOptions local;
  SlurmLauncherOptions slurm;
  KeeperOptions keeper;
};

// Keys (all optional): kind, groups, ranks, gpus_per_rank, nodes, cpus_per_rank, idle_exit,
// work_dir, devices ("cpu" | "cuda"; default: cuda when the group has GPUs), env {NAME: VALUE},
// worker, log_dir; local: mpirun, hostfile, map_by, oversubscribe, pass_env [..]; slurm:
// script_dir, partition, account, qos, time, signal_seconds, requeue, rank_launcher,
// gpu_request ("gpus-per-node" | "gres"), sbatch [..]; keeper: backoff_initial_s,
// backoff_max_s, max_failures, poll_s (Slurm state queries). An unknown key or a value of the wrong
// type is InvalidArgument naming "launcher.KEY".
StatusOr<LauncherConfig> ParseLauncherConfig(const nlohmann::json& j);

// The launcher the config asks for; FailedPrecondition for kind "none". `runner` must outlive it.
StatusOr<std::unique_ptr<Launcher>> MakeLauncher(const LauncherConfig& config,
                                                 CommandRunner* runner);

}  // namespace sd2::cluster

#endif  // SD2_CLUSTER_LAUNCHER_CONFIG_H_

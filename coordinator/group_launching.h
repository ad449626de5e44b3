// Keeps worker groups running for the sweeps that have work, through a cluster::Launcher
// (local mpirun or Slurm), as the coordinator's `[launcher]` config asks. It reads the sweeps'
// progress from the Core (the same status document `sd2ctl status` gets) and drives a
// cluster::GroupKeeper: `groups` groups per sweep with queued or running trials, none for a
// sweep that is done (its idle groups exit by themselves with `idle_exit`).
//
//   SweepGroups groups(&core, config, &launcher, server.endpoint());
//   // on the coordinator's thread, every tick:
//   groups.Tick();
//
// Not thread-safe: call from the thread that owns the Core.
#ifndef SD2_COORDINATOR_GROUP_LAUNCHING_H_
#define SD2_COORDINATOR_GROUP_LAUNCHING_H_

#include <chrono>
#include <functional>
#include <ostream>
#include <set>
#include <string>

#include "cluster/group_keeper.h"
#include "cluster/launcher_config.h"
#include "coordinator/core.h"

namespace sd2::coordinator {

class SweepGroups {
 public:
  // `core` and `launcher` must outlive this object. `log` receives one line per launch event.
  // `poller` (a second launcher with its own CommandRunner; Slurm) moves the groups' state
  // queries off the caller's thread (cluster::GroupKeeper), so Tick never blocks on squeue.
  SweepGroups(Core* core, const cluster::LauncherConfig& config, cluster::Launcher* launcher,
              std::string endpoint, std::ostream* log,
              cluster::GroupKeeper::Clock clock = std::chrono::steady_clock::now,
              cluster::Launcher* poller = nullptr);

  // Reads the sweeps' state (at most once per `period`), sets the keeper's targets and ticks
  // it. Returns the sweep keys that currently want groups.
  std::set<std::string> Tick();

 private:
  Core* core_;
  cluster::LauncherConfig config_;
  cluster::GroupKeeper keeper_;
  std::string endpoint_;
  std::ostream* log_;
  cluster::GroupKeeper::Clock clock_;
  std::chrono::steady_clock::time_point next_check_{};
  std::set<std::string> active_;
};

}  // namespace sd2::coordinator

#endif  // SD2_COORDINATOR_GROUP_LAUNCHING_H_

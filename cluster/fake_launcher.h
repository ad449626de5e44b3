// FakeLauncher: an in-memory Launcher for tests of the coordinator and GroupKeeper. Launched
// groups start kPending; the test moves them with SetState, makes launches fail with
// FailNextLaunches, and inspects what was launched and cancelled.
//
//   FakeLauncher fake;
//   GroupKeeper keeper(&fake, {}, [&] { return now; });
//   keeper.SetTarget("sweep-1", spec, 2);
//   keeper.Tick();                                     // launches fake-0, fake-1
//   fake.SetState(fake.launches()[0].handle, LaunchState::kPreempted);
#ifndef SD2_CLUSTER_FAKE_LAUNCHER_H_
#define SD2_CLUSTER_FAKE_LAUNCHER_H_

#include <map>
#include <vector>

#include "cluster/launcher.h"

namespace sd2::cluster {

class FakeLauncher : public Launcher {
 public:
  struct Launched {
    LaunchHandle handle;
    GroupSpec spec;
  };

  // Handles are {"fake", "fake-N"}, N counting from 0.
  StatusOr<LaunchHandle> Launch(const GroupSpec& spec) override;
  // NotFound for a handle this launcher never gave out.
  StatusOr<LaunchState> Poll(const LaunchHandle& handle) override;
  // Marks the group kFailed and records the cancel.
  Status Cancel(const LaunchHandle& handle) override;

  // Sets a group's state; NotFound for an unknown handle.
  Status SetState(const LaunchHandle& handle, LaunchState state);
  // The next `n` launches fail with `status` (not ok).
  void FailNextLaunches(int n, Status status);
  // The next Poll of `handle` fails with `status`, once.
  void FailNextPoll(const LaunchHandle& handle, Status status);
  // Forgets a group, as if the cluster lost every record of it (Poll then says NotFound).
  void Forget(const LaunchHandle& handle);

  const std::vector<Launched>& launches() const { return launches_; }
  const std::vector<LaunchHandle>& cancelled() const { return cancelled_; }
  // Handles of groups that are pending or running.
  std::vector<LaunchHandle> Active() const;

 private:
  std::vector<Launched> launches_;
  std::vector<LaunchHandle> cancelled_;
  std::map<LaunchHandle, LaunchState> states_;
  std::map<LaunchHandle, Status> poll_failures_;
  int fail_launches_ = 0;
  Status launch_failure_;
};

}  // namespace sd2::cluster

#endif  // SD2_CLUSTER_FAKE_LAUNCHER_H_

#include "cluster/fake_launcher.h"

#include <utility>

namespace sd2::cluster {

StatusOr<LaunchHandle> FakeLauncher::Launch(const GroupSpec& spec) {
  SD2_RETURN_IF_ERROR(ValidateGroupSpec(spec));
  if (fail_launches_ > 0) {
    --fail_launches_;
    return launch_failure_;
  }
  LaunchHandle h{"fake", "fake-" + std::to_string(launches_.size())};
  launches_.push_back({h, spec});
  states_[h] = LaunchState::kPending;
  return h;
}

StatusOr<LaunchState> FakeLauncher::Poll(const LaunchHandle& handle) {
  if (auto f = poll_failures_.find(handle); f != poll_failures_.end()) {
    Status s = f->second;
    poll_failures_.erase(f);
    return s;
  }
  auto it = states_.find(handle);
  if (it == states_.end()) return NotFoundError("fake launcher: unknown group " + handle.id);
  return it->second;
}

Status FakeLauncher::Cancel(const LaunchHandle& handle) {
  auto it = states_.find(handle);
  if (it == states_.end()) return NotFoundError("fake launcher: unknown group " + handle.id);
  cancelled_.push_back(handle);
  if (!IsTerminal(it->second)) it->second = LaunchState::kFailed;
  return OkStatus();
}

Status FakeLauncher::SetState(const LaunchHandle& handle, LaunchState state) {
  auto it = states_.find(handle);
  if (it == states_.end()) return NotFoundError("fake launcher: unknown group " + handle.id);
  it->second = state;
  return OkStatus();
}

void FakeLauncher::FailNextLaunches(int n, Status status) {
  fail_launches_ = n;
  launch_failure_ = std::move(status);
}

void FakeLauncher::FailNextPoll(const LaunchHandle& handle, Status status) {
  poll_failures_[handle] = std::move(status);
}

void FakeLauncher::Forget(const LaunchHandle& handle) { states_.erase(handle); }

std::vector<LaunchHandle> FakeLauncher::Active() const {
  std::vector<LaunchHandle> out;
  for (const auto& [h, s] : states_) {
    if (!IsTerminal(s)) out.push_back(h);
  }
  return out;
}

}  // namespace sd2::cluster

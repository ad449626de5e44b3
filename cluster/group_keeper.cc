#include "cluster/group_keeper.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

namespace sd2::cluster {

// The poller's thread: takes one request (all live handles) at a time, answers it with one
// PollMany, and leaves the answer for the next Tick.
struct GroupKeeper::AsyncPoll {
  explicit AsyncPoll(Launcher* p) : poller(p), thread([this] { Loop(); }) {}
  ~AsyncPoll() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }
  void Loop() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [this] { return stop || request.has_value(); });
      if (stop) return;
      std::vector<LaunchHandle> handles = std::move(*request);
      request.reset();
      lock.unlock();
      auto states = poller->PollMany(handles);
      lock.lock();
      answer = std::move(states);
      busy = false;
    }
  }

  Launcher* poller;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::optional<std::vector<LaunchHandle>> request;
  std::optional<std::map<LaunchHandle, StatusOr<LaunchState>>> answer;
  bool busy = false;
  bool stop = false;
  int64_t started = 0;
  std::chrono::steady_clock::time_point next_at{};
  std::thread thread;  // last: starts after the members above exist
};

const char* KeeperEventKindName(KeeperEvent::Kind k) {
  switch (k) {
    case KeeperEvent::Kind::kLaunched:
      return "launched";
    case KeeperEvent::Kind::kRunning:
      return "running";
    case KeeperEvent::Kind::kDone:
      return "done";
    case KeeperEvent::Kind::kFailed:
      return "failed";
    case KeeperEvent::Kind::kPreempted:
      return "preempted";
    case KeeperEvent::Kind::kLaunchError:
      return "launch_error";
    case KeeperEvent::Kind::kPollError:
      return "poll_error";
    case KeeperEvent::Kind::kGaveUp:
      return "gave_up";
  }
  return "?";
}

GroupKeeper::GroupKeeper(Launcher* launcher, KeeperOptions options, Clock clock, Launcher* poller)
    : launcher_(launcher), options_(options), clock_(std::move(clock)) {
  if (poller) async_ = std::make_unique<AsyncPoll>(poller);
}

GroupKeeper::~GroupKeeper() = default;

bool GroupKeeper::PollInFlight() const {
  if (!async_) return false;
  std::lock_guard<std::mutex> lock(async_->mu);
  return async_->busy;
}

int64_t GroupKeeper::PollsStarted() const {
  if (!async_) return 0;
  std::lock_guard<std::mutex> lock(async_->mu);
  return async_->started;
}

Status GroupKeeper::SetTarget(const std::string& key, const GroupSpec& spec, int count) {
  if (count < 0) return InvalidArgumentError("group keeper: negative group count for " + key);
  SD2_RETURN_IF_ERROR(ValidateGroupSpec(spec));
  Target& t = targets_[key];
  t.spec = spec;
  t.count = count;
  t.consecutive_failures = 0;
  t.gave_up = false;
  t.next_launch_at = {};
  return OkStatus();
}

void GroupKeeper::NoteFailure(const std::string& key, Target& t, std::vector<KeeperEvent>& events) {
  ++t.consecutive_failures;
  double factor = std::pow(options_.backoff_factor, t.consecutive_failures - 1);
  double ms = std::min(double(options_.max_backoff.count()),
                       double(options_.initial_backoff.count()) * factor);
  t.next_launch_at = clock_() + std::chrono::milliseconds(int64_t(ms));
  if (options_.max_consecutive_failures > 0 &&
      t.consecutive_failures >= options_.max_consecutive_failures && !t.gave_up) {
    t.gave_up = true;
    events.push_back({KeeperEvent::Kind::kGaveUp,
                      key,
                      {},
                      std::to_string(t.consecutive_failures) + " consecutive failures"});
  }
}

std::vector<KeeperEvent> GroupKeeper::Tick() {
  std::vector<KeeperEvent> events;
  // With a poller, the latest answer (if one arrived since the last Tick) is this Tick's view.
  std::map<LaunchHandle, StatusOr<LaunchState>> answer;
  if (async_) {
    std::lock_guard<std::mutex> lock(async_->mu);
    if (async_->answer) {
      answer = std::move(*async_->answer);
      async_->answer.reset();
    }
  }
  for (auto& [key, t] : targets_) {
    // 1. Poll what is alive.
    std::vector<Group> alive;
    for (Group& g : t.groups) {
      auto known = answer.find(g.handle);
      if (async_ && known == answer.end()) {
        alive.push_back(g);  // not asked yet, or no answer since: unchanged
        continue;
      }
      StatusOr<LaunchState> s = async_ ? known->second : launcher_->Poll(g.handle);
      if (!s.ok()) {
        if (s.status().code() == StatusCode::kNotFound) {
          // The cluster has no record of it any more: count it as failed.
          events.push_back({KeeperEvent::Kind::kFailed, key, g.handle, s.status().ToString()});
          NoteFailure(key, t, events);
        } else {
          events.push_back({KeeperEvent::Kind::kPollError, key, g.handle, s.status().ToString()});
          alive.push_back(g);
        }
        continue;
      }
      LaunchState prev = g.state;
      g.state = *s;
      switch (g.state) {
        case LaunchState::kPending:
          alive.push_back(g);
          break;
        case LaunchState::kRunning:
          if (prev != LaunchState::kRunning) {
            events.push_back({KeeperEvent::Kind::kRunning, key, g.handle, ""});
            t.consecutive_failures = 0;
          }
          alive.push_back(g);
          break;
        case LaunchState::kDone:
          events.push_back({KeeperEvent::Kind::kDone, key, g.handle, ""});
          break;
        case LaunchState::kPreempted:
          events.push_back({KeeperEvent::Kind::kPreempted, key, g.handle, ""});
          break;
        case LaunchState::kFailed:
          events.push_back({KeeperEvent::Kind::kFailed, key, g.handle, ""});
          NoteFailure(key, t, events);
          break;
      }
    }
    t.groups = std::move(alive);

    // 2. Launch what is missing, unless backing off or given up.
    int missing = t.count - int(t.groups.size());
    if (missing <= 0 || t.gave_up || clock_() < t.next_launch_at) continue;
    StatusOr<std::vector<LaunchHandle>> launched = launcher_->LaunchMany(t.spec, missing);
    if (!launched.ok()) {
      events.push_back({KeeperEvent::Kind::kLaunchError, key, {}, launched.status().ToString()});
      NoteFailure(key, t, events);
      continue;
    }
    for (const LaunchHandle& h : *launched) {
      t.groups.push_back({h, LaunchState::kPending});
      events.push_back({KeeperEvent::Kind::kLaunched, key, h, ""});
    }
  }
  // 3. Ask for the states of every live group, unless a query runs or one started recently.
  if (async_) {
    std::vector<LaunchHandle> handles;
    for (const auto& [key, t] : targets_) {
      for (const Group& g : t.groups) handles.push_back(g.handle);
    }
    const auto now = clock_();
    std::lock_guard<std::mutex> lock(async_->mu);
    if (!handles.empty() && !async_->busy && now >= async_->next_at) {
      async_->request = std::move(handles);
      async_->busy = true;
      async_->started++;
      async_->next_at = now + options_.poll_period;
      async_->cv.notify_one();
    }
  }
  return events;
}

Status GroupKeeper::Stop(const std::string& key) {
  auto it = targets_.find(key);
  if (it == targets_.end()) return NotFoundError("group keeper: no target " + key);
  Status first;
  for (const Group& g : it->second.groups) {
    Status s = launcher_->Cancel(g.handle);
    if (!s.ok() && first.ok()) first = s;
  }
  it->second.groups.clear();
  it->second.count = 0;
  return first;
}

Status GroupKeeper::StopAll() {
  Status first;
  for (auto& [key, t] : targets_) {
    Status s = Stop(key);
    if (!s.ok() && first.ok()) first = s;
  }
  return first;
}

int GroupKeeper::Live(const std::string& key) const {
  auto it = targets_.find(key);
  return it == targets_.end() ? 0 : int(it->second.groups.size());
}

int GroupKeeper::Running(const std::string& key) const {
  auto it = targets_.find(key);
  if (it == targets_.end()) return 0;
  return int(std::count_if(it->second.groups.begin(), it->second.groups.end(),
                           [](const Group& g) { return g.state == LaunchState::kRunning; }));
}

bool GroupKeeper::GaveUp(const std::string& key) const {
  auto it = targets_.find(key);
  return it != targets_.end() && it->second.gave_up;
}

std::chrono::steady_clock::time_point GroupKeeper::NextLaunchAt(const std::string& key) const {
  auto it = targets_.find(key);
  return it == targets_.end() ? std::chrono::steady_clock::time_point{} : it->second.next_launch_at;
}

std::vector<LaunchHandle> GroupKeeper::Handles(const std::string& key) const {
  std::vector<LaunchHandle> out;
  auto it = targets_.find(key);
  if (it == targets_.end()) return out;
  for (const Group& g : it->second.groups) out.push_back(g.handle);
  return out;
}

}  // namespace sd2::cluster

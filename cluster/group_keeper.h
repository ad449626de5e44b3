// GroupKeeper: keeps K worker groups of a given shape alive for each sweep (or any key the
// coordinator picks). Each Tick polls the live groups through the Launcher, forgets the ones
// that ended, and launches replacements. Failures (a group that failed, a launch the cluster
// refused) back off exponentially per key; a preempted or finished group is replaced at once.
// Time comes from a clock function, so tests drive back-off with a fake clock.
//
// With a `poller` (a second Launcher of the same kind with its own CommandRunner), Tick never
// waits for the cluster: the states of all live groups are asked in one batched query
// (Launcher::PollMany; for Slurm one `squeue -j a,b,c`) on the keeper's own thread, at most
// once per `poll_period`, and each Tick acts on the latest answer that has arrived. Groups the
// answer does not cover (launched after the query started) keep their last state.
//
//   GroupKeeper keeper(&slurm_launcher, KeeperOptions{}, [] { return
//   std::chrono::steady_clock::now(); }); SD2_RETURN_IF_ERROR(keeper.SetTarget("sweep-7", spec,
//   /*count=*/4));
//   // on a timer in the coordinator's io_context:
//   SD2_ASSIGN_OR_RETURN(std::vector<KeeperEvent> events, keeper.Tick());
//   // when the sweep has no trials left:
//   keeper.SetTarget("sweep-7", spec, 0);   // or keeper.Stop("sweep-7") to cancel its groups
#ifndef SD2_CLUSTER_GROUP_KEEPER_H_
#define SD2_CLUSTER_GROUP_KEEPER_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster/launcher.h"

namespace sd2::cluster {

struct KeeperOptions {
  // Wait before relaunching after the first failure; doubles (backoff_factor) per consecutive
  // failure up to max_backoff. A group that reaches running resets the count.
  std::chrono::milliseconds initial_backoff{std::chrono::seconds(5)};
  std::chrono::milliseconds max_backoff{std::chrono::minutes(5)};
  double backoff_factor = 2.0;
  // After this many consecutive failures the key is given up (no more launches) until
  // SetTarget is called again. 0: never give up.
  int max_consecutive_failures = 10;
  // With a poller: the least time between the starts of two state queries.
  std::chrono::milliseconds poll_period{std::chrono::seconds(5)};
};

// What a Tick did, for the coordinator's event log.
struct KeeperEvent {
  enum class Kind {
    kLaunched,
    kRunning,
    kDone,
    kFailed,
    kPreempted,
    kLaunchError,
    kPollError,
    kGaveUp
  };
  Kind kind;
  std::string key;
  LaunchHandle handle;  // empty for kLaunchError and kGaveUp
  std::string detail;   // error text
};
const char* KeeperEventKindName(KeeperEvent::Kind k);

// Not thread-safe: call from the coordinator's one thread (the poller runs on the keeper's own
// thread and touches nothing else).
class GroupKeeper {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `launcher` (and `poller`) must outlive the keeper. Without `poller`, Tick polls each group
  // through `launcher` inline (fine for LocalMpirunLauncher, whose Poll is a waitpid(WNOHANG)).
  GroupKeeper(Launcher* launcher, KeeperOptions options, Clock clock, Launcher* poller = nullptr);
  // Waits for a query in flight to return (the CommandRunner's timeout bounds it).
  ~GroupKeeper();
  GroupKeeper(const GroupKeeper&) = delete;
  GroupKeeper& operator=(const GroupKeeper&) = delete;

  // Keep `count` groups of `spec` alive under `key`. Lowering the count does not cancel live
  // groups (their workers exit when idle); raising it launches on the next Tick. Resets the
  // key's back-off and give-up state. InvalidArgument for a bad spec or count < 0.
  Status SetTarget(const std::string& key, const GroupSpec& spec, int count);
  // Polls, forgets ended groups, launches what is missing. Returns what happened. Errors from
  // Poll and Launch become events, not a failed Tick.
  std::vector<KeeperEvent> Tick();
  // Cancels every live group of `key` and sets its target to 0.
  Status Stop(const std::string& key);
  Status StopAll();

  int Live(const std::string& key) const;     // pending or running groups of key
  int Running(const std::string& key) const;  // running groups of key
  bool GaveUp(const std::string& key) const;
  // When the key may launch next (now or earlier when not backing off).
  std::chrono::steady_clock::time_point NextLaunchAt(const std::string& key) const;
  std::vector<LaunchHandle> Handles(const std::string& key) const;
  // With a poller: whether a state query is running now, and how many were started.
  bool PollInFlight() const;
  int64_t PollsStarted() const;

 private:
  struct AsyncPoll;
  struct Group {
    LaunchHandle handle;
    LaunchState state = LaunchState::kPending;
  };
  struct Target {
    GroupSpec spec;
    int count = 0;
    std::vector<Group> groups;
    int consecutive_failures = 0;
    bool gave_up = false;
    std::chrono::steady_clock::time_point next_launch_at{};
  };
  void NoteFailure(const std::string& key, Target& t, std::vector<KeeperEvent>& events);

  Launcher* launcher_;
  KeeperOptions options_;
  Clock clock_;
  std::map<std::string, Target> targets_;
  std::unique_ptr<AsyncPoll> async_;  // null without a poller
};

}  // namespace sd2::cluster

#endif  // SD2_CLUSTER_GROUP_KEEPER_H_

// The coordinator's state machine, with no I/O besides the Store and a Clock: submit, lease,
// heartbeat, metrics/scores/checkpoints, result, lease expiry, retry with back-off, cancel,
// resume, dedupe and reconnect with a stale lease. It is driven by decoded protocol messages
// (common/protocol.h) and returns encoded replies; the ZeroMQ + Boost.Asio shell
// (coordinator/server.h) and unit tests (with FakeClock and direct calls) drive it alike.
//
// Every state change is committed to the Store before Handle returns its reply; Recover()
// rebuilds the queues from the database after a restart (leases held by running attempts are
// renewed to now + lease_s so reconnecting groups keep them).
//
//   sd2::coordinator::FakeClock clock(1000);
//   sd2::coordinator::Core core(store.get(), &clock, {});
//   SD2_RETURN_IF_ERROR(core.Recover());
//   std::string reply = core.HandleBytes(request_bytes);
//   core.Tick();  // expire leases (call every lease_s / 10 or so)
//
// Thread-safety: none; one thread (the coordinator's io_context) owns a Core.
#ifndef SD2_COORDINATOR_CORE_H_
#define SD2_COORDINATOR_CORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/protocol.h"
#include "common/status.h"
#include "storage/store.h"

namespace sd2::coordinator {

// Two clocks: Now() is wall time (what the store records: created_at, not_before, events),
// Monotonic() never jumps and is what lease deadlines in memory are measured on, so setting
// the system clock (NTP step, an operator's `date -s`) neither expires nor extends leases.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual double Now() = 0;        // seconds (Unix time for the system clock)
  virtual double Monotonic() = 0;  // seconds since an arbitrary start (steady_clock)
};

class SystemClock : public Clock {
 public:
  double Now() override;
  double Monotonic() override;
};

// Advance moves both clocks; JumpWall moves only the wall clock (a clock step).
class FakeClock : public Clock {
 public:
  explicit FakeClock(double t = 1000) : t_(t) {}
  double Now() override { return t_ + wall_offset_; }
  double Monotonic() override { return t_; }
  void Advance(double s) { t_ += s; }
  void JumpWall(double s) { wall_offset_ += s; }

 private:
  double t_;
  double wall_offset_ = 0;
};

struct CoreOptions {
  double lease_s = 10;        // a lease not renewed for this long expires
  double heartbeat_s = 1;     // told to groups at registration
  double backoff_base_s = 1;  // retry n waits base * 2^(n-1), at most backoff_max_s
  double backoff_max_s = 60;
  double group_gone_s = 30;      // a group silent this long is shown as gone
  double no_work_retry_s = 0.5;  // told to idle groups
  std::string code_version;      // informational
  // Recover() ends attempts that held leases as `preempted` instead of keeping their leases:
  // for the mpirun sweep launch, whose previous groups died with the previous job.
  bool expire_leases_on_recover = false;
};

// A queued trial as the scheduling policy sees it.
struct QueuedTrial {
  int64_t id = 0;
  int priority = 0;
  int ranks = 1;          // minimum group size
  int gpus_per_rank = 0;  // > 0 needs a cuda group
  double not_before = 0;
  int64_t depends_on = 0;  // 0: none
};

struct GroupState {
  std::string id;
  std::string host;
  int size = 1;
  std::string devices = "cpu";
  std::string version;
  std::string git_commit;
  std::string versions_json;
  std::vector<protocol::RankPlace> ranks;  // each rank's host and device, when the group said
  protocol::SlurmIds slurm;                // the group's Slurm job ("" outside Slurm)
  double last_seen = 0;
  int64_t attempt_id = 0;  // 0: idle
};

// Picks the next trial for a free group. The core offers trials in queue order (priority,
// then FIFO: submit order across sweeps) that are due and whose dependency succeeded.
class SchedulingPolicy {
 public:
  virtual ~SchedulingPolicy() = default;
  virtual bool Fits(const GroupState& group, const QueuedTrial& trial) const = 0;
};

// Gang fit: the whole group runs the trial; the trial needs at least `ranks` ranks and, when
// it asks for GPUs, a cuda group.
class FirstFitPolicy : public SchedulingPolicy {
 public:
  bool Fits(const GroupState& group, const QueuedTrial& trial) const override;
};

// What an attempt records of where it ran (storage AttemptRow host, devices): the distinct
// hosts of the group's ranks in rank order, comma-separated (the group's host when it sent no
// ranks), and each rank's device in rank order (the group's `devices` when it sent no ranks).
std::string AttemptHosts(const GroupState& g);
std::string AttemptDevices(const GroupState& g);

// Why a queued trial does not run now, for `sd2ctl status`: "retry back-off (4 s left)",
// "waits for trial KEY (running)", "needs cuda groups; 2 cpu groups registered",
// "waits for a free group (1 fitting group busy)", or "ready: a fitting group is idle".
// `groups` are the live (not gone) groups; `dependency` is the key and state of the trial it
// depends on ("" when none or succeeded).
std::string WaitReason(const QueuedTrial& trial, const std::vector<const GroupState*>& groups,
                       const SchedulingPolicy& policy, double now,
                       const std::string& dependency = "");

struct CoreCounters {
  int64_t messages = 0;
  int64_t malformed = 0;  // undecodable or invalid messages (each got an error reply)
  int64_t errors = 0;     // requests answered with an error for any reason
  int64_t leases_granted = 0;
  int64_t leases_expired = 0;
  int64_t metric_rows = 0;
  int64_t score_rows = 0;
};

class Core {
 public:
  Core(storage::Store* store, Clock* clock, CoreOptions options,
       std::unique_ptr<SchedulingPolicy> policy = nullptr);

  // Loads queues, leases and sweeps from the store. Call once before handling messages.
  Status Recover();

  // Decodes, validates and handles one request; always returns an encoded reply (an `error`
  // reply for malformed or failing requests). `max_bytes` bounds the request size.
  std::string HandleBytes(std::string_view bytes,
                          size_t max_bytes = protocol::kDefaultMaxMessageBytes);
  std::string Handle(const protocol::Message& msg);

  // Expires leases past their deadline (attempt lost; trial re-queued or failed), fails
  // trials whose dependency failed. Returns the number of leases expired.
  int Tick();

  // True once a `shutdown` request was handled.
  bool shutdown_requested() const { return shutdown_requested_; }
  // Set when a store write failed with SQLITE_FULL: from then on submit and lease requests
  // are refused with this error (committed state is kept; reads and cancels still work).
  const Status& disk_full() const { return disk_full_; }
  // Nothing queued and nothing running.
  bool Drained() const { return queue_.empty() && leases_.empty(); }
  const CoreCounters& counters() const { return counters_; }
  // The status document of `sd2ctl status --json` (sweep 0: all sweeps).
  StatusOr<nlohmann::json> StatusJson(int64_t sweep);

 private:
  struct Lease {
    int64_t attempt_id = 0;
    int64_t trial_id = 0;
    int number = 0;
    std::string trial_key;
    std::string group;
    double expires_at = 0;  // on clock_->Monotonic()
    bool running = false;
  };
  struct TrialInfo {
    std::string key;
    std::string state;
    int attempts = 0;
    int max_attempts = 3;
    int failures = 0;  // failed or lost attempts
    std::vector<int64_t> sweeps;
  };
  using QueueKey = std::tuple<int, int64_t>;  // (-priority, trial id)

  StatusOr<std::string> Dispatch(const protocol::Message& msg);
  StatusOr<std::string> OnRegister(const protocol::Register& m);
  StatusOr<std::string> OnLeaseRequest(const protocol::LeaseRequest& m);
  StatusOr<std::string> OnHeartbeat(const protocol::Heartbeat& m);
  StatusOr<std::string> OnMetrics(protocol::MetricsBatch& m);
  StatusOr<std::string> OnScores(protocol::ScoresBatch& m);
  StatusOr<std::string> OnCheckpoint(const protocol::CheckpointRecord& m);
  StatusOr<std::string> OnResult(const protocol::Result& m);
  StatusOr<std::string> OnSubmit(const protocol::Submit& m);
  StatusOr<std::string> OnCancel(const protocol::Cancel& m);
  StatusOr<std::string> OnResume(const protocol::Resume& m);
  StatusOr<std::string> OnLogs(const protocol::Logs& m);

  StatusOr<std::string> GrantFor(GroupState& g, const Lease& lease);
  // Attempt id for data messages: an active lease or a succeeded attempt (idempotent
  // resends); an attempt that lost its lease is refused with Aborted, and so is data that
  // names another group than the attempt's (`group` empty: the sender did not say, accepted
  // only while the lease is active).
  StatusOr<int64_t> DataAttempt(const std::string& key, int64_t attempt, const std::string& group);
  Lease* FindLease(const std::string& key, int64_t attempt);
  // Ends an active attempt (in a transaction the caller opened) and moves its trial on:
  // outcome succeeded | failed | lost | cancelled | preempted.
  Status EndAttempt(const Lease& lease, const std::string& outcome, const std::string& error,
                    const nlohmann::json& variant, std::vector<std::function<void()>>* after);
  // Marks a trial terminal in memory and closes sweeps that have nothing left.
  Status FinishTrialInSweeps(int64_t trial_id, std::vector<std::function<void()>>* after);
  Status Event(const std::string& kind, std::optional<int64_t> sweep, std::optional<int64_t> trial,
               std::optional<int64_t> attempt, const std::string& message);
  void Enqueue(const storage::TrialRow& t);
  static QueuedTrial ToQueued(const storage::TrialRow& t);
  bool IsTerminal(const std::string& state) const {
    return state == "succeeded" || state == "failed" || state == "cancelled";
  }

  storage::Store* store_;
  Clock* clock_;
  CoreOptions options_;
  std::unique_ptr<SchedulingPolicy> policy_;
  CoreCounters counters_;
  bool shutdown_requested_ = false;
  Status disk_full_;

  std::map<int64_t, TrialInfo> trials_;  // every trial
  std::map<std::string, int64_t> trial_by_key_;
  std::map<QueueKey, QueuedTrial> queue_;      // queued trials in scheduling order
  std::map<int64_t, Lease> leases_;            // by attempt id
  std::map<int64_t, int64_t> lease_by_trial_;  // trial id -> attempt id
  std::map<std::string, GroupState> groups_;
  std::map<int64_t, std::set<int64_t>> sweep_pending_;  // active sweep -> unfinished trials
};

}  // namespace sd2::coordinator

#endif  // SD2_COORDINATOR_CORE_H_

// The SQLite store: sweeps, trials, attempts, metrics, per-sample scores, checkpoints, groups
// and events (schema in storage/schema.sql, explained in docs/storage.md). The coordinator is
// its only writer; readers (results/, sd2ctl) open the same file read-only.
//
// Opening applies the versioned migrations (PRAGMA user_version), turns on WAL, a busy
// timeout and foreign keys. Every write goes through prepared statements; group several writes
// into one atomic, committed transaction with InTransaction.
//
//   SD2_ASSIGN_OR_RETURN(auto store, sd2::storage::Store::Open("/tmp/sd2.db"));
//   SD2_RETURN_IF_ERROR(store->InTransaction([&]() -> sd2::Status {
//     SD2_ASSIGN_OR_RETURN(int64_t sweep, store->InsertSweep(row));
//     ...
//     return sd2::OkStatus();
//   }));
//
// Thread-safety: a Store is used by one thread at a time (the coordinator's io_context).
#ifndef SD2_STORAGE_STORE_H_
#define SD2_STORAGE_STORE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace sd2::storage {

// The newest schema version this build knows (PRAGMA user_version after Open).
inline constexpr int kSchemaVersion = 3;

struct StoreOptions {
  bool read_only = false;
  // "NORMAL" survives process crashes (SIGKILL) in WAL mode; "FULL" also power loss.
  std::string synchronous = "NORMAL";
  int busy_timeout_ms = 5000;
  // Called once each time a statement finds the database locked by another connection and
  // starts waiting (up to busy_timeout_ms) for it: for logs, and tests that sequence two
  // connections.
  std::function<void()> on_busy;
};

struct SweepRow {
  int64_t id = 0;
  std::string name;
  std::string spec_path;
  std::string spec_toml;
  int priority = 0;
  std::string state = "active";  // active | done | cancelled
  double created_at = 0;
};

struct TrialRow {
  int64_t id = 0;
  std::string trial_key;
  std::string method;
  int64_t scale = 0;
  int64_t seed = 0;
  std::string config_json;
  std::string resources_json = "{}";  // {"ranks": N, "gpus_per_rank": G} (migration 2)
  std::string label;                  // (migration 2)
  int priority = 0;
  std::string state = "queued";  // queued | running | succeeded | failed | cancelled
  int attempts = 0;
  int max_attempts = 3;
  double not_before = 0;
  std::optional<int64_t> depends_on;
  std::string last_error;
  double created_at = 0;
  double updated_at = 0;
};

struct AttemptRow {
  int64_t id = 0;
  int64_t trial_id = 0;
  int number = 0;
  // queued | leased | running | succeeded | failed | lost | preempted | cancelled
  std::string state = "leased";
  std::string group_id;
  std::string host;
  std::string git_commit;
  std::string versions_json;
  std::string variant_json;
  std::optional<double> lease_expires_at;
  double created_at = 0;
  std::optional<double> started_at;
  std::optional<double> ended_at;
  std::string error;
  // (migration 3) Each rank's device in rank order, comma-separated ("cuda:0,cuda:1"; "cpu"
  // when the group did not say), and the Slurm job of the group ("" outside Slurm).
  std::string devices;
  std::string slurm_job_id;
  std::string slurm_array_job_id;
  std::string slurm_array_task_id;
};

struct MetricRow {
  int64_t seq = 0;
  int64_t step = 0;
  std::string name;
  double value = 0;
  double wall_time = 0;
};

struct ScoreRow {
  std::string sample_id;
  std::string video_id;
  int label = 0;  // 1 = fake
  std::string type;
  double score = 0;
};

struct CheckpointRow {
  int64_t id = 0;
  int64_t attempt_id = 0;
  int64_t step = 0;
  std::string path;
  std::string digest;
  double created_at = 0;
};

struct GroupRow {
  std::string id;
  std::string host;
  int size = 1;
  std::string devices = "cpu";
  std::string version;
  std::string state = "idle";
  double last_seen = 0;
};

struct EventRow {
  int64_t id = 0;
  double time = 0;
  std::string kind;
  std::optional<int64_t> sweep_id;
  std::optional<int64_t> trial_id;
  std::optional<int64_t> attempt_id;
  std::string message;
};

// Per-sweep trial counts as `sd2ctl status` shows them.
struct SweepCounts {
  int64_t total = 0, queued = 0, running = 0, succeeded = 0, failed = 0, reused = 0, cancelled = 0;
};

class Store {
 public:
  // Opens (creating when absent, unless read_only) and migrates to kSchemaVersion.
  // A database from a newer build (user_version > kSchemaVersion) is refused.
  static StatusOr<std::unique_ptr<Store>> Open(const std::string& path,
                                               const StoreOptions& options = {});
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int SchemaVersion();

  // Runs `fn` inside BEGIN IMMEDIATE ... COMMIT; rolls back when it returns an error.
  // Nested calls join the outer transaction.
  Status InTransaction(const std::function<Status()>& fn);

  // Sweeps.
  StatusOr<int64_t> InsertSweep(const SweepRow& row);
  StatusOr<SweepRow> GetSweep(int64_t id);
  StatusOr<std::vector<SweepRow>> ListSweeps();
  Status SetSweepState(int64_t id, const std::string& state);
  Status LinkSweepTrial(int64_t sweep_id, int64_t trial_id, int ordinal, bool reused);
  // Trial ids of a sweep in expansion order.
  StatusOr<std::vector<int64_t>> SweepTrialIds(int64_t sweep_id);
  StatusOr<SweepCounts> CountSweep(int64_t sweep_id);
  // Sweeps (active ones) that contain the trial.
  StatusOr<std::vector<int64_t>> SweepsOfTrial(int64_t trial_id);

  // Trials.
  StatusOr<int64_t> InsertTrial(const TrialRow& row);
  StatusOr<std::optional<TrialRow>> FindTrialByKey(const std::string& key);
  StatusOr<TrialRow> GetTrial(int64_t id);
  // All trials, or those in `state` when not empty; ordered by id.
  StatusOr<std::vector<TrialRow>> ListTrials(const std::string& state = "");
  // Writes state, priority, attempts, max_attempts, not_before, last_error, updated_at.
  Status UpdateTrial(const TrialRow& row);

  // Attempts.
  StatusOr<int64_t> InsertAttempt(const AttemptRow& row);
  StatusOr<AttemptRow> GetAttempt(int64_t id);
  StatusOr<std::optional<AttemptRow>> FindAttempt(int64_t trial_id, int number);
  StatusOr<std::vector<AttemptRow>> ListAttempts(int64_t trial_id);
  StatusOr<std::vector<AttemptRow>> ListAttemptsInState(const std::string& state);
  // Writes every mutable field (state, group, host, versions, variant, lease, times, error,
  // devices, Slurm ids).
  Status UpdateAttempt(const AttemptRow& row);

  // Idempotent: rows whose (attempt, seq) exist are skipped. Returns the number inserted.
  StatusOr<int64_t> InsertMetrics(int64_t attempt_id, const std::vector<MetricRow>& rows);
  StatusOr<std::vector<MetricRow>> ListMetrics(int64_t attempt_id);
  // Idempotent on (attempt, eval_set, sample_id). Returns the number inserted.
  StatusOr<int64_t> InsertScores(int64_t attempt_id, const std::string& eval_set,
                                 const std::vector<ScoreRow>& rows);
  StatusOr<std::vector<ScoreRow>> ListScores(int64_t attempt_id, const std::string& eval_set);

  // Idempotent on (attempt, step).
  Status InsertCheckpoint(const CheckpointRow& row);
  StatusOr<std::vector<CheckpointRow>> ListCheckpoints(int64_t attempt_id);

  Status UpsertGroup(const GroupRow& row);
  StatusOr<std::vector<GroupRow>> ListGroups();

  Status AddEvent(const EventRow& row);
  // Events of a trial (or all when trial_id is 0), oldest first, at most `limit`.
  StatusOr<std::vector<EventRow>> ListEvents(int64_t trial_id, int limit = 1000);

  // Counts rows of a table (tests, benchmarks, sd2ctl). `table` must be a schema table name.
  StatusOr<int64_t> CountRows(const std::string& table);

  // Runs arbitrary SQL without results (DDL, tests).
  Status Exec(const std::string& sql);

  sqlite3* raw() { return db_; }

 private:
  struct BusyWait {
    int timeout_ms = 0;
    std::function<void()> on_busy;
  };
  explicit Store(sqlite3* db) : db_(db) {}
  // Applies the missing migrations, one transaction each; the schema version is read inside
  // the transaction, so a process that migrated meanwhile is seen, not migrated over.
  Status Migrate();
  static int OnBusy(void* wait, int count);
  StatusOr<sqlite3_stmt*> Prepare(const std::string& sql);

  sqlite3* db_ = nullptr;
  std::map<std::string, sqlite3_stmt*> stmts_;
  int tx_depth_ = 0;
  BusyWait busy_;
};

}  // namespace sd2::storage

#endif  // SD2_STORAGE_STORE_H_

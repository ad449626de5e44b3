#include "storage/store.h"

#include <sqlite3.h>

#include <utility>

#include "storage/schema_sql.h"

namespace sd2::storage {
namespace {

// Migration N brings user_version from N-1 to N. Never edit a shipped migration: add one.
const char* const kMigrations[] = {
    kSchemaV1Sql,
    // 2: resources and label of a trial travel beside the config (not part of the key);
    //    indexes for the scheduler's start-up scan and per-sweep counts.
    "ALTER TABLE trials ADD COLUMN resources_json TEXT NOT NULL DEFAULT '{}';"
    "ALTER TABLE trials ADD COLUMN label TEXT;"
    "CREATE INDEX trials_by_state ON trials(state);"
    "CREATE INDEX sweep_trials_by_trial ON sweep_trials(trial_id);"
    "CREATE INDEX attempts_by_trial ON attempts(trial_id, number);",
    // 3: where an attempt ran: each rank's device, and the Slurm job and array task of its
    //    group (empty outside Slurm). Older rows keep NULL (read as "").
    "ALTER TABLE attempts ADD COLUMN devices TEXT;"
    "ALTER TABLE attempts ADD COLUMN slurm_job_id TEXT;"
    "ALTER TABLE attempts ADD COLUMN slurm_array_job_id TEXT;"
    "ALTER TABLE attempts ADD COLUMN slurm_array_task_id TEXT;",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion);

Status SqlError(sqlite3* db, const std::string& what) {
  int code = sqlite3_errcode(db);
  std::string msg = what + ": " + sqlite3_errmsg(db);
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UnavailableError(msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError(msg);
    case SQLITE_FULL:
      return ResourceExhaustedError(msg);
    case SQLITE_CONSTRAINT:
      return FailedPreconditionError(msg);
    case SQLITE_CANTOPEN:
      return NotFoundError(msg);
    default:
      return InternalError(msg);
  }
}

// Binds and steps one prepared statement; resets it on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, double v) {
    sqlite3_bind_double(s_, i, v);
    return *this;
  }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // Empty strings are stored as NULL (optional text columns).
  Stmt& BindOptText(int i, const std::string& v) {
    if (v.empty()) {
      sqlite3_bind_null(s_, i);
      return *this;
    }
    return Bind(i, v);
  }
  template <typename T>
  Stmt& BindOpt(int i, const std::optional<T>& v) {
    if (!v) {
      sqlite3_bind_null(s_, i);
      return *this;
    }
    return Bind(i, *v);
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false.
  StatusOr<bool> Step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlError(db_, "sqlite step");
  }
  Status Run() {
    SD2_ASSIGN_OR_RETURN(bool row, Step());
    (void)row;
    return OkStatus();
  }
  int64_t Int(int c) { return sqlite3_column_int64(s_, c); }
  double Real(int c) { return sqlite3_column_double(s_, c); }
  bool Null(int c) { return sqlite3_column_type(s_, c) == SQLITE_NULL; }
  std::string Text(int c) {
    const unsigned char* t = sqlite3_column_text(s_, c);
    return t ? std::string(reinterpret_cast<const char*>(t), sqlite3_column_bytes(s_, c)) : "";
  }
  std::optional<int64_t> OptInt(int c) {
    return Null(c) ? std::nullopt : std::optional<int64_t>(Int(c));
  }
  std::optional<double> OptReal(int c) {
    return Null(c) ? std::nullopt : std::optional<double>(Real(c));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
};

#define SD2_STMT(var, sql)                                     \
  SD2_ASSIGN_OR_RETURN(sqlite3_stmt* var##_raw, Prepare(sql)); \
  Stmt var(db_, var##_raw)

const char kTrialColumns[] =
    "id, trial_key, method, scale, seed, config_json, resources_json, label, priority, state, "
    "attempts, max_attempts, not_before, depends_on, last_error, created_at, updated_at";

TrialRow ReadTrial(Stmt& s) {
  TrialRow t;
  t.id = s.Int(0);
  t.trial_key = s.Text(1);
  t.method = s.Text(2);
  t.scale = s.Int(3);
  t.seed = s.Int(4);
  t.config_json = s.Text(5);
  t.resources_json = s.Text(6);
  t.label = s.Text(7);
  t.priority = static_cast<int>(s.Int(8));
  t.state = s.Text(9);
  t.attempts = static_cast<int>(s.Int(10));
  t.max_attempts = static_cast<int>(s.Int(11));
  t.not_before = s.Real(12);
  t.depends_on = s.OptInt(13);
  t.last_error = s.Text(14);
  t.created_at = s.Real(15);
  t.updated_at = s.Real(16);
  return t;
}

const char kAttemptColumns[] =
    "id, trial_id, number, state, group_id, host, git_commit, versions_json, variant_json, "
    "lease_expires_at, created_at, started_at, ended_at, error, devices, slurm_job_id, "
    "slurm_array_job_id, slurm_array_task_id";

AttemptRow ReadAttempt(Stmt& s) {
  AttemptRow a;
  a.id = s.Int(0);
  a.trial_id = s.Int(1);
  a.number = static_cast<int>(s.Int(2));
  a.state = s.Text(3);
  a.group_id = s.Text(4);
  a.host = s.Text(5);
  a.git_commit = s.Text(6);
  a.versions_json = s.Text(7);
  a.variant_json = s.Text(8);
  a.lease_expires_at = s.OptReal(9);
  a.created_at = s.Real(10);
  a.started_at = s.OptReal(11);
  a.ended_at = s.OptReal(12);
  a.error = s.Text(13);
  a.devices = s.Text(14);
  a.slurm_job_id = s.Text(15);
  a.slurm_array_job_id = s.Text(16);
  a.slurm_array_task_id = s.Text(17);
  return a;
}

}  // namespace

StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path, const StoreOptions& options) {
  if (path.empty()) return InvalidArgumentError("store: empty database path");
  if (options.synchronous != "NORMAL" && options.synchronous != "FULL" &&
      options.synchronous != "OFF") {
    return InvalidArgumentError("store: synchronous must be OFF, NORMAL or FULL, not '" +
                                options.synchronous + "'");
  }
  sqlite3* db = nullptr;
  int flags =
      options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = db ? SqlError(db, path) : InternalError(path + ": sqlite3_open_v2 failed");
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<Store> store(new Store(db));
  store->busy_ = {options.busy_timeout_ms, options.on_busy};
  sqlite3_busy_handler(db, &Store::OnBusy, &store->busy_);
  SD2_RETURN_IF_ERROR(store->Exec("PRAGMA foreign_keys = ON"));
  if (!options.read_only) {
    SD2_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode = WAL").WithPrefix(path));
    SD2_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous = " + options.synchronous));
    SD2_RETURN_IF_ERROR(store->Migrate().WithPrefix(path));
  } else {
    int v = store->SchemaVersion();
    if (v < 1) return FailedPreconditionError(path + ": not an sd2 store (user_version 0)");
    if (v > kSchemaVersion) {
      return FailedPreconditionError(path + ": schema version " + std::to_string(v) +
                                     " is newer than this build's " +
                                     std::to_string(kSchemaVersion));
    }
  }
  return store;
}

Store::~Store() {
  for (auto& [sql, s] : stmts_) sqlite3_finalize(s);
  sqlite3_close(db_);
}

int Store::SchemaVersion() {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &s, nullptr) != SQLITE_OK) return -1;
  int v = -1;
  if (sqlite3_step(s) == SQLITE_ROW) v = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return v;
}

Status Store::Exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    Status base = SqlError(db_, "sql");
    return Status(base.code(), "sql error: " + msg);
  }
  return OkStatus();
}

int Store::OnBusy(void* wait, int count) {
  constexpr int kStepMs = 5;
  auto* w = static_cast<BusyWait*>(wait);
  if (count == 0 && w->on_busy) w->on_busy();
  if (static_cast<int64_t>(count) * kStepMs >= w->timeout_ms) return 0;  // give up: SQLITE_BUSY
  sqlite3_sleep(kStepMs);
  return 1;
}

Status Store::Migrate() {
  while (true) {
    int applying = 0;
    bool current = false;
    Status s = InTransaction([&]() -> Status {
      // Read under the write lock (BEGIN IMMEDIATE): a version read before it could be stale by
      // the time the lock is ours, if another process migrated in between.
      int v = SchemaVersion();
      if (v < 0) return SqlError(db_, "reading user_version");
      if (v > kSchemaVersion) {
        return FailedPreconditionError("schema version " + std::to_string(v) +
                                       " is newer than this build's " +
                                       std::to_string(kSchemaVersion));
      }
      if (v == kSchemaVersion) {
        current = true;
        return OkStatus();
      }
      applying = v + 1;
      SD2_RETURN_IF_ERROR(Exec(kMigrations[v]));
      return Exec("PRAGMA user_version = " + std::to_string(applying));
    });
    if (!s.ok()) return applying ? s.WithPrefix("migration " + std::to_string(applying)) : s;
    if (current) return OkStatus();
  }
}

StatusOr<sqlite3_stmt*> Store::Prepare(const std::string& sql) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) return it->second;
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) !=
      SQLITE_OK) {
    return SqlError(db_, "prepare '" + sql + "'");
  }
  stmts_.emplace(sql, s);
  return s;
}

Status Store::InTransaction(const std::function<Status()>& fn) {
  if (tx_depth_ > 0) {
    ++tx_depth_;
    Status s = fn();
    --tx_depth_;
    return s;
  }
  SD2_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  tx_depth_ = 1;
  Status s;
  try {
    s = fn();
  } catch (const std::exception& e) {
    s = InternalError(std::string("exception in transaction: ") + e.what());
  }
  tx_depth_ = 0;
  if (!s.ok()) {
    (void)Exec("ROLLBACK");
    return s;
  }
  Status c = Exec("COMMIT");
  if (!c.ok()) {
    (void)Exec("ROLLBACK");
    return c.WithPrefix("commit");
  }
  return OkStatus();
}

// ---- sweeps ----

StatusOr<int64_t> Store::InsertSweep(const SweepRow& r) {
  SD2_STMT(s,
           "INSERT INTO sweeps (name, spec_path, spec_toml, priority, state, created_at) "
           "VALUES (?, ?, ?, ?, ?, ?)");
  s.Bind(1, r.name).BindOptText(2, r.spec_path).Bind(3, r.spec_toml).Bind(4, r.priority);
  s.Bind(5, r.state).Bind(6, r.created_at);
  SD2_RETURN_IF_ERROR(s.Run());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

namespace {
SweepRow ReadSweep(Stmt& s) {
  SweepRow r;
  r.id = s.Int(0);
  r.name = s.Text(1);
  r.spec_path = s.Text(2);
  r.spec_toml = s.Text(3);
  r.priority = static_cast<int>(s.Int(4));
  r.state = s.Text(5);
  r.created_at = s.Real(6);
  return r;
}
}  // namespace

StatusOr<SweepRow> Store::GetSweep(int64_t id) {
  SD2_STMT(s,
           "SELECT id, name, spec_path, spec_toml, priority, state, created_at FROM sweeps "
           "WHERE id = ?");
  s.Bind(1, id);
  SD2_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFoundError("no sweep " + std::to_string(id));
  return ReadSweep(s);
}

StatusOr<std::vector<SweepRow>> Store::ListSweeps() {
  SD2_STMT(s,
           "SELECT id, name, spec_path, spec_toml, priority, state, created_at FROM sweeps "
           "ORDER BY id");
  std::vector<SweepRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadSweep(s));
  }
  return out;
}

Status Store::SetSweepState(int64_t id, const std::string& state) {
  SD2_STMT(s, "UPDATE sweeps SET state = ? WHERE id = ?");
  s.Bind(1, state).Bind(2, id);
  SD2_RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db_) == 0) return NotFoundError("no sweep " + std::to_string(id));
  return OkStatus();
}

Status Store::LinkSweepTrial(int64_t sweep_id, int64_t trial_id, int ordinal, bool reused) {
  SD2_STMT(s,
           "INSERT INTO sweep_trials (sweep_id, trial_id, ordinal, reused) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (sweep_id, trial_id) DO UPDATE SET reused = excluded.reused");
  s.Bind(1, sweep_id).Bind(2, trial_id).Bind(3, ordinal).Bind(4, reused ? 1 : 0);
  return s.Run();
}

StatusOr<std::vector<int64_t>> Store::SweepTrialIds(int64_t sweep_id) {
  SD2_STMT(s, "SELECT trial_id FROM sweep_trials WHERE sweep_id = ? ORDER BY ordinal");
  s.Bind(1, sweep_id);
  std::vector<int64_t> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(s.Int(0));
  }
  return out;
}

StatusOr<SweepCounts> Store::CountSweep(int64_t sweep_id) {
  // A reused trial counts as reused (not succeeded); every trial is counted once.
  SD2_STMT(s,
           "SELECT CASE WHEN st.reused = 1 THEN 'reused' ELSE t.state END AS k, COUNT(*) "
           "FROM sweep_trials st JOIN trials t ON t.id = st.trial_id WHERE st.sweep_id = ? "
           "GROUP BY k");
  s.Bind(1, sweep_id);
  SweepCounts c;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    std::string k = s.Text(0);
    int64_t n = s.Int(1);
    c.total += n;
    if (k == "queued") c.queued += n;
    if (k == "running") c.running += n;
    if (k == "succeeded") c.succeeded += n;
    if (k == "failed") c.failed += n;
    if (k == "reused") c.reused += n;
    if (k == "cancelled") c.cancelled += n;
  }
  return c;
}

StatusOr<std::vector<int64_t>> Store::SweepsOfTrial(int64_t trial_id) {
  SD2_STMT(s,
           "SELECT st.sweep_id FROM sweep_trials st JOIN sweeps w ON w.id = st.sweep_id "
           "WHERE st.trial_id = ? AND w.state = 'active' ORDER BY st.sweep_id");
  s.Bind(1, trial_id);
  std::vector<int64_t> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(s.Int(0));
  }
  return out;
}

// ---- trials ----

StatusOr<int64_t> Store::InsertTrial(const TrialRow& r) {
  SD2_STMT(s,
           "INSERT INTO trials (trial_key, method, scale, seed, config_json, resources_json, "
           "label, priority, state, attempts, max_attempts, not_before, depends_on, last_error, "
           "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.Bind(1, r.trial_key).Bind(2, r.method).Bind(3, r.scale).Bind(4, r.seed);
  s.Bind(5, r.config_json).Bind(6, r.resources_json).BindOptText(7, r.label);
  s.Bind(8, r.priority).Bind(9, r.state).Bind(10, r.attempts).Bind(11, r.max_attempts);
  s.Bind(12, r.not_before).BindOpt(13, r.depends_on).BindOptText(14, r.last_error);
  s.Bind(15, r.created_at).Bind(16, r.updated_at);
  SD2_RETURN_IF_ERROR(s.Run().WithPrefix("trial " + r.trial_key));
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

StatusOr<std::optional<TrialRow>> Store::FindTrialByKey(const std::string& key) {
  SD2_STMT(s, std::string("SELECT ") + kTrialColumns + " FROM trials WHERE trial_key = ?");
  s.Bind(1, key);
  SD2_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<TrialRow>();
  return std::optional<TrialRow>(ReadTrial(s));
}

StatusOr<TrialRow> Store::GetTrial(int64_t id) {
  SD2_STMT(s, std::string("SELECT ") + kTrialColumns + " FROM trials WHERE id = ?");
  s.Bind(1, id);
  SD2_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFoundError("no trial with id " + std::to_string(id));
  return ReadTrial(s);
}

StatusOr<std::vector<TrialRow>> Store::ListTrials(const std::string& state) {
  std::string sql = std::string("SELECT ") + kTrialColumns + " FROM trials" +
                    (state.empty() ? "" : " WHERE state = ?") + " ORDER BY id";
  SD2_STMT(s, sql);
  if (!state.empty()) s.Bind(1, state);
  std::vector<TrialRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadTrial(s));
  }
  return out;
}

Status Store::UpdateTrial(const TrialRow& r) {
  SD2_STMT(s,
           "UPDATE trials SET state = ?, priority = ?, attempts = ?, max_attempts = ?, "
           "not_before = ?, last_error = ?, updated_at = ? WHERE id = ?");
  s.Bind(1, r.state).Bind(2, r.priority).Bind(3, r.attempts).Bind(4, r.max_attempts);
  s.Bind(5, r.not_before).BindOptText(6, r.last_error).Bind(7, r.updated_at).Bind(8, r.id);
  SD2_RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db_) == 0) return NotFoundError("no trial with id " + std::to_string(r.id));
  return OkStatus();
}

// ---- attempts ----

StatusOr<int64_t> Store::InsertAttempt(const AttemptRow& r) {
  SD2_STMT(s,
           "INSERT INTO attempts (trial_id, number, state, group_id, host, git_commit, "
           "versions_json, variant_json, lease_expires_at, created_at, started_at, ended_at, "
           "error, devices, slurm_job_id, slurm_array_job_id, slurm_array_task_id) "
           "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.Bind(1, r.trial_id).Bind(2, r.number).Bind(3, r.state).BindOptText(4, r.group_id);
  s.BindOptText(5, r.host).BindOptText(6, r.git_commit).BindOptText(7, r.versions_json);
  s.BindOptText(8, r.variant_json).BindOpt(9, r.lease_expires_at).Bind(10, r.created_at);
  s.BindOpt(11, r.started_at).BindOpt(12, r.ended_at).BindOptText(13, r.error);
  s.BindOptText(14, r.devices).BindOptText(15, r.slurm_job_id);
  s.BindOptText(16, r.slurm_array_job_id).BindOptText(17, r.slurm_array_task_id);
  SD2_RETURN_IF_ERROR(s.Run().WithPrefix("attempt " + std::to_string(r.number) + " of trial " +
                                         std::to_string(r.trial_id)));
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

StatusOr<AttemptRow> Store::GetAttempt(int64_t id) {
  SD2_STMT(s, std::string("SELECT ") + kAttemptColumns + " FROM attempts WHERE id = ?");
  s.Bind(1, id);
  SD2_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return NotFoundError("no attempt with id " + std::to_string(id));
  return ReadAttempt(s);
}

StatusOr<std::optional<AttemptRow>> Store::FindAttempt(int64_t trial_id, int number) {
  SD2_STMT(s, std::string("SELECT ") + kAttemptColumns +
                  " FROM attempts WHERE trial_id = ? AND number = ?");
  s.Bind(1, trial_id).Bind(2, number);
  SD2_ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<AttemptRow>();
  return std::optional<AttemptRow>(ReadAttempt(s));
}

StatusOr<std::vector<AttemptRow>> Store::ListAttempts(int64_t trial_id) {
  SD2_STMT(s, std::string("SELECT ") + kAttemptColumns +
                  " FROM attempts WHERE trial_id = ? ORDER BY number");
  s.Bind(1, trial_id);
  std::vector<AttemptRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadAttempt(s));
  }
  return out;
}

StatusOr<std::vector<AttemptRow>> Store::ListAttemptsInState(const std::string& state) {
  SD2_STMT(s,
           std::string("SELECT ") + kAttemptColumns + " FROM attempts WHERE state = ? ORDER BY id");
  s.Bind(1, state);
  std::vector<AttemptRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadAttempt(s));
  }
  return out;
}

Status Store::UpdateAttempt(const AttemptRow& r) {
  SD2_STMT(s,
           "UPDATE attempts SET state = ?, group_id = ?, host = ?, git_commit = ?, "
           "versions_json = ?, variant_json = ?, lease_expires_at = ?, started_at = ?, "
           "ended_at = ?, error = ?, devices = ?, slurm_job_id = ?, slurm_array_job_id = ?, "
           "slurm_array_task_id = ? WHERE id = ?");
  s.Bind(1, r.state).BindOptText(2, r.group_id).BindOptText(3, r.host);
  s.BindOptText(4, r.git_commit).BindOptText(5, r.versions_json).BindOptText(6, r.variant_json);
  s.BindOpt(7, r.lease_expires_at).BindOpt(8, r.started_at).BindOpt(9, r.ended_at);
  s.BindOptText(10, r.error).BindOptText(11, r.devices).BindOptText(12, r.slurm_job_id);
  s.BindOptText(13, r.slurm_array_job_id).BindOptText(14, r.slurm_array_task_id);
  s.Bind(15, r.id);
  SD2_RETURN_IF_ERROR(s.Run());
  if (sqlite3_changes(db_) == 0) {
    return NotFoundError("no attempt with id " + std::to_string(r.id));
  }
  return OkStatus();
}

// ---- metrics, scores, checkpoints ----

StatusOr<int64_t> Store::InsertMetrics(int64_t attempt_id, const std::vector<MetricRow>& rows) {
  SD2_ASSIGN_OR_RETURN(
      sqlite3_stmt * raw,
      Prepare("INSERT INTO metrics (attempt_id, seq, step, name, value, wall_time) "
              "VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING"));
  int64_t inserted = 0;
  Status st = InTransaction([&]() -> Status {
    // Hot path (ingestion): bind in place, text without a copy, reset between rows.
    sqlite3_bind_int64(raw, 1, attempt_id);
    for (const MetricRow& m : rows) {
      sqlite3_bind_int64(raw, 2, m.seq);
      sqlite3_bind_int64(raw, 3, m.step);
      sqlite3_bind_text(raw, 4, m.name.data(), static_cast<int>(m.name.size()), SQLITE_STATIC);
      sqlite3_bind_double(raw, 5, m.value);
      sqlite3_bind_double(raw, 6, m.wall_time);
      int rc = sqlite3_step(raw);
      sqlite3_reset(raw);
      if (rc != SQLITE_DONE) return SqlError(db_, "metric seq " + std::to_string(m.seq));
      inserted += sqlite3_changes(db_);
    }
    sqlite3_clear_bindings(raw);
    return OkStatus();
  });
  SD2_RETURN_IF_ERROR(st);
  return inserted;
}

StatusOr<std::vector<MetricRow>> Store::ListMetrics(int64_t attempt_id) {
  SD2_STMT(s,
           "SELECT seq, step, name, value, wall_time FROM metrics WHERE attempt_id = ? "
           "ORDER BY seq");
  s.Bind(1, attempt_id);
  std::vector<MetricRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(MetricRow{s.Int(0), s.Int(1), s.Text(2), s.Real(3), s.Real(4)});
  }
  return out;
}

StatusOr<int64_t> Store::InsertScores(int64_t attempt_id, const std::string& eval_set,
                                      const std::vector<ScoreRow>& rows) {
  SD2_ASSIGN_OR_RETURN(sqlite3_stmt * raw,
                       Prepare("INSERT INTO scores (attempt_id, eval_set, sample_id, video_id, "
                               "label, type, score) VALUES (?,?,?,?,?,?,?) "
                               "ON CONFLICT DO NOTHING"));
  int64_t inserted = 0;
  Status st = InTransaction([&]() -> Status {
    for (const ScoreRow& r : rows) {
      Stmt s(db_, raw);
      s.Bind(1, attempt_id).Bind(2, eval_set).Bind(3, r.sample_id).BindOptText(4, r.video_id);
      s.Bind(5, r.label).BindOptText(6, r.type).Bind(7, r.score);
      SD2_RETURN_IF_ERROR(s.Run().WithPrefix("score of sample '" + r.sample_id + "'"));
      inserted += sqlite3_changes(db_);
    }
    return OkStatus();
  });
  SD2_RETURN_IF_ERROR(st);
  return inserted;
}

StatusOr<std::vector<ScoreRow>> Store::ListScores(int64_t attempt_id, const std::string& eval_set) {
  SD2_STMT(s,
           "SELECT sample_id, video_id, label, type, score FROM scores WHERE attempt_id = ? "
           "AND eval_set = ? ORDER BY sample_id");
  s.Bind(1, attempt_id).Bind(2, eval_set);
  std::vector<ScoreRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ScoreRow{s.Text(0), s.Text(1), static_cast<int>(s.Int(2)), s.Text(3), s.Real(4)});
  }
  return out;
}

Status Store::InsertCheckpoint(const CheckpointRow& r) {
  SD2_STMT(s,
           "INSERT INTO checkpoints (attempt_id, step, path, digest, created_at) "
           "VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING");
  s.Bind(1, r.attempt_id).Bind(2, r.step).Bind(3, r.path).BindOptText(4, r.digest);
  s.Bind(5, r.created_at);
  return s.Run();
}

StatusOr<std::vector<CheckpointRow>> Store::ListCheckpoints(int64_t attempt_id) {
  SD2_STMT(s,
           "SELECT id, attempt_id, step, path, digest, created_at FROM checkpoints "
           "WHERE attempt_id = ? ORDER BY step");
  s.Bind(1, attempt_id);
  std::vector<CheckpointRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(CheckpointRow{s.Int(0), s.Int(1), s.Int(2), s.Text(3), s.Text(4), s.Real(5)});
  }
  return out;
}

// ---- groups, events ----

Status Store::UpsertGroup(const GroupRow& r) {
  SD2_STMT(s,
           "INSERT INTO groups (id, host, size, devices, version, state, last_seen) "
           "VALUES (?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET host = excluded.host, "
           "size = excluded.size, devices = excluded.devices, version = excluded.version, "
           "state = excluded.state, last_seen = excluded.last_seen");
  s.Bind(1, r.id).BindOptText(2, r.host).Bind(3, r.size).BindOptText(4, r.devices);
  s.BindOptText(5, r.version).Bind(6, r.state).Bind(7, r.last_seen);
  return s.Run();
}

StatusOr<std::vector<GroupRow>> Store::ListGroups() {
  SD2_STMT(s, "SELECT id, host, size, devices, version, state, last_seen FROM groups ORDER BY id");
  std::vector<GroupRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(GroupRow{s.Text(0), s.Text(1), static_cast<int>(s.Int(2)), s.Text(3), s.Text(4),
                           s.Text(5), s.Real(6)});
  }
  return out;
}

Status Store::AddEvent(const EventRow& r) {
  SD2_STMT(s,
           "INSERT INTO events (time, kind, sweep_id, trial_id, attempt_id, message) "
           "VALUES (?,?,?,?,?,?)");
  s.Bind(1, r.time).Bind(2, r.kind).BindOpt(3, r.sweep_id).BindOpt(4, r.trial_id);
  s.BindOpt(5, r.attempt_id).BindOptText(6, r.message);
  return s.Run();
}

StatusOr<std::vector<EventRow>> Store::ListEvents(int64_t trial_id, int limit) {
  std::string sql = "SELECT id, time, kind, sweep_id, trial_id, attempt_id, message FROM events" +
                    std::string(trial_id ? " WHERE trial_id = ?1" : "") + " ORDER BY id LIMIT ?2";
  SD2_STMT(s, sql);
  if (trial_id) s.Bind(1, trial_id);
  s.Bind(2, limit);
  std::vector<EventRow> out;
  while (true) {
    SD2_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(
        EventRow{s.Int(0), s.Real(1), s.Text(2), s.OptInt(3), s.OptInt(4), s.OptInt(5), s.Text(6)});
  }
  return out;
}

StatusOr<int64_t> Store::CountRows(const std::string& table) {
  static const char* const kTables[] = {"sweeps",      "trials",  "sweep_trials",
                                        "attempts",    "metrics", "scores",
                                        "checkpoints", "groups",  "events"};
  bool known = false;
  for (const char* t : kTables) known = known || table == t;
  if (!known) return InvalidArgumentError("unknown table '" + table + "'");
  SD2_STMT(s, "SELECT COUNT(*) FROM " + table);
  SD2_ASSIGN_OR_RETURN(bool row, s.Step());
  return row ? s.Int(0) : int64_t{0};
}

}  // namespace sd2::storage

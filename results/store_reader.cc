#include "results/store_reader.h"

#include <sqlite3.h>

#include <memory>

#include "common/bounded_parse.h"
#include "common/file_util.h"

namespace sd2::results {
namespace {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtCloser {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtCloser>;

Status SqlError(sqlite3* db, const std::string& path, const std::string& what) {
  return DataLossError(path + ": " + what + ": " + sqlite3_errmsg(db));
}

StatusOr<Stmt> Prepare(sqlite3* db, const std::string& path, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) {
    return SqlError(db, path, "cannot query the store (is it an sd2 database?)");
  }
  return Stmt(s);
}

std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t ? reinterpret_cast<const char*>(t) : "";
}

struct EvalScores {
  std::vector<int> labels;
  std::vector<double> scores;
  std::vector<std::string> videos;
  bool all_have_video = true;
};

}  // namespace

StatusOr<std::vector<TrialResult>> ReadTrialResults(const std::string& db_path) {
  if (!PathExists(db_path)) return NotFoundError("no database at " + db_path);
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) return SqlError(raw, db_path, "cannot open");
  sqlite3_busy_timeout(db.get(), 5000);

  {
    SD2_ASSIGN_OR_RETURN(Stmt v, Prepare(db.get(), db_path, "PRAGMA user_version"));
    if (sqlite3_step(v.get()) != SQLITE_ROW) return SqlError(db.get(), db_path, "user_version");
    const int version = sqlite3_column_int(v.get(), 0);
    if (version > kStoreSchemaVersion) {
      return FailedPreconditionError(db_path + ": store schema version " + std::to_string(version) +
                                     " is newer than this sd2 (" +
                                     std::to_string(kStoreSchemaVersion) + ")");
    }
  }
  // Read everything in one transaction: a consistent snapshot while the coordinator writes.
  if (sqlite3_exec(db.get(), "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqlError(db.get(), db_path, "cannot begin a read transaction");
  }

  SD2_ASSIGN_OR_RETURN(
      Stmt trials,
      Prepare(db.get(), db_path,
              "SELECT t.id, t.trial_key, t.method, t.scale, t.seed, t.config_json, a.id, "
              "       COALESCE(a.ended_at, 0) "
              "FROM trials t JOIN attempts a ON a.trial_id = t.id "
              "WHERE a.state = 'succeeded' AND a.number = "
              "  (SELECT MAX(b.number) FROM attempts b "
              "   WHERE b.trial_id = t.id AND b.state = 'succeeded') "
              "ORDER BY t.id"));
  SD2_ASSIGN_OR_RETURN(Stmt scores, Prepare(db.get(), db_path,
                                            "SELECT eval_set, video_id, label, score FROM scores "
                                            "WHERE attempt_id = ? ORDER BY eval_set, sample_id"));
  std::vector<TrialResult> out;
  while ((rc = sqlite3_step(trials.get())) == SQLITE_ROW) {
    TrialResult t;
    t.trial_id = sqlite3_column_int64(trials.get(), 0);
    t.trial_key = Text(trials.get(), 1);
    t.method = Text(trials.get(), 2);
    t.scale = sqlite3_column_int64(trials.get(), 3);
    t.seed = sqlite3_column_int64(trials.get(), 4);
    const std::string config = Text(trials.get(), 5);
    t.attempt_id = sqlite3_column_int64(trials.get(), 6);
    t.ended_at = sqlite3_column_double(trials.get(), 7);
    auto parsed = ParseJsonBounded(config);
    if (!parsed.ok()) {
      return DataLossError(db_path + ": trial " + t.trial_key +
                           ": config_json is not JSON: " + parsed.status().message());
    }
    t.config = *std::move(parsed);
    if (!t.config.is_object()) {
      return DataLossError(db_path + ": trial " + t.trial_key + ": config_json is not an object");
    }

    std::map<std::string, EvalScores> by_set;
    sqlite3_reset(scores.get());
    sqlite3_bind_int64(scores.get(), 1, t.attempt_id);
    int src;
    while ((src = sqlite3_step(scores.get())) == SQLITE_ROW) {
      EvalScores& e = by_set[Text(scores.get(), 0)];
      std::string video = Text(scores.get(), 1);
      e.all_have_video = e.all_have_video && !video.empty();
      e.videos.push_back(std::move(video));
      e.labels.push_back(sqlite3_column_int(scores.get(), 2));
      e.scores.push_back(sqlite3_column_double(scores.get(), 3));
    }
    if (src != SQLITE_DONE) return SqlError(db.get(), db_path, "reading scores");
    for (auto& [name, e] : by_set) {
      if (!e.all_have_video) e.videos.clear();
      StatusOr<Metrics> m = ComputeMetrics(e.labels, e.scores, e.videos);
      if (!m.ok() && !e.videos.empty()) {
        t.warnings.push_back("eval set '" + name +
                             "': no video-level AUC: " + m.status().message());
        m = ComputeMetrics(e.labels, e.scores, {});
      }
      if (!m.ok()) {
        return DataLossError(db_path + ": trial " + t.trial_key + " attempt " +
                             std::to_string(t.attempt_id) + " eval set '" + name +
                             "': " + m.status().message());
      }
      t.evals.emplace(name, *std::move(m));
    }
    out.push_back(std::move(t));
  }
  if (rc != SQLITE_DONE) return SqlError(db.get(), db_path, "reading trials");
  sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr);
  return out;
}

}  // namespace sd2::results

#include "storage/integrity.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace sd2::storage {

namespace {

// Runs the check and collects its rows.
Status Collect(sqlite3* db, const IntegrityOptions& options, std::vector<std::string>* rows) {
  int n = options.max_errors < 1 ? 1 : options.max_errors;
  std::string sql = std::string("PRAGMA ") + (options.full ? "integrity_check" : "quick_check") +
                    "(" + std::to_string(n) + ")";
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteStatus(db, rc, "integrity check");
    sqlite3_finalize(stmt);
    return s;
  }
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const unsigned char* t = sqlite3_column_text(stmt, 0);
    rows->push_back(t ? reinterpret_cast<const char*>(t) : "");
  }
  Status s = rc == SQLITE_DONE ? OkStatus() : SqliteStatus(db, rc, "integrity check");
  sqlite3_finalize(stmt);
  return s;
}

int64_t PragmaInt(sqlite3* db, const char* pragma) {
  sqlite3_stmt* stmt = nullptr;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, pragma, -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    v = sqlite3_column_int64(stmt, 0);
  }
  sqlite3_finalize(stmt);
  return v;
}

std::string Join(const std::vector<std::string>& rows) {
  std::string out;
  for (const auto& r : rows) out += (out.empty() ? "" : "; ") + r;
  return out;
}

}  // namespace

Status CheckIntegrity(sqlite3* db, const IntegrityOptions& options) {
  if (db == nullptr) return InvalidArgumentError("integrity check: no database connection");
  std::vector<std::string> rows;
  Status s = Collect(db, options, &rows);
  if (!s.ok()) return s;
  if (rows.size() == 1 && rows[0] == "ok") return OkStatus();
  return DataLossError("database integrity check failed: " + Join(rows));
}

StatusOr<IntegrityReport> CheckDatabaseFile(const std::string& path,
                                            const IntegrityOptions& options) {
  if (path.empty()) return InvalidArgumentError("db check: empty database path");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return NotFoundError(path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(path + ": not a regular file");
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteStatus(db, rc, path);
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 5000);
  IntegrityReport report;
  std::vector<std::string> rows;
  Status s = Collect(db, options, &rows);
  if (!s.ok()) {
    sqlite3_close(db);
    if (s.code() != StatusCode::kDataLoss) return s.WithPrefix(path);
    report.ok = false;
    report.problems.push_back(s.message());
    return report;
  }
  report.ok = rows.size() == 1 && rows[0] == "ok";
  if (!report.ok) report.problems = rows;
  report.schema_version = static_cast<int>(PragmaInt(db, "PRAGMA user_version"));
  report.pages = PragmaInt(db, "PRAGMA page_count");
  report.page_size = PragmaInt(db, "PRAGMA page_size");
  sqlite3_close(db);
  return report;
}

Status SqliteStatus(sqlite3* db, int rc, const std::string& what) {
  std::string msg = what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return UnavailableError(msg);
    case SQLITE_CANTOPEN:
      return NotFoundError(msg);
    case SQLITE_FULL:
      return ResourceExhaustedError(msg);
    default:
      return InternalError(msg);
  }
}

bool IsDiskFull(const Status& status) {
  return status.code() == StatusCode::kResourceExhausted &&
         status.message().find(sqlite3_errstr(SQLITE_FULL)) != std::string::npos;
}

}  // namespace sd2::storage

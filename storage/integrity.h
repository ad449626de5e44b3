// Database integrity: PRAGMA quick_check (or the slower integrity_check) of an sd2 store, at
// coordinator start and from `sd2ctl db check`, and recognising a full disk (SQLITE_FULL) in a
// Status so the coordinator can stop accepting work while keeping every committed state.
//
//   SD2_RETURN_IF_ERROR(sd2::storage::CheckIntegrity(store->raw()));   // DataLoss on corruption
//   SD2_ASSIGN_OR_RETURN(auto report, sd2::storage::CheckDatabaseFile("sd2.db", {}));
//   if (sd2::storage::IsDiskFull(status)) { ... stop leasing, keep serving reads ... }
//
// Thread-safety: thread-compatible; CheckDatabaseFile opens its own read-only connection, so it
// may run while the coordinator writes (WAL).
#ifndef SD2_STORAGE_INTEGRITY_H_
#define SD2_STORAGE_INTEGRITY_H_

#include <string>
#include <vector>

#include "common/status.h"

struct sqlite3;

namespace sd2::storage {

struct IntegrityOptions {
  bool full = false;    // integrity_check (reads every index entry) instead of quick_check
  int max_errors = 20;  // problems listed at most
};

struct IntegrityReport {
  bool ok = true;
  std::vector<std::string> problems;  // SQLite's messages, when not ok
  int schema_version = 0;             // PRAGMA user_version
  int64_t pages = 0;
  int64_t page_size = 0;
};

// Runs the check on an open connection. Ok when SQLite answers "ok"; DataLoss listing the first
// problems otherwise (and for SQLITE_CORRUPT / SQLITE_NOTADB while checking).
Status CheckIntegrity(sqlite3* db, const IntegrityOptions& options = {});
// Opens `path` read-only (NotFound when absent) and checks it. A corrupt file gives a report
// with ok = false, not an error; errors are for files that cannot be read at all.
StatusOr<IntegrityReport> CheckDatabaseFile(const std::string& path,
                                            const IntegrityOptions& options = {});

// True for the status the store returns when SQLite reports SQLITE_FULL ("database or disk is
// full"), as opposed to other ResourceExhausted errors (message size limits).
// The Status for an SQLite result code `rc` of an operation named `what`: DataLoss for a corrupt
// file, Unavailable when busy/locked, NotFound when it cannot be opened, ResourceExhausted when
// the disk is full, Internal otherwise. The message is "what: <SQLite's message>".
Status SqliteStatus(sqlite3* db, int rc, const std::string& what);

bool IsDiskFull(const Status& status);

}  // namespace sd2::storage

#endif  // SD2_STORAGE_INTEGRITY_H_

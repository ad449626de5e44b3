// Online backup of an sd2 store through SQLite's backup API (`sd2ctl db backup PATH`). It reads
// through its own read-only connection, so it runs while the coordinator writes (WAL readers do
// not block the writer): the copy is one consistent snapshot, every transaction committed before
// the snapshot is in it and none after. The copy is written to a temporary file, checked with
// PRAGMA quick_check, synced and renamed into place, and the directory holding PATH is synced
// after the rename, so PATH is either absent, the old file, or a whole, checked backup, also
// after a power loss.
//
//   sd2::storage::BackupOptions o;
//   SD2_ASSIGN_OR_RETURN(sd2::storage::BackupReport r,
//                        sd2::storage::BackupDatabase("sd2.db", "/backups/sd2-1.db", o));
//   std::cout << r.pages << " pages in " << r.seconds << " s\n";
//
// Thread-safety: thread-compatible; it shares no connection with the caller.
#ifndef SD2_STORAGE_BACKUP_H_
#define SD2_STORAGE_BACKUP_H_

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"

namespace sd2::storage {

// Opens `path` (a file or a directory) read-only and fsyncs it. ResourceExhausted when fsync
// fails (a full disk), Internal when it cannot be opened.
Status FsyncPath(const std::string& path);

struct BackupOptions {
  bool overwrite = false;  // replace an existing destination file
  int busy_timeout_ms = 10000;
  // fsync(2) of a file or directory by path; the default is FsyncPath. Tests record the calls.
  std::function<Status(const std::string& path)> sync = FsyncPath;
};

struct BackupReport {
  int64_t pages = 0;
  int64_t bytes = 0;
  int schema_version = 0;
  double seconds = 0;
};

// Copies the database at `source` to `dest`. Errors: NotFound (no source), AlreadyExists (dest
// exists and !overwrite), InvalidArgument (same file, or source is not an sd2 store),
// ResourceExhausted (disk full while writing), DataLoss (source or copy fails its check).
StatusOr<BackupReport> BackupDatabase(const std::string& source, const std::string& dest,
                                      const BackupOptions& options = {});

}  // namespace sd2::storage

#endif  // SD2_STORAGE_BACKUP_H_

// One writer per store: the coordinator holds an exclusive flock(2) on `<db>.lock` for as long
// as it runs, so a second coordinator on the same database refuses to start instead of
// interleaving its writes (and its in-memory queues) with the first one's. The kernel drops
// the lock when the holder exits for any reason, SIGKILL included, so a crashed coordinator
// never leaves a stale lock; the file itself stays and only records who held it last.
//
//   SD2_ASSIGN_OR_RETURN(auto lock, sd2::storage::WriterLock::Acquire("/data/sd2.db"));
//   // ... open the Store and serve; `lock` lives until the process ends.
//
// Thread-safety: thread-compatible.
#ifndef SD2_STORAGE_WRITER_LOCK_H_
#define SD2_STORAGE_WRITER_LOCK_H_

#include <memory>
#include <string>

#include "common/status.h"

namespace sd2::storage {

class WriterLock {
 public:
  // Takes the lock on `db_path` + ".lock" without waiting and writes "pid PID on HOST" into it.
  // FailedPrecondition when another process holds it, naming that process as its lock file
  // says; an I/O error as Internal.
  static StatusOr<std::unique_ptr<WriterLock>> Acquire(const std::string& db_path);
  ~WriterLock();
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  WriterLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

}  // namespace sd2::storage

#endif  // SD2_STORAGE_WRITER_LOCK_H_

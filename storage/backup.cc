#include "storage/backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "storage/integrity.h"

namespace sd2::storage {

namespace {

// Closes connections on every path.
struct Conn {
  sqlite3* db = nullptr;
  ~Conn() { sqlite3_close(db); }
};

}  // namespace

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return InternalError(path + ": " + std::strerror(errno));
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) return ResourceExhaustedError(path + ": fsync: " + std::strerror(e));
  return OkStatus();
}

namespace {

// The directory that holds `path` ("." for a bare name).
std::string DirOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

StatusOr<BackupReport> BackupDatabase(const std::string& source, const std::string& dest,
                                      const BackupOptions& options) {
  auto start = std::chrono::steady_clock::now();
  if (source.empty() || dest.empty()) return InvalidArgumentError("backup: empty path");
  struct stat src_st, dst_st;
  if (::stat(source.c_str(), &src_st) != 0) {
    return NotFoundError(source + ": " + std::strerror(errno));
  }
  if (!S_ISREG(src_st.st_mode)) return InvalidArgumentError(source + ": not a regular file");
  if (::stat(dest.c_str(), &dst_st) == 0) {
    if (dst_st.st_dev == src_st.st_dev && dst_st.st_ino == src_st.st_ino) {
      return InvalidArgumentError("backup: " + dest + " is the source database itself");
    }
    if (!options.overwrite) {
      return AlreadyExistsError(dest + " exists (pass --force to replace it)");
    }
    if (!S_ISREG(dst_st.st_mode)) return InvalidArgumentError(dest + ": not a regular file");
  }

  Conn src;
  int rc = sqlite3_open_v2(source.c_str(), &src.db, SQLITE_OPEN_READONLY, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(src.db, rc, source);
  sqlite3_busy_timeout(src.db, options.busy_timeout_ms);

  std::string tmp = dest + ".partial." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  BackupReport report;
  Status status = [&]() -> Status {
    Conn dst;
    int rc =
        sqlite3_open_v2(tmp.c_str(), &dst.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(dst.db, rc, tmp);
    sqlite3_backup* b = sqlite3_backup_init(dst.db, "main", src.db, "main");
    if (b == nullptr) return SqliteStatus(dst.db, sqlite3_errcode(dst.db), "backup init");
    // All pages in one step: one read transaction, hence one consistent snapshot. In WAL mode
    // it does not block the coordinator's writes. Retry while the source is busy (a checkpoint
    // or a non-WAL writer holding a lock).
    auto give_up =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_timeout_ms);
    do {
      rc = sqlite3_backup_step(b, -1);
      if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(20);
    } while ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
             std::chrono::steady_clock::now() < give_up);
    report.pages = sqlite3_backup_pagecount(b);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) return SqliteStatus(nullptr, rc, "backup of " + source);
    // The copy must be a whole, sound sd2 store.
    Status check = CheckIntegrity(dst.db);
    if (!check.ok()) return check.WithPrefix("backup copy " + tmp);
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(dst.db, "PRAGMA user_version", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      report.schema_version = sqlite3_column_int(stmt, 0);
    }
    sqlite3_finalize(stmt);
    if (report.schema_version < 1) {
      return InvalidArgumentError(source + ": not an sd2 store (user_version 0)");
    }
    return OkStatus();
  }();
  if (status.ok()) status = options.sync(tmp);
  if (status.ok() && ::rename(tmp.c_str(), dest.c_str()) != 0) {
    status = InternalError(dest + ": rename: " + std::strerror(errno));
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status;
  }
  // The rename is durable only once the directory entry is: sync the directory too.
  SD2_RETURN_IF_ERROR(options.sync(DirOf(dest)).WithPrefix("backup " + dest + ": directory"));
  struct stat st;
  if (::stat(dest.c_str(), &st) == 0) report.bytes = st.st_size;
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace sd2::storage

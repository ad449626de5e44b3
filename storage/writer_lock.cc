#include "storage/writer_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sd2::storage {

namespace {

std::string Holder(int fd) {
  char buf[256];
  ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "";
  std::string s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

StatusOr<std::unique_ptr<WriterLock>> WriterLock::Acquire(const std::string& db_path) {
  if (db_path.empty()) return InvalidArgumentError("writer lock: empty database path");
  std::string path = db_path + ".lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return InternalError(path + ": " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    std::string holder = Holder(fd);
    ::close(fd);
    if (e == EWOULDBLOCK) {
      return FailedPreconditionError(db_path + " is in use by another coordinator (" +
                                     (holder.empty() ? std::string("holder unknown") : holder) +
                                     ", lock " + path +
                                     "); one coordinator per database: stop that one first");
    }
    return InternalError(path + ": flock: " + std::strerror(e));
  }
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::string me = "pid " + std::to_string(::getpid()) + " on " + (host[0] ? host : "?") + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, me.data(), me.size(), 0) < 0) {
    int e = errno;
    ::close(fd);
    return InternalError(path + ": " + std::strerror(e));
  }
  return std::unique_ptr<WriterLock>(new WriterLock(fd, std::move(path)));
}

WriterLock::~WriterLock() { ::close(fd_); }  // releases the flock

}  // namespace sd2::storage

#include "cluster/command_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace sd2::cluster {
namespace {

// Builds a NULL-terminated char* array that points into `storage`.
std::vector<char*> CArgv(std::vector<std::string>& storage) {
  std::vector<char*> out;
  out.reserve(storage.size() + 1);
  for (auto& s : storage) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::vector<std::string> MergedEnvironment(const EnvMap& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    if (!extra.count(name)) env.push_back(entry);
  }
  for (const auto& [name, value] : extra) env.push_back(name + "=" + value);
  return env;
}

int DecodeWaitStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

void CloseIfOpen(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

// After a fork: reports exec failure through `err_fd` (close-on-exec) and exits 127.
[[noreturn]] void ExecOrReport(std::vector<char*>& argv, std::vector<char*>* envp, int err_fd) {
  if (envp) {
    execvpe(argv[0], argv.data(), envp->data());
  } else {
    execvp(argv[0], argv.data());
  }
  int e = errno;
  ssize_t ignored [[maybe_unused]] = write(err_fd, &e, sizeof(e));
  _exit(127);
}

// Reads the exec-failure pipe after a fork; returns the child's errno or 0 when exec worked.
int ReadExecError(int fd) {
  int e = 0;
  ssize_t n;
  do {
    n = read(fd, &e, sizeof(e));
  } while (n < 0 && errno == EINTR);
  return n == sizeof(e) ? e : 0;
}

}  // namespace

std::string JoinCommandLine(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"$`\\;&|<>()*?[]{}!#~") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) {
        if (c == '\'') {
          out += "'\\''";
        } else {
          out += c;
        }
      }
      out += '\'';
    }
  }
  return out;
}

StatusOr<CommandResult> SystemCommandRunner::Run(const std::vector<std::string>& argv_in,
                                                 std::chrono::milliseconds timeout) {
  if (argv_in.empty()) return InvalidArgumentError("Run: empty command line");
  std::vector<std::string> storage = argv_in;
  std::vector<char*> argv = CArgv(storage);
  int out_pipe[2], err_pipe[2], exec_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return InternalError(std::strerror(errno));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return InternalError(std::strerror(errno));
  }
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    return InternalError(std::strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1], exec_pipe[0], exec_pipe[1]})
      close(fd);
    return ResourceExhaustedError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    ExecOrReport(argv, nullptr, exec_pipe[1]);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(exec_pipe[1]);
  int exec_errno = ReadExecError(exec_pipe[0]);
  close(exec_pipe[0]);

  CommandResult result;
  int fds[2] = {out_pipe[0], err_pipe[0]};
  std::string* sinks[2] = {&result.out, &result.err};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  while (fds[0] >= 0 || fds[1] >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfds[2];
    int n = 0;
    int which[2];
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0) continue;
      pfds[n] = {fds[i], POLLIN, 0};
      which[n++] = i;
    }
    int r = poll(pfds, n, int(std::min<int64_t>(left.count(), 1000)));
    if (r < 0 && errno != EINTR) break;
    for (int k = 0; k < n; ++k) {
      if (!(pfds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t got = read(fds[which[k]], buf, sizeof(buf));
      if (got > 0) {
        sinks[which[k]]->append(buf, size_t(got));
      } else if (got == 0 || errno != EINTR) {
        CloseIfOpen(fds[which[k]]);
      }
    }
  }
  CloseIfOpen(fds[0]);
  CloseIfOpen(fds[1]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (exec_errno != 0) {
    return NotFoundError("cannot run '" + argv_in[0] + "': " + std::strerror(exec_errno));
  }
  if (timed_out) {
    return DeadlineExceededError("'" + JoinCommandLine(argv_in) + "' ran longer than " +
                                 std::to_string(timeout.count()) + " ms and was killed");
  }
  result.exit_code = DecodeWaitStatus(status);
  return result;
}

StatusOr<int64_t> SystemCommandRunner::Start(const std::vector<std::string>& argv_in,
                                             const EnvMap& env, const std::string& log_path) {
  if (argv_in.empty()) return InvalidArgumentError("Start: empty command line");
  std::vector<std::string> storage = argv_in;
  std::vector<char*> argv = CArgv(storage);
  std::vector<std::string> env_storage = MergedEnvironment(env);
  std::vector<char*> envp = CArgv(env_storage);
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return InvalidArgumentError("cannot open log file '" + log_path +
                                  "': " + std::strerror(errno));
    }
  }
  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
    CloseIfOpen(log_fd);
    return InternalError(std::strerror(errno));
  }
  pid_t pid = fork();
  if (pid < 0) {
    CloseIfOpen(log_fd);
    close(exec_pipe[0]);
    close(exec_pipe[1]);
    return ResourceExhaustedError(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    if (log_fd >= 0) {
      dup2(log_fd, 1);
      dup2(log_fd, 2);
    }
    ExecOrReport(argv, &envp, exec_pipe[1]);
  }
  setpgid(pid, pid);  // also from the parent, so Signal works before the child ran
  CloseIfOpen(log_fd);
  close(exec_pipe[1]);
  int exec_errno = ReadExecError(exec_pipe[0]);
  close(exec_pipe[0]);
  if (exec_errno != 0) {
    int status;
    waitpid(pid, &status, 0);
    return NotFoundError("cannot run '" + argv_in[0] + "': " + std::strerror(exec_errno));
  }
  started_.insert(pid);
  return int64_t(pid);
}

StatusOr<std::optional<int>> SystemCommandRunner::TryWait(int64_t pid) {
  if (!started_.count(pid)) {
    return NotFoundError("process " + std::to_string(pid) + " was not started by this runner");
  }
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_t(pid), &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return std::optional<int>();
  started_.erase(pid);
  if (r < 0) return InternalError("waitpid(" + std::to_string(pid) + "): " + std::strerror(errno));
  return std::optional<int>(DecodeWaitStatus(status));
}

Status SystemCommandRunner::Signal(int64_t pid, int signal) {
  if (!started_.count(pid)) {
    return NotFoundError("process " + std::to_string(pid) + " was not started by this runner");
  }
  if (kill(-pid_t(pid), signal) != 0 && kill(pid_t(pid), signal) != 0) {
    return UnavailableError("kill(" + std::to_string(pid) + ", " + std::to_string(signal) +
                            "): " + std::strerror(errno));
  }
  return OkStatus();
}

// ---- FakeCommandRunner ----

void FakeCommandRunner::Expect(const std::string& program, CommandResult result) {
  canned_[program].push_back(std::move(result));
}

void FakeCommandRunner::ExpectError(const std::string& program, Status status) {
  canned_[program].push_back(std::move(status));
}

void FakeCommandRunner::Finish(int64_t pid, int exit_code) { procs_[pid] = exit_code; }

std::vector<std::string> FakeCommandRunner::CommandLines() const {
  std::vector<std::string> out;
  for (const auto& c : calls_) {
    std::string line;
    for (const auto& a : c.argv) line += (line.empty() ? "" : " ") + a;
    out.push_back(line);
  }
  return out;
}

StatusOr<CommandResult> FakeCommandRunner::Run(const std::vector<std::string>& argv,
                                               std::chrono::milliseconds) {
  if (argv.empty()) return InvalidArgumentError("Run: empty command line");
  calls_.push_back({argv, {}, "run"});
  auto it = canned_.find(argv[0]);
  if (it == canned_.end() || it->second.empty()) {
    return NotFoundError("FakeCommandRunner: no canned result for '" + JoinCommandLine(argv) + "'");
  }
  StatusOr<CommandResult> r = std::move(it->second.front());
  it->second.pop_front();
  return r;
}

StatusOr<int64_t> FakeCommandRunner::Start(const std::vector<std::string>& argv, const EnvMap& env,
                                           const std::string&) {
  if (argv.empty()) return InvalidArgumentError("Start: empty command line");
  calls_.push_back({argv, env, "start"});
  if (fail_starts_) return NotFoundError("cannot run '" + argv[0] + "': No such file or directory");
  int64_t pid = next_pid_++;
  procs_[pid] = std::nullopt;
  return pid;
}

StatusOr<std::optional<int>> FakeCommandRunner::TryWait(int64_t pid) {
  auto it = procs_.find(pid);
  if (it == procs_.end()) {
    return NotFoundError("process " + std::to_string(pid) + " was not started by this runner");
  }
  std::optional<int> r = it->second;
  if (r) procs_.erase(it);
  return r;
}

Status FakeCommandRunner::Signal(int64_t pid, int signal) {
  if (!procs_.count(pid)) {
    return NotFoundError("process " + std::to_string(pid) + " was not started by this runner");
  }
  signals_.emplace_back(pid, signal);
  return OkStatus();
}

}  // namespace sd2::cluster

// CommandRunner: the one place where cluster/ runs other programs (mpirun, sbatch, squeue,
// sacct, scancel, scontrol). Launchers take a CommandRunner*, so unit tests swap in
// FakeCommandRunner and check the exact argv a launcher runs against golden values, and feed
// it canned squeue/sacct output.
//
//   sd2::cluster::SystemCommandRunner runner;
//   SD2_ASSIGN_OR_RETURN(auto r, runner.Run({"sbatch", "--parsable", "job.sbatch"}));
//   if (r.exit_code != 0) return UnavailableError(r.err);
//   SD2_ASSIGN_OR_RETURN(int64_t pid, runner.Start({"mpirun", "-np", "2", "sd2-worker"}, {}));
//   SD2_ASSIGN_OR_RETURN(std::optional<int> code, runner.TryWait(pid));  // nullopt: running
#ifndef SD2_CLUSTER_COMMAND_RUNNER_H_
#define SD2_CLUSTER_COMMAND_RUNNER_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::cluster {

// What a finished command left behind. exit_code is the process's exit status, or 128 + the
// signal number when a signal ended it (the shell's convention).
struct CommandResult {
  int exit_code = 0;
  std::string out;
  std::string err;
};

// Extra environment for a started process: NAME -> VALUE, added to (or overriding) the
// caller's environment.
using EnvMap = std::map<std::string, std::string>;

// Runs programs. Implementations are not thread-safe; use one per thread.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;

  // Runs argv (argv[0] looked up in PATH) to completion and captures stdout and stderr.
  // A non-zero exit is not an error here: it is in the result. Errors: NotFound when argv[0]
  // cannot be executed, DeadlineExceeded when it runs past `timeout` (it is killed),
  // InvalidArgument for an empty argv.
  virtual StatusOr<CommandResult> Run(
      const std::vector<std::string>& argv,
      std::chrono::milliseconds timeout = std::chrono::seconds(60)) = 0;

  // Starts argv in the background with `env` added to the environment, in its own process
  // group, with stdin from /dev/null and stdout/stderr appended to `log_path` (or inherited
  // when empty). Returns the pid. Errors: NotFound when argv[0] cannot be executed.
  virtual StatusOr<int64_t> Start(const std::vector<std::string>& argv, const EnvMap& env,
                                  const std::string& log_path = "") = 0;

  // Reaps a started process without blocking: nullopt while it runs, else its exit code
  // (128 + signal when killed). NotFound for a pid this runner did not start or already
  // reaped.
  virtual StatusOr<std::optional<int>> TryWait(int64_t pid) = 0;

  // Sends `signal` to the process group of a started process.
  virtual Status Signal(int64_t pid, int signal) = 0;
};

// Runs real processes with fork/exec.
class SystemCommandRunner : public CommandRunner {
 public:
  StatusOr<CommandResult> Run(
      const std::vector<std::string>& argv,
      std::chrono::milliseconds timeout = std::chrono::seconds(60)) override;
  StatusOr<int64_t> Start(const std::vector<std::string>& argv, const EnvMap& env,
                          const std::string& log_path = "") override;
  StatusOr<std::optional<int>> TryWait(int64_t pid) override;
  Status Signal(int64_t pid, int signal) override;

 private:
  std::set<int64_t> started_;  // pids started and not yet reaped
};

// A scripted CommandRunner for tests. Records every argv; Run answers from a queue of canned
// results (or a per-program default), Start hands out pids 1000, 1001, ... whose exit codes
// the test sets with Finish.
class FakeCommandRunner : public CommandRunner {
 public:
  struct Call {
    std::vector<std::string> argv;
    EnvMap env;        // Start only
    std::string kind;  // "run" or "start"
  };

  // The next Run of a program named `program` (argv[0]) returns `result`; queued per program,
  // first in first out. With nothing queued Run returns NotFound("no canned result ...").
  void Expect(const std::string& program, CommandResult result);
  // The next Run of `program` fails with `status` (e.g. NotFound: no such program).
  void ExpectError(const std::string& program, Status status);
  // Marks a started pid as exited with `exit_code`.
  void Finish(int64_t pid, int exit_code);
  // When true, Start fails with NotFound.
  void FailStarts(bool fail) { fail_starts_ = fail; }

  const std::vector<Call>& calls() const { return calls_; }
  // Signals sent, as (pid, signal).
  const std::vector<std::pair<int64_t, int>>& signals() const { return signals_; }
  // Each recorded argv joined with single spaces, one string per call.
  std::vector<std::string> CommandLines() const;

  StatusOr<CommandResult> Run(
      const std::vector<std::string>& argv,
      std::chrono::milliseconds timeout = std::chrono::seconds(60)) override;
  StatusOr<int64_t> Start(const std::vector<std::string>& argv, const EnvMap& env,
                          const std::string& log_path = "") override;
  StatusOr<std::optional<int>> TryWait(int64_t pid) override;
  Status Signal(int64_t pid, int signal) override;

 private:
  std::map<std::string, std::deque<StatusOr<CommandResult>>> canned_;
  std::vector<Call> calls_;
  std::vector<std::pair<int64_t, int>> signals_;
  std::map<int64_t, std::optional<int>> procs_;
  int64_t next_pid_ = 1000;
  bool fail_starts_ = false;
};

// Joins argv for logs and messages, quoting words that contain spaces or shell specials.
std::string JoinCommandLine(const std::vector<std::string>& argv);

}  // namespace sd2::cluster

#endif  // SD2_CLUSTER_COMMAND_RUNNER_H_

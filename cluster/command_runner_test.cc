#include "cluster/command_runner.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "common/file_util.h"

namespace sd2::cluster {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sd2-cluster-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Polls TryWait until the process ends (at most ~10 s).
std::optional<int> WaitFor(CommandRunner& runner, int64_t pid) {
  for (int i = 0; i < 1000; ++i) {
    auto r = runner.TryWait(pid);
    if (!r.ok()) return std::nullopt;
    if (r->has_value()) return **r;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

TEST(SystemCommandRunner, CapturesStdoutStderrAndExitCode) {
  SystemCommandRunner runner;
  auto r = runner.Run({"sh", "-c", "echo out; echo err >&2; exit 7"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(SystemCommandRunner, LargeOutputOnBothStreamsDoesNotDeadlock) {
  SystemCommandRunner runner;
  auto r = runner.Run({"sh", "-c", "head -c 200000 /dev/zero; head -c 300000 /dev/zero >&2"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->out.size(), 200000u);
  EXPECT_EQ(r->err.size(), 300000u);
}

TEST(SystemCommandRunner, MissingProgramIsNotFound) {
  SystemCommandRunner runner;
  auto r = runner.Run({"/nonexistent/sbatch", "--parsable"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/sbatch"), std::string::npos);
  EXPECT_EQ(runner.Run({}).status().code(), StatusCode::kInvalidArgument);
}

TEST(SystemCommandRunner, TimeoutKillsTheCommand) {
  SystemCommandRunner runner;
  auto start = std::chrono::steady_clock::now();
  auto r = runner.Run({"sleep", "10"}, std::chrono::milliseconds(200));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(SystemCommandRunner, StartPassesEnvironmentAndLogsOutput) {
  TempDir dir;
  SystemCommandRunner runner;
  std::string log = dir.path() + "/group.log";
  auto pid = runner.Start({"sh", "-c", "echo \"var=$SD2_TEST_VAR\"; exit 3"},
                          {{"SD2_TEST_VAR", "hello world"}}, log);
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_EQ(WaitFor(runner, *pid), 3);
  auto text = ReadFile(log);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text, "var=hello world\n");
  // Reaped: a second TryWait does not know it.
  EXPECT_EQ(runner.TryWait(*pid).status().code(), StatusCode::kNotFound);
}

TEST(SystemCommandRunner, SignalReachesTheWholeProcessGroup) {
  TempDir dir;
  SystemCommandRunner runner;
  // The shell's child (sleep) is in the same process group and dies with it.
  std::string marker = dir.path() + "/got-term";
  auto pid = runner.Start({"sh", "-c", "trap 'touch " + marker + "; exit 3' TERM; sleep 30 & wait"},
                          {}, "");
  ASSERT_TRUE(pid.ok()) << pid.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto running = runner.TryWait(*pid);
  ASSERT_TRUE(running.ok());
  EXPECT_FALSE(running->has_value());
  ASSERT_TRUE(runner.Signal(*pid, SIGTERM).ok());
  EXPECT_EQ(WaitFor(runner, *pid), 3);
  EXPECT_TRUE(fs::exists(marker));
}

TEST(SystemCommandRunner, KilledProcessReportsSignalAs128PlusN) {
  SystemCommandRunner runner;
  auto pid = runner.Start({"sleep", "30"}, {}, "");
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(runner.Signal(*pid, SIGKILL).ok());
  EXPECT_EQ(WaitFor(runner, *pid), 128 + SIGKILL);
}

TEST(SystemCommandRunner, StartOfMissingProgramIsNotFound) {
  SystemCommandRunner runner;
  auto pid = runner.Start({"/nonexistent/mpirun"}, {}, "");
  EXPECT_EQ(pid.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(runner.Signal(12345678, SIGTERM).code(), StatusCode::kNotFound);
}

TEST(SystemCommandRunner, UnwritableLogIsInvalidArgument) {
  SystemCommandRunner runner;
  auto pid = runner.Start({"true"}, {}, "/nonexistent/dir/x.log");
  EXPECT_EQ(pid.status().code(), StatusCode::kInvalidArgument);
}

TEST(FakeCommandRunner, AnswersInOrderAndRecords) {
  FakeCommandRunner fake;
  fake.Expect("squeue", {0, "a\n", ""});
  fake.Expect("squeue", {1, "", "boom"});
  auto a = fake.Run({"squeue", "-h"});
  auto b = fake.Run({"squeue", "-j", "1"});
  auto c = fake.Run({"squeue"});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->out, "a\n");
  EXPECT_EQ(b->exit_code, 1);
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(fake.CommandLines(), (std::vector<std::string>{"squeue -h", "squeue -j 1", "squeue"}));
}

TEST(JoinCommandLine, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(JoinCommandLine({"sd2-worker", "--coordinator", "tcp://h:5555"}),
            "sd2-worker --coordinator tcp://h:5555");
  EXPECT_EQ(JoinCommandLine({"a b", "it's", ""}), "'a b' 'it'\\''s' ''");
}

}  // namespace
}  // namespace sd2::cluster

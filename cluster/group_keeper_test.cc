#include "cluster/group_keeper.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "cluster/command_runner.h"
#include "cluster/fake_launcher.h"
#include "cluster/slurm_launcher.h"

namespace sd2::cluster {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Kind = KeeperEvent::Kind;

class GroupKeeperTest : public ::testing::Test {
 protected:
  GroupKeeperTest() : keeper_(&fake_, Options(), [this] { return now_; }) {
    spec_.name = "sweep1";
    spec_.ranks = 2;
    spec_.coordinator = "tcp://127.0.0.1:5555";
  }
  static KeeperOptions Options() {
    KeeperOptions o;
    o.initial_backoff = seconds(5);
    o.max_backoff = seconds(40);
    o.max_consecutive_failures = 5;
    return o;
  }
  static std::vector<Kind> Kinds(const std::vector<KeeperEvent>& events) {
    std::vector<Kind> out;
    for (const auto& e : events) out.push_back(e.kind);
    return out;
  }

  std::chrono::steady_clock::time_point now_{seconds(1000)};
  FakeLauncher fake_;
  GroupKeeper keeper_;
  GroupSpec spec_;
};

TEST_F(GroupKeeperTest, LaunchesUpToTargetAndTracksRunning) {
  ASSERT_TRUE(keeper_.SetTarget("s1", spec_, 3).ok());
  EXPECT_EQ(Kinds(keeper_.Tick()),
            (std::vector<Kind>{Kind::kLaunched, Kind::kLaunched, Kind::kLaunched}));
  EXPECT_EQ(keeper_.Live("s1"), 3);
  EXPECT_EQ(fake_.launches()[0].spec.ranks, 2);
  EXPECT_TRUE(keeper_.Tick().empty());  // nothing changed
  ASSERT_TRUE(fake_.SetState(fake_.launches()[0].handle, LaunchState::kRunning).ok());
  auto events = keeper_.Tick();
  EXPECT_EQ(Kinds(events), (std::vector<Kind>{Kind::kRunning}));
  EXPECT_EQ(events[0].handle, fake_.launches()[0].handle);
  EXPECT_EQ(keeper_.Running("s1"), 1);
  EXPECT_EQ(fake_.launches().size(), 3u);
}

TEST_F(GroupKeeperTest, PreemptedAndDoneGroupsAreReplacedAtOnce) {
  ASSERT_TRUE(keeper_.SetTarget("s1", spec_, 2).ok());
  keeper_.Tick();
  ASSERT_TRUE(fake_.SetState(fake_.launches()[0].handle, LaunchState::kPreempted).ok());
  ASSERT_TRUE(fake_.SetState(fake_.launches()[1].handle, LaunchState::kDone).ok());
  EXPECT_EQ(Kinds(keeper_.Tick()),
            (std::vector<Kind>{Kind::kPreempted, Kind::kDone, Kind::kLaunched, Kind::kLaunched}));
  EXPECT_EQ(keeper_.Live("s1"), 2);
  EXPECT_EQ(fake_.launches().size(), 4u);
  EXPECT_EQ(keeper_.NextLaunchAt("s1"), std::chrono::steady_clock::time_point{});
}

TEST_F(GroupKeeperTest, FailuresBackOffExponentiallyAndRunningResets) {
  ASSERT_TRUE(keeper_.SetTarget("s1", spec_, 1).ok());
  keeper_.Tick();
  // Failure 1: wait 5 s.
  ASSERT_TRUE(fake_.SetState(fake_.launches()[0].handle, LaunchState::kFailed).ok());
  EXPECT_EQ(Kinds(keeper_.Tick()), (std::vector<Kind>{Kind::kFailed}));
  EXPECT_EQ(keeper_.NextLaunchAt("s1"), now_ + seconds(5));
  now_ += seconds(4);
  EXPECT_TRUE(keeper_.Tick().empty());
  now_ += seconds(1);
  EXPECT_EQ(Kinds(keeper_.Tick()), (std::vector<Kind>{Kind::kLaunched}));
  // Failure 2: 10 s; failure 3: 20 s; failure 4: 40 s (the cap).
  for (int k = 2; k <= 4; ++k) {
    ASSERT_TRUE(fake_.SetState(fake_.launches().back().handle, LaunchState::kFailed).ok());
    keeper_.Tick();
    int64_t expect = std::min<int64_t>(40, 5LL << (k - 1));
    EXPECT_EQ(keeper_.NextLaunchAt("s1"), now_ + seconds(expect)) << k;
    now_ += seconds(expect);
    EXPECT_EQ(Kinds(keeper_.Tick()), (std::vector<Kind>{Kind::kLaunched})) << k;
  }
  // Running resets the count: the next failure waits 5 s again.
  ASSERT_TRUE(fake_.SetState(fake_.launches().back().handle, LaunchState::kRunning).ok());
  keeper_.Tick();
  ASSERT_TRUE(fake_.SetState(fake_.launches().back().handle, LaunchState::kFailed).ok());
  keeper_.Tick();
  EXPECT_EQ(keeper_.NextLaunchAt("s1"), now_ + seconds(5));
}

TEST_F(GroupKeeperTest, LaunchErrorsBackOffAndGiveUp) {
  fake_.FailNextLaunches(100, UnavailableError("sbatch: error: Slurm controller not responding"));
  ASSERT_TRUE(keeper_.SetTarget("s1", spec_, 1).ok());
  std::vector<Kind> all;
  for (int i = 0; i < 10; ++i) {
    for (Kind k : Kinds(keeper_.Tick())) all.push_back(k);
    now_ += seconds(100);
  }
  // Five failed launches, then the keeper gives up and stops trying.
  EXPECT_EQ(all, (std::vector<Kind>{Kind::kLaunchError, Kind::kLaunchError, Kind::kLaunchError,
                                    Kind::kLaunchError, Kind::kLaunchError, Kind::kGaveUp}));
  EXPECT_TRUE(keeper_.GaveUp("s1"));
  // SetTarget again retries.
  fake_.FailNextLaunches(0, OkStatus());
  ASSERT_TRUE(keeper_.SetTarget("s1", spec_, 1).ok());
  EXPECT_FALSE(keeper_.GaveUp("s1"));
  EXPECT_EQ(Kinds(keeper_.Tick()), (std::vector<Kind>{Kind::kLaunched}));
}

TEST_F(GroupKeeperTest, PollErrorsKeepTheGroupVanishedGroupsCountAsFailed) {
  ASSERT_TRUE(keeper_.SetTarget("s1", spec_, 2).ok());
  keeper_.Tick();
  LaunchHandle a = fake_.launches()[0].handle, b = fake_.launches()[1].handle;
  fake_.FailNextPoll(a, UnavailableError("squeue timed out"));
  fake_.Forget(b);
  auto events = keeper_.Tick();
  EXPECT_EQ(Kinds(events), (std::vector<Kind>{Kind::kPollError, Kind::kFailed}));
  EXPECT_NE(events[0].detail.find("squeue timed out"), std::string::npos);
  EXPECT_EQ(keeper_.Live("s1"), 1);
  now_ += seconds(5);
  EXPECT_EQ(Kinds(keeper_.Tick()), (std::vector<Kind>{Kind::kLaunched}));
  EXPECT_EQ(keeper_.Live("s1"), 2);
}

TEST_F(GroupKeeperTest, LoweringTargetKeepsGroupsStopCancelsThem) {
  ASSERT_TRUE(keeper_.SetTarget("s1", spec_, 2).ok());
  ASSERT_TRUE(keeper_.SetTarget("s2", spec_, 1).ok());
  keeper_.Tick();
  ASSERT_TRUE(keeper_.SetTarget("s1", spec_, 0).ok());
  keeper_.Tick();
  EXPECT_EQ(keeper_.Live("s1"), 2);
  ASSERT_TRUE(fake_.SetState(fake_.launches()[0].handle, LaunchState::kDone).ok());
  EXPECT_EQ(Kinds(keeper_.Tick()), (std::vector<Kind>{Kind::kDone}));  // not replaced
  ASSERT_TRUE(keeper_.Stop("s1").ok());
  EXPECT_EQ(keeper_.Live("s1"), 0);
  EXPECT_EQ(fake_.cancelled().size(), 1u);
  EXPECT_EQ(keeper_.Live("s2"), 1);
  ASSERT_TRUE(keeper_.StopAll().ok());
  EXPECT_TRUE(fake_.Active().empty());
  EXPECT_EQ(keeper_.Stop("nope").code(), StatusCode::kNotFound);
}

TEST_F(GroupKeeperTest, RejectsBadTargets) {
  EXPECT_EQ(keeper_.SetTarget("s1", spec_, -1).code(), StatusCode::kInvalidArgument);
  GroupSpec bad = spec_;
  bad.ranks = 0;
  EXPECT_EQ(keeper_.SetTarget("s1", bad, 1).code(), StatusCode::kInvalidArgument);
}

// A runner whose `squeue` hangs until the test releases it (or 20 s pass), like a Slurm
// controller that does not answer.
class HangingSqueue : public CommandRunner {
 public:
  StatusOr<CommandResult> Run(const std::vector<std::string>& argv,
                              std::chrono::milliseconds) override {
    std::unique_lock<std::mutex> lock(mu_);
    calls_.push_back(JoinCommandLine(argv));
    cv_.notify_all();
    cv_.wait_for(lock, seconds(20), [&] { return released_ > 0; });
    if (released_ > 0) --released_;
    return CommandResult{0, "1234_0|RUNNING\n1234_1|PENDING\n", ""};
  }
  StatusOr<int64_t> Start(const std::vector<std::string>&, const EnvMap&,
                          const std::string&) override {
    return UnimplementedError("no Start");
  }
  StatusOr<std::optional<int>> TryWait(int64_t) override { return NotFoundError("no pid"); }
  Status Signal(int64_t, int) override { return NotFoundError("no pid"); }

  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    ++released_;
    cv_.notify_all();
  }
  bool WaitForCalls(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, seconds(10), [&] { return calls_.size() >= n; });
  }
  std::vector<std::string> calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> calls_;
  int released_ = 0;
};

TEST(GroupKeeperAsyncTest, PollsAllGroupsInOneQueryOffTheCallersThreadAtMostOncePerPeriod) {
  auto dir =
      std::filesystem::temp_directory_path() / ("sd2_keeper_async_" + std::to_string(::getpid()));
  FakeCommandRunner submit_runner;
  submit_runner.Expect("sbatch", {0, "1234\n", ""});
  SlurmLauncherOptions so;
  so.script_dir = dir.string();
  so.max_array_size = 100;
  SlurmLauncher launcher(&submit_runner, so);
  HangingSqueue poll_runner;
  SlurmLauncher poller(&poll_runner, so);
  auto now = std::chrono::steady_clock::time_point(seconds(1000));
  KeeperOptions o;
  o.poll_period = seconds(5);
  GroupSpec spec;
  spec.name = "s";
  spec.coordinator = "tcp://127.0.0.1:5555";
  {
    GroupKeeper keeper(
        &launcher, o, [&] { return now; }, &poller);
    ASSERT_TRUE(keeper.SetTarget("s", spec, 2).ok());
    auto first = keeper.Tick();
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].kind, Kind::kLaunched);
    // One squeue for both groups, started on the keeper's thread.
    ASSERT_TRUE(poll_runner.WaitForCalls(1));
    EXPECT_EQ(poll_runner.calls()[0], "squeue -h -r -t all -o '%i|%T' -j 1234_0,1234_1");
    // squeue hangs: Tick does not wait for it.
    auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(keeper.Tick().empty());
    EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(500));
    EXPECT_TRUE(keeper.PollInFlight());
    EXPECT_EQ(keeper.Running("s"), 0);
    EXPECT_EQ(keeper.Live("s"), 2);
    // Once it answers, the next Tick acts on the answer.
    poll_runner.Release();
    auto deadline = std::chrono::steady_clock::now() + seconds(10);
    while (keeper.PollInFlight() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_FALSE(keeper.PollInFlight());
    auto second = keeper.Tick();
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(second[0].kind, Kind::kRunning);
    EXPECT_EQ(second[0].handle.id, "1234_0");
    EXPECT_EQ(keeper.Running("s"), 1);
    // Rate-limited: no second query within the period, one after it.
    keeper.Tick();
    EXPECT_EQ(keeper.PollsStarted(), 1);
    now += seconds(5);
    keeper.Tick();
    EXPECT_EQ(keeper.PollsStarted(), 2);
    ASSERT_TRUE(poll_runner.WaitForCalls(2));
    poll_runner.Release();  // lets the keeper's thread finish before it is joined
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd2::cluster

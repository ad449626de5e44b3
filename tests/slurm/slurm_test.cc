// Integration tests against a real single-node Slurm (label `slurm`). The environment starts
// munged, slurmctld and slurmd with scripts/slurm/start.sh and stops them with stop.sh; every
// test skips with a clear message when Slurm is not installed.
//
//   ctest -L slurm          (as root; CI installs slurm-wlm and munge with scripts/setup.sh)
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cluster/command_runner.h"
#include "cluster/group_keeper.h"
#include "cluster/slurm_launcher.h"
#include "common/file_util.h"

namespace sd2::cluster {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string g_skip_reason;  // non-empty: Slurm is not available

class SlurmEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    std::string dir = "/tmp/sd2-slurm-test-" + std::to_string(getpid());
    setenv("SD2_SLURM_DIR", dir.c_str(), 1);
    setenv("SLURM_CONF", (dir + "/slurm.conf").c_str(), 1);
    SystemCommandRunner runner;
    auto r = runner.Run({std::string(SD2_SOURCE_DIR) + "/scripts/slurm/start.sh"}, seconds(60));
    if (!r.ok()) {
      g_skip_reason = "scripts/slurm/start.sh could not run: " + r.status().ToString();
    } else if (r->exit_code == 77) {
      g_skip_reason = "Slurm is not installed (apt-get install slurm-wlm munge): " + r->err;
    } else if (r->exit_code != 0) {
      started_ = true;  // half-started: stop it
      g_skip_reason.clear();
      FAIL() << "scripts/slurm/start.sh failed (" << r->exit_code << "):\n" << r->out << r->err;
    } else {
      started_ = true;
    }
  }
  void TearDown() override {
    if (!started_) return;
    SystemCommandRunner runner;
    auto r = runner.Run({std::string(SD2_SOURCE_DIR) + "/scripts/slurm/stop.sh"}, seconds(60));
    EXPECT_TRUE(r.ok() && r->exit_code == 0) << "stop.sh failed";
  }

 private:
  bool started_ = false;
};

const auto* const kEnv [[maybe_unused]] = ::testing::AddGlobalTestEnvironment(new SlurmEnvironment);

class SlurmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!g_skip_reason.empty()) GTEST_SKIP() << g_skip_reason;
    char tmpl[] = "/tmp/sd2-slurm-case-XXXXXX";
    dir_ = mkdtemp(tmpl);
    options_.script_dir = dir_ + "/scripts";
    options_.job.time = "00:05:00";
    options_.job.signal_seconds = 60;
    options_.job.output_dir = dir_;
    options_.job.rank_launcher = RankLauncher::kDirect;
    options_.job.worker_binary = dir_ + "/worker";
    spec_.name = "sd2test";
    spec_.coordinator = "tcp://127.0.0.1:1";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  void WriteWorker(const std::string& body) {
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/worker", "#!/bin/bash\n" + body).ok());
    fs::permissions(dir_ + "/worker", fs::perms::owner_all);
  }

  // Polls until the job reaches `want` or `limit` passes; returns the last state seen.
  LaunchState PollUntil(SlurmLauncher& slurm, const LaunchHandle& h, LaunchState want,
                        seconds limit, std::vector<LaunchState>* seen = nullptr) {
    auto end = std::chrono::steady_clock::now() + limit;
    LaunchState s = LaunchState::kPending;
    while (std::chrono::steady_clock::now() < end) {
      auto r = slurm.Poll(h);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) return s;
      s = *r;
      if (seen && (seen->empty() || seen->back() != s)) seen->push_back(s);
      if (s == want) return s;
      std::this_thread::sleep_for(milliseconds(250));
    }
    return s;
  }

  bool WaitForFile(const std::string& path, seconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      if (fs::exists(path)) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return false;
  }

  std::string dir_;
  SlurmLauncherOptions options_;
  GroupSpec spec_;
  SystemCommandRunner runner_;
};

TEST_F(SlurmTest, ScriptJobRunsToCompletion) {
  WriteWorker("echo \"$*\" > " + dir_ + "/args\necho \"job=$SLURM_JOB_ID\" > " + dir_ + "/ran\n");
  SlurmLauncher slurm(&runner_, options_);
  auto h = slurm.Launch(spec_);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(PollUntil(slurm, *h, LaunchState::kDone, seconds(30)), LaunchState::kDone);
  EXPECT_EQ(*ReadFile(dir_ + "/args"), "--coordinator tcp://127.0.0.1:1\n");
  EXPECT_EQ(*ReadFile(dir_ + "/ran"), "job=" + h->id + "\n");
}

TEST_F(SlurmTest, FailedWorkerIsFailedAndPreemptedExitIsPreemptedWithoutRequeue) {
  WriteWorker("exit 7\n");
  SlurmLauncher slurm(&runner_, options_);
  auto h = slurm.Launch(spec_);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(PollUntil(slurm, *h, LaunchState::kFailed, seconds(30)), LaunchState::kFailed);
  // Rendered without --requeue, a preempted worker leaves the job FAILED with exit code 3.
  WriteWorker("exit 3\n");
  options_.job.requeue = false;
  SlurmLauncher no_requeue(&runner_, options_);
  auto p = no_requeue.Launch(spec_);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(PollUntil(no_requeue, *p, LaunchState::kPreempted, seconds(30)),
            LaunchState::kPreempted);
}

// USR1 mid-job -> the batch script's trap forwards it -> the worker checkpoints and exits 3 ->
// the script requeues the job -> the second run resumes from the checkpoint and finishes.
TEST_F(SlurmTest, Usr1PreemptionRequeuesAndResumesFromCheckpoint) {
  WriteWorker(
      "d=" + dir_ +
      "\n"
      "if [[ -f $d/checkpoint ]]; then\n"
      "  echo \"resumed from step $(cat $d/checkpoint) restarts=${SLURM_RESTART_COUNT:-0}\" "
      "> $d/result\n"
      "  exit 0\n"
      "fi\n"
      "step=0\n"
      "trap 'echo $step > $d/checkpoint; exit 3' USR1\n"
      "touch $d/started\n"
      "while :; do step=$((step + 1)); sleep 0.1; done\n");
  SlurmLauncher slurm(&runner_, options_);
  auto h = slurm.Launch(spec_);
  ASSERT_TRUE(h.ok()) << h.status();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitForFile(dir_ + "/started", seconds(30)));
  EXPECT_EQ(*slurm.Poll(*h), LaunchState::kRunning);
  std::this_thread::sleep_for(milliseconds(500));
  auto sig = runner_.Run({"scancel", "--signal=USR1", "--batch", h->id});
  ASSERT_TRUE(sig.ok() && sig->exit_code == 0) << (sig.ok() ? sig->err : sig.status().ToString());
  std::vector<LaunchState> seen;
  EXPECT_EQ(PollUntil(slurm, *h, LaunchState::kDone, seconds(60), &seen), LaunchState::kDone);
  auto result = ReadFile(dir_ + "/result");
  ASSERT_TRUE(result.ok()) << "the requeued job did not resume";
  EXPECT_EQ(result->rfind("resumed from step ", 0), 0u) << *result;
  EXPECT_NE(result->find("restarts=1"), std::string::npos) << *result;
  // Between the preemption and the resumed run the job was pending again (requeued).
  EXPECT_NE(std::find(seen.begin(), seen.end(), LaunchState::kPending), seen.end());
  auto log = ReadFile(dir_ + "/sd2test-" + h->id + ".out");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("forwarding it to the worker"), std::string::npos) << *log;
  EXPECT_NE(log->find("preempted; requeueing job " + h->id), std::string::npos) << *log;
  std::cout
      << "[ measured ] preempt + requeue + resume took "
      << std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0).count()
      << " ms\n";
}

TEST_F(SlurmTest, JobArrayTasksRunQueueAndCancel) {
  WriteWorker("touch " + dir_ + "/task-$SLURM_ARRAY_TASK_ID\nsleep 120\n");
  SlurmLauncher slurm(&runner_, options_);
  auto max = slurm.MaxArraySize();
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(*max, 1001);  // start.sh's slurm.conf
  int cpus = int(std::thread::hardware_concurrency());
  int count = cpus + 1;  // one more than fits: it must wait
  auto hs = slurm.LaunchMany(spec_, count);
  ASSERT_TRUE(hs.ok()) << hs.status();
  ASSERT_EQ(int(hs->size()), count);
  EXPECT_EQ(hs->front().id.substr(hs->front().id.find('_')), "_0");
  ASSERT_TRUE(WaitForFile(dir_ + "/task-0", seconds(30)));
  // Give the scheduler a moment to place what fits.
  std::this_thread::sleep_for(seconds(2));
  int running = 0, pending = 0;
  for (const auto& h : *hs) {
    auto s = slurm.Poll(h);
    ASSERT_TRUE(s.ok()) << s.status();
    running += *s == LaunchState::kRunning;
    pending += *s == LaunchState::kPending;
  }
  EXPECT_EQ(running + pending, count);
  EXPECT_GE(pending, 1);
  for (const auto& h : *hs) ASSERT_TRUE(slurm.Cancel(h).ok());
  for (const auto& h : *hs) {
    EXPECT_EQ(PollUntil(slurm, h, LaunchState::kFailed, seconds(30)), LaunchState::kFailed) << h.id;
  }
}

// GroupKeeper over the real SlurmLauncher: a group whose worker is preempted once is replaced.
TEST_F(SlurmTest, GroupKeeperReplacesAPreemptedGroup) {
  WriteWorker("d=" + dir_ +
              "\n"
              "if [[ ! -f $d/once ]]; then touch $d/once; exit 3; fi\n"
              "touch $d/second\nsleep 120\n");
  options_.job.requeue = false;  // the keeper replaces it instead of Slurm
  SlurmLauncher slurm(&runner_, options_);
  GroupKeeper keeper(&slurm, KeeperOptions{}, [] { return std::chrono::steady_clock::now(); });
  ASSERT_TRUE(keeper.SetTarget("sweep", spec_, 1).ok());
  std::vector<KeeperEvent::Kind> kinds;
  auto end = std::chrono::steady_clock::now() + seconds(60);
  while (std::chrono::steady_clock::now() < end &&
         !(fs::exists(dir_ + "/second") && keeper.Running("sweep") == 1)) {
    for (const auto& e : keeper.Tick()) {
      EXPECT_NE(e.kind, KeeperEvent::Kind::kPollError) << e.detail;
      kinds.push_back(e.kind);
    }
    std::this_thread::sleep_for(milliseconds(250));
  }
  EXPECT_TRUE(fs::exists(dir_ + "/second"));
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), KeeperEvent::Kind::kPreempted), 1);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), KeeperEvent::Kind::kLaunched), 2);
  ASSERT_TRUE(keeper.StopAll().ok());
}

}  // namespace
}  // namespace sd2::cluster

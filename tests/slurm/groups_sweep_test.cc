// End to end on a real single-node Slurm (label `slurm`), groups shape: a long-lived
// sd2-coordinator, a smoke sweep submitted to it, and worker groups that GroupKeeper keeps
// alive as Slurm jobs (SlurmLauncher). A USR1 preemption mid-trial ends the group; the attempt
// is recorded preempted, the keeper launches a new group, and it resumes the trial from its
// checkpoint. CTest passes SD2_WORKER_BIN and SD2_COORDINATOR_BIN (cluster/CMakeLists.txt).
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cluster/command_runner.h"
#include "cluster/group_keeper.h"
#include "cluster/slurm_launcher.h"
#include "common/file_util.h"
#include "coordinator/client.h"
#include "coordinator/submit.h"
#include "tests/slurm/slurm_fixture.h"

namespace sd2::cluster {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

class GroupsSweepTest : public testing::SlurmClusterTest {
 protected:
  void SetUp() override {
    StartSlurm("sd2-slurm-groups", {"SD2_WORKER_BIN", "SD2_COORDINATOR_BIN"});
    if (binaries_.size() == 2) worker_ = binaries_[0], coordinator_ = binaries_[1];
  }
  void TearDown() override {
    if (coordinator_pid_ > 0) {
      runner_.Signal(coordinator_pid_, SIGKILL).ok();
      for (int i = 0; i < 200; ++i) {
        auto w = runner_.TryWait(coordinator_pid_);
        if (!w.ok() || w->has_value()) break;
        std::this_thread::sleep_for(milliseconds(10));
      }
    }
    StopSlurm();
  }
  std::string Query(const std::string& sql) {
    return SlurmClusterTest::Query(dir_ + "/coord.db", sql);
  }

  std::string worker_, coordinator_;
  int64_t coordinator_pid_ = -1;
};

TEST_F(GroupsSweepTest, PreemptedGroupIsReplacedAndTheTrialResumes) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(21000 + getpid() % 20000);
  auto pid = runner_.Start({coordinator_, "--db", dir_ + "/coord.db", "--bind", endpoint}, {},
                           dir_ + "/coordinator.log");
  ASSERT_TRUE(pid.ok()) << pid.status();
  coordinator_pid_ = *pid;

  ASSERT_TRUE(WriteFileAtomic(dir_ + "/manifest.jsonl", "").ok());
  ASSERT_TRUE(
      WriteFileAtomic(dir_ + "/smoke.toml", testing::SmokeSweep("slurm_groups_smoke")).ok());
  auto options = coordinator::ParseExpandFlags(
      {"DIR=" + dir_}, "", R"({"hparams":{"duration_s":15,"steps":30,"checkpoint_every":1}})");
  ASSERT_TRUE(options.ok()) << options.status();
  auto submit = coordinator::BuildSubmit(dir_ + "/smoke.toml", *options);
  ASSERT_TRUE(submit.ok()) << submit.status();
  coordinator::Client client(endpoint, {.timeout_s = 2, .give_up_s = 20});
  auto submitted = client.CallAs<protocol::Submitted>(*submit);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->queued, 1);

  SlurmLauncherOptions lo;
  lo.script_dir = dir_ + "/scripts";
  lo.job.time = "00:10:00";
  lo.job.signal_seconds = 60;
  lo.job.output_dir = dir_;
  lo.job.rank_launcher = RankLauncher::kDirect;
  lo.job.worker_binary = worker_;
  SlurmLauncher slurm(&runner_, lo);
  KeeperOptions ko;
  ko.initial_backoff = seconds(1);
  GroupKeeper keeper(&slurm, ko, [] { return std::chrono::steady_clock::now(); });
  GroupSpec spec;
  spec.name = "groups_smoke";
  spec.coordinator = endpoint;
  spec.work_dir = dir_ + "/work";
  spec.idle_exit_seconds = 3;
  ASSERT_TRUE(keeper.SetTarget("sweep", spec, 1).ok());

  std::vector<KeeperEvent> events;
  auto tick = [&] {
    for (auto& e : keeper.Tick()) {
      EXPECT_NE(e.kind, KeeperEvent::Kind::kLaunchError) << e.detail;
      events.push_back(e);
    }
  };
  // Run until the first attempt has a few checkpoints, then preempt its group.
  auto end = std::chrono::steady_clock::now() + seconds(60);
  while (std::chrono::steady_clock::now() < end &&
         std::atoi(Query("SELECT count(*) FROM checkpoints").c_str()) < 3) {
    tick();
    std::this_thread::sleep_for(milliseconds(250));
  }
  auto handles = keeper.Handles("sweep");
  ASSERT_EQ(handles.size(), 1u);
  const std::string first_job = handles[0].id;
  auto sig = runner_.Run({"scancel", "--signal=USR1", "--batch", first_job});
  ASSERT_TRUE(sig.ok() && sig->exit_code == 0);

  // The keeper replaces the group; the new one resumes and finishes the trial.
  end = std::chrono::steady_clock::now() + seconds(90);
  while (std::chrono::steady_clock::now() < end &&
         Query("SELECT state FROM trials") != "succeeded") {
    tick();
    std::this_thread::sleep_for(milliseconds(250));
  }
  ASSERT_TRUE(keeper.SetTarget("sweep", spec, 0).ok());
  EXPECT_EQ(Query("SELECT state FROM trials"), "succeeded") << [&] {
    auto text = ReadFile(dir_ + "/coordinator.log");
    return text.ok() ? *text : text.status().ToString();
  }();
  EXPECT_EQ(Query("SELECT number || ':' || state FROM attempts ORDER BY number"),
            "1:preempted\n2:succeeded");
  std::string variant = Query("SELECT variant_json FROM attempts WHERE number = 2");
  EXPECT_NE(variant.find("resumed_from"), std::string::npos) << variant;
  EXPECT_EQ(variant.find("\"resumed_from\":0"), std::string::npos) << variant;
  auto log = ReadFile(dir_ + "/groups_smoke-" + first_job + ".out");
  ASSERT_TRUE(log.ok());
  EXPECT_NE(log->find("forwarding it to the worker"), std::string::npos) << *log;
  // The preempted group came back either as a new group from the keeper (worker exit 0) or
  // as the same job requeued by its script (worker exit 3, docs/cluster.md).
  int launched = 0;
  for (const auto& e : events) launched += e.kind == KeeperEvent::Kind::kLaunched;
  bool requeued = log->find("preempted; requeueing job " + first_job) != std::string::npos;
  EXPECT_TRUE(launched >= 2 || requeued) << "launched " << launched << " group(s)\n" << *log;
  ASSERT_TRUE(keeper.StopAll().ok());
}

}  // namespace
}  // namespace sd2::cluster

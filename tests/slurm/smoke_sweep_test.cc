// End to end on a real single-node Slurm (label `slurm`): a smoke sweep runs as the allocation
// shape (`sd2-worker --sweep ... --db ...`, coordinator inside the job), is preempted mid-trial
// with `scancel --signal=USR1 --batch`, requeues itself, and the second run resumes the trial
// from its checkpoint and finishes the sweep. Needs the built sd2-worker: CTest passes its path
// in SD2_WORKER_BIN (cluster/CMakeLists.txt).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cluster/command_runner.h"
#include "cluster/slurm_launcher.h"
#include "cluster/slurm_script.h"
#include "common/file_util.h"
#include "tests/slurm/slurm_fixture.h"

namespace sd2::cluster {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

class SmokeSweepTest : public testing::SlurmClusterTest {
 protected:
  void SetUp() override {
    StartSlurm("sd2-slurm-smoke", {"SD2_WORKER_BIN"});
    if (!binaries_.empty()) worker_ = binaries_[0];
  }
  void TearDown() override { StopSlurm(); }
  std::string Query(const std::string& sql) {
    return SlurmClusterTest::Query(dir_ + "/sd2.db", sql);
  }

  std::string worker_;
};

TEST_F(SmokeSweepTest, PreemptedAllocationRequeuesAndResumesTheTrial) {
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/manifest.jsonl", "").ok());
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/smoke.toml", testing::SmokeSweep("slurm_smoke")).ok());
  AllocationSpec a;
  a.name = "slurm_smoke";
  a.sweep_file = dir_ + "/smoke.toml";
  a.db_path = dir_ + "/sd2.db";
  a.work_dir = dir_ + "/work";
  a.vars = {{"DIR", dir_}};
  // 30 steps over 15 s, a checkpoint after every step: preempting at ~4 s leaves work to resume.
  a.worker_args = {"--override",
                   R"({"hparams":{"duration_s":15,"steps":30,"checkpoint_every":1}})"};
  SlurmJobOptions job;
  job.time = "00:10:00";
  job.signal_seconds = 60;
  job.output_dir = dir_;
  job.rank_launcher = RankLauncher::kDirect;  // one rank: MPI singleton
  job.worker_binary = worker_;
  auto script = RenderAllocationScript(a, job);
  ASSERT_TRUE(script.ok()) << script.status();
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/job.sbatch", *script).ok());
  auto sub = runner_.Run({"sbatch", "--parsable", dir_ + "/job.sbatch"});
  ASSERT_TRUE(sub.ok() && sub->exit_code == 0) << (sub.ok() ? sub->err : sub.status().ToString());
  auto id = ParseSbatchParsable(sub->out);
  ASSERT_TRUE(id.ok()) << id.status();
  SlurmLauncher slurm(&runner_, SlurmLauncherOptions{});
  LaunchHandle h{"slurm", *id};

  // Wait until the trial has checkpointed a few steps, then preempt.
  auto end = std::chrono::steady_clock::now() + seconds(60);
  while (std::chrono::steady_clock::now() < end &&
         std::atoi(Query("SELECT count(*) FROM checkpoints").c_str()) < 3) {
    std::this_thread::sleep_for(milliseconds(250));
  }
  ASSERT_EQ(*slurm.Poll(h), LaunchState::kRunning);
  auto sig = runner_.Run({"scancel", "--signal=USR1", "--batch", *id});
  ASSERT_TRUE(sig.ok() && sig->exit_code == 0);

  LaunchState s = LaunchState::kRunning;
  end = std::chrono::steady_clock::now() + seconds(90);
  while (std::chrono::steady_clock::now() < end) {
    auto p = slurm.Poll(h);
    ASSERT_TRUE(p.ok()) << p.status();
    s = *p;
    if (IsTerminal(s)) break;
    std::this_thread::sleep_for(milliseconds(500));
  }
  auto log_file = ReadFile(dir_ + "/slurm_smoke-" + *id + ".out");
  std::string log = log_file.ok() ? *log_file : log_file.status().ToString();
  // The contract (docs/cluster.md): sd2-worker exits 3 after a preemption, so the script
  // requeues the job. Any other exit code ends the sweep's job early.
  EXPECT_EQ(log.find("worker exited with status 3"), log.find("worker exited with status"))
      << "sd2-worker must exit 3 (preempted) after SIGUSR1; its first exit was different:\n"
      << log;
  EXPECT_EQ(s, LaunchState::kDone) << log;
  EXPECT_NE(log.find("preempted; requeueing job " + *id), std::string::npos) << log;
  EXPECT_NE(log.find("sd2: sweep done"), std::string::npos) << log;
  // Attempt 1 preempted, attempt 2 resumed from its checkpoint and succeeded.
  EXPECT_EQ(Query("SELECT state FROM trials"), "succeeded");
  EXPECT_EQ(Query("SELECT number || ':' || state FROM attempts ORDER BY number"),
            "1:preempted\n2:succeeded");
  std::string variant = Query("SELECT variant_json FROM attempts WHERE number = 2");
  EXPECT_EQ(variant.find("\"resumed_from\":0"), std::string::npos) << variant;
  EXPECT_NE(variant.find("resumed_from"), std::string::npos) << variant;
}

}  // namespace
}  // namespace sd2::cluster

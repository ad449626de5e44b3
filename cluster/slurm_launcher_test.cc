#include "cluster/slurm_launcher.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "common/file_util.h"

namespace sd2::cluster {
namespace {

class SlurmLauncherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sd2-slurm-launcher-XXXXXX";
    dir_ = mkdtemp(tmpl);
    options_.script_dir = dir_ + "/scripts";
    options_.job.time = "01:00:00";
    spec_.name = "smoke";
    spec_.coordinator = "tcp://login1:5555";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  SlurmLauncherOptions options_;
  GroupSpec spec_;
  FakeCommandRunner runner_;
};

TEST_F(SlurmLauncherTest, LaunchWritesScriptAndSubmitsParsable) {
  runner_.Expect("sbatch", {0, "4242\n", ""});
  SlurmLauncher slurm(&runner_, options_);
  auto h = slurm.Launch(spec_);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(*h, (LaunchHandle{"slurm", "4242"}));
  std::string script = options_.script_dir + "/smoke-0.sbatch";
  EXPECT_EQ(runner_.CommandLines(), (std::vector<std::string>{"sbatch --parsable " + script}));
  auto text = ReadFile(script);
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("--coordinator tcp://login1:5555"), std::string::npos);
  EXPECT_EQ(text->find("--array"), std::string::npos);
}

TEST_F(SlurmLauncherTest, LaunchManySplitsArraysByMaxArraySize) {
  runner_.Expect("scontrol", {0,
                              "Configuration data as of ...\nMaxArraySize            = 4\n"
                              "MaxJobCount             = 10000\n",
                              ""});
  runner_.Expect("sbatch", {0, "100;cluster\n", ""});
  runner_.Expect("sbatch", {0, "101\n", ""});
  runner_.Expect("sbatch", {0, "102\n", ""});
  SlurmLauncher slurm(&runner_, options_);
  auto hs = slurm.LaunchMany(spec_, 9);
  ASSERT_TRUE(hs.ok()) << hs.status();
  std::vector<std::string> ids;
  for (const auto& h : *hs) ids.push_back(h.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"100_0", "100_1", "100_2", "100_3", "101_0", "101_1",
                                           "101_2", "101_3", "102"}));
  EXPECT_EQ(runner_.CommandLines()[0], "scontrol show config");
  auto first = ReadFile(options_.script_dir + "/smoke-0.sbatch");
  EXPECT_NE(first->find("#SBATCH --array=0-3\n"), std::string::npos);
  auto last = ReadFile(options_.script_dir + "/smoke-2.sbatch");
  EXPECT_EQ(last->find("--array"), std::string::npos);
}

TEST_F(SlurmLauncherTest, SbatchFailureIsUnavailableWithItsMessage) {
  runner_.Expect("sbatch", {1, "", "sbatch: error: invalid partition specified: gpux\n"});
  SlurmLauncher slurm(&runner_, options_);
  auto h = slurm.Launch(spec_);
  EXPECT_EQ(h.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(h.status().message().find("invalid partition specified: gpux"), std::string::npos);
}

TEST_F(SlurmLauncherTest, PollRunningFromSqueue) {
  runner_.Expect("squeue", {0, "77_3|RUNNING\n", ""});
  SlurmLauncher slurm(&runner_, options_);
  EXPECT_EQ(*slurm.Poll({"slurm", "77_3"}), LaunchState::kRunning);
  EXPECT_EQ(runner_.CommandLines(),
            (std::vector<std::string>{"squeue -h -r -t all -o %i|%T -j 77_3"}));
}

TEST_F(SlurmLauncherTest, PollFinishedUsesScontrolExitCode) {
  runner_.Expect("squeue", {0, "88|FAILED\n", ""});
  runner_.Expect("scontrol", {0,
                              "JobId=88 JobName=smoke UserId=root(0) JobState=FAILED "
                              "Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 "
                              "ExitCode=3:0 RunTime=00:00:04\n",
                              ""});
  SlurmLauncher slurm(&runner_, options_);
  EXPECT_EQ(*slurm.Poll({"slurm", "88"}), LaunchState::kPreempted);
}

TEST_F(SlurmLauncherTest, PollFallsBackToSacct) {
  runner_.Expect("squeue", {1, "", "slurm_load_jobs error: Invalid job id specified\n"});
  runner_.Expect("scontrol", {1, "", "slurm_load_jobs error: Invalid job id specified\n"});
  runner_.Expect("sacct", {0, "90|COMPLETED|0:0\n", ""});
  runner_.Expect("squeue", {1, "", "Invalid job id specified\n"});
  runner_.Expect("scontrol", {1, "", "Invalid job id specified\n"});
  runner_.Expect("sacct", {0, "", ""});
  SlurmLauncher slurm(&runner_, options_);
  EXPECT_EQ(*slurm.Poll({"slurm", "90"}), LaunchState::kDone);
  EXPECT_EQ(runner_.CommandLines().back(), "sacct -n -P -X -o JobID,State,ExitCode -j 90");
  auto gone = slurm.Poll({"slurm", "91"});
  EXPECT_EQ(gone.status().code(), StatusCode::kNotFound);
}

TEST_F(SlurmLauncherTest, CancelRunsScancelAndToleratesFinishedJobs) {
  runner_.Expect("scancel", {0, "", ""});
  runner_.Expect("scancel", {1, "",
                             "scancel: error: Kill job error on job id 5: Job/step already "
                             "completing or completed\n"});
  runner_.Expect("scancel", {1, "", "scancel: error: Invalid job id 6\n"});
  SlurmLauncher slurm(&runner_, options_);
  EXPECT_TRUE(slurm.Cancel({"slurm", "5_1"}).ok());
  EXPECT_TRUE(slurm.Cancel({"slurm", "5"}).ok());
  EXPECT_EQ(slurm.Cancel({"slurm", "6"}).code(), StatusCode::kNotFound);
  EXPECT_EQ(runner_.CommandLines()[0], "scancel 5_1");
  EXPECT_EQ(slurm.Cancel({"slurm", "5;rm"}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(slurm.Cancel({"local", "5"}).code(), StatusCode::kInvalidArgument);
}

TEST(SlurmParsers, Sbatch) {
  EXPECT_EQ(*ParseSbatchParsable("123\n"), "123");
  EXPECT_EQ(*ParseSbatchParsable("sbatch: warning: x\n124;c1\n"), "124");
  EXPECT_FALSE(ParseSbatchParsable("").ok());
  EXPECT_FALSE(ParseSbatchParsable("Submitted batch job 12\n").ok());
}

TEST(SlurmParsers, StatesAndExitCodes) {
  EXPECT_EQ(*SlurmStateToLaunchState("PENDING", 0), LaunchState::kPending);
  EXPECT_EQ(*SlurmStateToLaunchState("REQUEUED", 0), LaunchState::kPending);
  EXPECT_EQ(*SlurmStateToLaunchState("COMPLETING", 0), LaunchState::kRunning);
  EXPECT_EQ(*SlurmStateToLaunchState("COMPLETED", 0), LaunchState::kDone);
  EXPECT_EQ(*SlurmStateToLaunchState("FAILED", 3), LaunchState::kPreempted);
  EXPECT_EQ(*SlurmStateToLaunchState("FAILED", 1), LaunchState::kFailed);
  EXPECT_EQ(*SlurmStateToLaunchState("PREEMPTED", 0), LaunchState::kPreempted);
  EXPECT_EQ(*SlurmStateToLaunchState("CANCELLED by 0", 0), LaunchState::kFailed);
  EXPECT_EQ(*SlurmStateToLaunchState("CANCELLED+", 0), LaunchState::kFailed);
  EXPECT_EQ(*SlurmStateToLaunchState("TIMEOUT", 0), LaunchState::kFailed);
  EXPECT_EQ(SlurmStateToLaunchState("EXPLODED", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseSlurmExitCode("3:0"), 3);
  EXPECT_EQ(*ParseSlurmExitCode("0:15"), 128 + 15);
  EXPECT_FALSE(ParseSlurmExitCode("3").ok());
  EXPECT_FALSE(ParseSlurmExitCode("a:b").ok());
}

TEST(SlurmParsers, SqueueSacctScontrolConfig) {
  EXPECT_EQ(ParseSqueueState("5_0|RUNNING\n5_1|PENDING\n", "5_1"), std::string("PENDING"));
  EXPECT_EQ(ParseSqueueState("5_0|RUNNING\n", "5"), std::nullopt);
  auto rec = ParseSacct("7|RUNNING|0:0\n7_2|FAILED|3:0\n", "7_2");
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ((*rec)->state, "FAILED");
  EXPECT_EQ((*rec)->exit_code, 3);
  EXPECT_FALSE(ParseSacct("garbage\n", "7").ok());
  auto kv = ParseScontrolRecord("JobId=9 JobState=RUNNING Reason=None ExitCode=0:0");
  EXPECT_EQ(kv["JobState"], "RUNNING");
  EXPECT_EQ(kv["ExitCode"], "0:0");
  EXPECT_EQ(*ParseMaxArraySize("MaxArraySize            = 1001\n"), 1001);
  EXPECT_EQ(ParseMaxArraySize("MaxJobCount = 5\n").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ParseMaxArraySize("MaxArraySize = lots\n").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(SplitIntoArrays(2500, 1001), (std::vector<int>{1001, 1001, 498}));
  EXPECT_EQ(SplitIntoArrays(3, 1), (std::vector<int>{1, 1, 1}));
  EXPECT_TRUE(SplitIntoArrays(0, 10).empty());
}

}  // namespace
}  // namespace sd2::cluster

#include "cluster/local_launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <thread>

#include "common/file_util.h"

namespace sd2::cluster {
namespace {

GroupSpec Spec() {
  GroupSpec spec;
  spec.name = "smoke";
  spec.ranks = 2;
  spec.coordinator = "tcp://127.0.0.1:5555";
  spec.work_dir = "/scratch/sd2";
  spec.idle_exit_seconds = 60;
  spec.env = {{"NCCL_DEBUG", "INFO"}};
  return spec;
}

TEST(LocalMpirunLauncher, RunsTheExactMpirunCommand) {
  FakeCommandRunner runner;
  LocalMpirunOptions opts;
  opts.worker_binary = "/opt/sd2/bin/sd2-worker";
  opts.hostfile = "/tmp/hosts";
  opts.map_by = "ppr:1:node";
  opts.oversubscribe = true;
  opts.pass_env = {"NCCL_SOCKET_IFNAME", "CUDA_VISIBLE_DEVICES"};
  LocalMpirunLauncher launcher(&runner, opts);
  auto h = launcher.Launch(Spec());
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->launcher, "local");
  EXPECT_EQ(h->id, "1000");
  ASSERT_EQ(runner.calls().size(), 1u);
  EXPECT_EQ(runner.CommandLines()[0],
            "mpirun -np 2 --hostfile /tmp/hosts --map-by ppr:1:node --oversubscribe "
            "-x NCCL_SOCKET_IFNAME -x CUDA_VISIBLE_DEVICES -x NCCL_DEBUG=INFO "
            "/opt/sd2/bin/sd2-worker --coordinator tcp://127.0.0.1:5555 --work-dir /scratch/sd2 "
            "--idle-exit 60");
  EXPECT_EQ(runner.calls()[0].env, (EnvMap{{"NCCL_DEBUG", "INFO"}}));
}

TEST(LocalMpirunLauncher, MapsExitCodesToStates) {
  FakeCommandRunner runner;
  LocalMpirunLauncher launcher(&runner, {});
  auto a = launcher.Launch(Spec());
  auto b = launcher.Launch(Spec());
  auto c = launcher.Launch(Spec());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(*launcher.Poll(*a), LaunchState::kRunning);
  runner.Finish(1000, 0);
  runner.Finish(1001, kWorkerExitPreempted);
  runner.Finish(1002, 1);
  EXPECT_EQ(*launcher.Poll(*a), LaunchState::kDone);
  EXPECT_EQ(*launcher.Poll(*b), LaunchState::kPreempted);
  EXPECT_EQ(*launcher.Poll(*c), LaunchState::kFailed);
  // Remembered after the process was reaped.
  EXPECT_EQ(*launcher.Poll(*b), LaunchState::kPreempted);
  // Cancel of a finished group sends nothing.
  EXPECT_TRUE(launcher.Cancel(*a).ok());
  EXPECT_TRUE(runner.signals().empty());
}

TEST(LocalMpirunLauncher, CancelSendsSigtermToMpirun) {
  FakeCommandRunner runner;
  LocalMpirunLauncher launcher(&runner, {});
  auto h = launcher.Launch(Spec());
  ASSERT_TRUE(h.ok());
  ASSERT_TRUE(launcher.Cancel(*h).ok());
  ASSERT_EQ(runner.signals().size(), 1u);
  EXPECT_EQ(runner.signals()[0], (std::pair<int64_t, int>{1000, SIGTERM}));
}

TEST(LocalMpirunLauncher, RejectsBadInput) {
  FakeCommandRunner runner;
  LocalMpirunLauncher launcher(&runner, {});
  GroupSpec spec = Spec();
  spec.coordinator.clear();
  EXPECT_EQ(launcher.Launch(spec).status().code(), StatusCode::kInvalidArgument);
  spec = Spec();
  spec.ranks = 0;
  auto r = launcher.Launch(spec);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("ranks must be >= 1"), std::string::npos);
  EXPECT_EQ(launcher.Poll({"slurm", "12"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(launcher.Poll({"local", "12x"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(runner.calls().empty());
  runner.FailStarts(true);
  EXPECT_EQ(launcher.Launch(Spec()).status().code(), StatusCode::kNotFound);
}

// A real process through SystemCommandRunner: a fake "mpirun" script that runs the worker
// command it is given, with a fake worker that exits 3 on SIGTERM (as sd2-worker does).
TEST(LocalMpirunLauncher, RealProcessCancelEndsPreempted) {
  char tmpl[] = "/tmp/sd2-local-launcher-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string mpirun = dir + "/fake-mpirun";
  std::string worker = dir + "/fake-worker";
  // Drop "-np N" and "-x VAR" and run the rest.
  ASSERT_TRUE(WriteFileAtomic(mpirun,
                              "#!/bin/bash\n"
                              "while [[ $# -gt 0 && $1 == -* ]]; do shift 2; done\n"
                              "exec \"$@\"\n")
                  .ok());
  ASSERT_TRUE(WriteFileAtomic(worker,
                              "#!/bin/bash\n"
                              "echo \"worker $* NCCL_DEBUG=$NCCL_DEBUG\"\n"
                              "trap 'echo checkpoint; exit 3' TERM\n"
                              "while :; do sleep 0.05; done\n")
                  .ok());
  std::filesystem::permissions(mpirun, std::filesystem::perms::owner_all);
  std::filesystem::permissions(worker, std::filesystem::perms::owner_all);
  SystemCommandRunner runner;
  LocalMpirunOptions opts;
  opts.mpirun = mpirun;
  opts.worker_binary = worker;
  opts.log_dir = dir + "/logs";
  LocalMpirunLauncher launcher(&runner, opts);
  GroupSpec spec = Spec();
  spec.work_dir.clear();
  spec.idle_exit_seconds = 0;
  auto h = launcher.Launch(spec);
  ASSERT_TRUE(h.ok()) << h.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(*launcher.Poll(*h), LaunchState::kRunning);
  ASSERT_TRUE(launcher.Cancel(*h).ok());
  LaunchState s = LaunchState::kRunning;
  for (int i = 0; i < 500 && s == LaunchState::kRunning; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    s = *launcher.Poll(*h);
  }
  EXPECT_EQ(s, LaunchState::kPreempted);
  auto log = ReadFile(dir + "/logs/smoke.log");
  ASSERT_TRUE(log.ok());
  // The ranks got the worker command and the spec's environment, and checkpointed on SIGTERM
  // (bash may also print "Terminated" for its sleep child).
  EXPECT_EQ(log->rfind("worker --coordinator tcp://127.0.0.1:5555 NCCL_DEBUG=INFO\n", 0), 0u)
      << *log;
  EXPECT_NE(log->find("checkpoint\n"), std::string::npos) << *log;
  std::filesystem::remove_all(dir);
}

TEST(WriteHostFile, WritesSlotsPerHost) {
  char tmpl[] = "/tmp/sd2-hostfile-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  ASSERT_TRUE(WriteHostFile(dir + "/hosts", {"node01", "node02"}, 4).ok());
  EXPECT_EQ(*ReadFile(dir + "/hosts"), "node01 slots=4\nnode02 slots=4\n");
  EXPECT_EQ(WriteHostFile(dir + "/h", {}, 4).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteHostFile(dir + "/h", {"a b"}, 4).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteHostFile(dir + "/h", {"a"}, 0).code(), StatusCode::kInvalidArgument);
  std::filesystem::remove_all(dir);
}

TEST(LocalMpirunLauncher, GpuGroupsStartWorkersOnCuda) {
  FakeCommandRunner runner;
  LocalMpirunLauncher launcher(&runner, {});
  GroupSpec spec = Spec();
  spec.gpus_per_rank = 1;
  ASSERT_TRUE(launcher.Launch(spec).ok());
  spec.devices = "cpu";  // the user's word wins
  ASSERT_TRUE(launcher.Launch(spec).ok());
  ASSERT_EQ(runner.calls().size(), 2u);
  EXPECT_EQ(runner.CommandLines()[0],
            "mpirun -np 2 -x NCCL_DEBUG=INFO sd2-worker --coordinator tcp://127.0.0.1:5555 "
            "--work-dir /scratch/sd2 --idle-exit 60 --devices cuda");
  EXPECT_EQ(runner.CommandLines()[1],
            "mpirun -np 2 -x NCCL_DEBUG=INFO sd2-worker --coordinator tcp://127.0.0.1:5555 "
            "--work-dir /scratch/sd2 --idle-exit 60 --devices cpu");
}

}  // namespace
}  // namespace sd2::cluster

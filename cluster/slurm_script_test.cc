#include "cluster/slurm_script.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "cluster/command_runner.h"
#include "common/file_util.h"

namespace sd2::cluster {
namespace {

namespace fs = std::filesystem;

GroupSpec PaperGroup() {
  GroupSpec spec;
  spec.name = "table6_scaling";
  spec.ranks = 8;
  spec.nodes = 2;
  spec.gpus_per_rank = 1;
  spec.cpus_per_rank = 8;
  spec.coordinator = "tcp://login1:5555";
  spec.work_dir = "/shared/sd2/work";
  spec.idle_exit_seconds = 300;
  spec.env = {{"NCCL_SOCKET_IFNAME", "ib0"}};
  return spec;
}

SlurmJobOptions PaperJob() {
  SlurmJobOptions job;
  job.partition = "gpu";
  job.account = "sd2proj";
  job.time = "12:00:00";
  job.signal_seconds = 300;
  job.output_dir = "/shared/sd2/logs";
  job.extra_sbatch = {"--constraint=a100"};
  return job;
}

AllocationSpec PaperAllocation() {
  AllocationSpec a;
  a.name = "table6_scaling";
  a.sweep_file = "/shared/sd2/sweeps/table6_scaling.toml";
  a.db_path = "/shared/sd2/sd2.db";
  a.nodes = 4;
  a.tasks_per_node = 4;
  a.group_size = 8;
  a.gpus_per_rank = 1;
  a.cpus_per_rank = 8;
  a.work_dir = "/shared/sd2/work";
  a.vars = {{"data_root", "/shared/data/df40"}};
  return a;
}

// Compares with cluster/testdata/NAME; SD2_UPDATE_GOLDEN=1 rewrites the file instead.
void ExpectGolden(const std::string& name, const std::string& text) {
  std::string path = std::string(SD2_SOURCE_DIR) + "/cluster/testdata/" + name;
  if (std::getenv("SD2_UPDATE_GOLDEN")) {
    ASSERT_TRUE(WriteFileAtomic(path, text).ok());
    return;
  }
  auto golden = ReadFile(path);
  ASSERT_TRUE(golden.ok()) << golden.status();
  EXPECT_EQ(text, *golden) << "rendered script differs from " << path
                           << " (SD2_UPDATE_GOLDEN=1 rewrites it)";
}

// bash -n: the rendered script parses.
void ExpectBashSyntaxOk(const std::string& script) {
  SystemCommandRunner runner;
  auto r = runner.Run({"bash", "-n", "-c", script});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 0) << r->err;
}

TEST(SlurmScript, GroupsArrayMatchesGolden) {
  auto script = RenderGroupsScript(PaperGroup(), PaperJob(), 6);
  ASSERT_TRUE(script.ok()) << script.status();
  ExpectGolden("groups.sbatch", *script);
  ExpectBashSyntaxOk(*script);
}

TEST(SlurmScript, AllocationMatchesGolden) {
  SlurmJobOptions job = PaperJob();
  job.rank_launcher = RankLauncher::kMpirun;
  auto script = RenderAllocationScript(PaperAllocation(), job);
  ASSERT_TRUE(script.ok()) << script.status();
  ExpectGolden("allocation.sbatch", *script);
  ExpectBashSyntaxOk(*script);
}

TEST(SlurmScript, SingleJobHasNoArrayAndCpuGroupsNoGpus) {
  GroupSpec spec = PaperGroup();
  spec.gpus_per_rank = 0;
  SlurmJobOptions job;
  auto script = RenderGroupsScript(spec, job, 1);
  ASSERT_TRUE(script.ok());
  EXPECT_EQ(script->find("--array"), std::string::npos);
  EXPECT_EQ(script->find("--gpus-per-node"), std::string::npos);
  EXPECT_EQ(script->find("--partition"), std::string::npos);
  EXPECT_NE(script->find("#SBATCH --output=%x-%j.out\n"), std::string::npos);
  EXPECT_NE(script->find("#SBATCH --ntasks-per-node=4\n"), std::string::npos);
}

TEST(SlurmScript, RejectsBadInputWithPreciseMessages) {
  auto expect_error = [](StatusOr<std::string> r, const std::string& what) {
    ASSERT_FALSE(r.ok()) << "expected an error about " << what;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status();
  };
  SlurmJobOptions job = PaperJob();
  job.time = "12h";
  expect_error(RenderGroupsScript(PaperGroup(), job, 1), "bad Slurm time '12h'");
  job = PaperJob();
  job.time = "00:04:00";
  expect_error(RenderGroupsScript(PaperGroup(), job, 1), "must be shorter than the time limit");
  job = PaperJob();
  job.partition = "gpu\n#SBATCH --exclusive";
  expect_error(RenderGroupsScript(PaperGroup(), job, 1), "partition must not contain a newline");
  job = PaperJob();
  job.extra_sbatch = {"exclusive"};
  expect_error(RenderGroupsScript(PaperGroup(), job, 1), "must start with '-'");
  GroupSpec spec = PaperGroup();
  spec.ranks = 7;
  expect_error(RenderGroupsScript(spec, PaperJob(), 1), "do not split evenly over 2 nodes");
  spec = PaperGroup();
  spec.coordinator.clear();
  expect_error(RenderGroupsScript(spec, PaperJob(), 1), "coordinator endpoint is required");
  spec = PaperGroup();
  spec.env = {{"1BAD", "x"}};
  expect_error(RenderGroupsScript(spec, PaperJob(), 1), "bad environment variable name '1BAD'");
  expect_error(RenderGroupsScript(PaperGroup(), PaperJob(), 0), "array size must be >= 1");
  job = PaperJob();
  job.rank_launcher = RankLauncher::kDirect;
  expect_error(RenderGroupsScript(PaperGroup(), job, 1), "'direct' runs one rank");
  AllocationSpec a = PaperAllocation();
  a.group_size = 5;
  expect_error(RenderAllocationScript(a, PaperJob()), "group size 5 does not divide the 16 ranks");
  a = PaperAllocation();
  a.db_path.clear();
  expect_error(RenderAllocationScript(a, PaperJob()), "no database path");
  EXPECT_EQ(ParseRankLauncher("pdsh").status().code(), StatusCode::kInvalidArgument);
}

TEST(SlurmTime, ParsesSlurmFormats) {
  EXPECT_EQ(*ParseSlurmTime("30"), 1800);
  EXPECT_EQ(*ParseSlurmTime("10:30"), 630);
  EXPECT_EQ(*ParseSlurmTime("12:00:00"), 43200);
  EXPECT_EQ(*ParseSlurmTime("1-00"), 86400);
  EXPECT_EQ(*ParseSlurmTime("2-01:30"), 2 * 86400 + 5400);
  EXPECT_EQ(*ParseSlurmTime("1-00:00:10"), 86410);
  for (const char* bad : {"", ":", "1:2:3:4", "a", "10:", "-5", "0", "1--2"}) {
    EXPECT_FALSE(ParseSlurmTime(bad).ok()) << bad;
  }
}

// Runs a rendered groups script under plain bash (the #SBATCH lines are comments) with a
// fake worker and a fake scontrol on PATH, and checks the trap, the re-wait and the requeue.
class ScriptBehaviour : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sd2-script-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    WriteExe("scontrol", "#!/bin/bash\necho \"$*\" >> " + dir_ + "/scontrol.calls\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void WriteExe(const std::string& name, const std::string& text) {
    ASSERT_TRUE(WriteFileAtomic(dir_ + "/" + name, text).ok());
    fs::permissions(dir_ + "/" + name, fs::perms::owner_all);
  }

  // Starts the script; returns the bash pid.
  int64_t StartScript(SystemCommandRunner& runner, const std::string& script) {
    EXPECT_TRUE(WriteFileAtomic(dir_ + "/job.sbatch", script).ok());
    EnvMap env = {{"SD2_WORKER", dir_ + "/worker"},
                  {"SLURM_JOB_ID", "4242"},
                  {"PATH", dir_ + ":" + std::string(std::getenv("PATH"))}};
    auto pid = runner.Start({"bash", dir_ + "/job.sbatch"}, env, dir_ + "/job.out");
    EXPECT_TRUE(pid.ok()) << pid.status();
    return pid.ok() ? *pid : -1;
  }

  int WaitExit(SystemCommandRunner& runner, int64_t pid) {
    for (int i = 0; i < 1000; ++i) {
      auto r = runner.TryWait(pid);
      if (!r.ok()) return -1;
      if (r->has_value()) return **r;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    runner.Signal(pid, SIGKILL).ok();  // do not leave it behind
    WaitExitAfterKill(runner, pid);
    return -2;
  }

  static void WaitExitAfterKill(SystemCommandRunner& runner, int64_t pid) {
    for (int i = 0; i < 100; ++i) {
      auto r = runner.TryWait(pid);
      if (!r.ok() || r->has_value()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  bool WaitForFile(const std::string& path) {
    for (int i = 0; i < 500; ++i) {
      if (fs::exists(path)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::string Rendered() {
    GroupSpec spec;
    spec.name = "behaviour";
    spec.coordinator = "tcp://127.0.0.1:1";
    SlurmJobOptions job;
    job.rank_launcher = RankLauncher::kDirect;
    auto s = RenderGroupsScript(spec, job, 1);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : "";
  }

  std::string dir_;
};

TEST_F(ScriptBehaviour, Usr1IsForwardedAndThePreemptedJobRequeuesItself) {
  // The worker takes 300 ms to "checkpoint" after USR1, so the script must wait again after
  // the trap interrupted its first wait.
  WriteExe("worker",
           "#!/bin/bash\n"
           "echo \"$*\" > " +
               dir_ +
               "/worker.args\n"
               "trap 'sleep 0.3; echo ckpt > " +
               dir_ +
               "/checkpoint; exit 3' USR1\n"
               "touch " +
               dir_ +
               "/started\n"
               "while :; do sleep 0.05; done\n");
  SystemCommandRunner runner;
  int64_t pid = StartScript(runner, Rendered());
  ASSERT_TRUE(WaitForFile(dir_ + "/started"));
  ASSERT_EQ(kill(pid_t(pid), SIGUSR1), 0);  // to the batch shell only, as B:USR1 does
  EXPECT_EQ(WaitExit(runner, pid), 0);
  EXPECT_TRUE(fs::exists(dir_ + "/checkpoint"));
  EXPECT_EQ(*ReadFile(dir_ + "/worker.args"), "--coordinator tcp://127.0.0.1:1\n");
  EXPECT_EQ(*ReadFile(dir_ + "/scontrol.calls"), "requeue 4242\n");
  auto out = ReadFile(dir_ + "/job.out");
  EXPECT_NE(out->find("forwarding it to the worker"), std::string::npos) << *out;
  EXPECT_NE(out->find("worker exited with status 3"), std::string::npos) << *out;
}

TEST_F(ScriptBehaviour, CleanExitDoesNotRequeue) {
  WriteExe("worker", "#!/bin/bash\nexit 0\n");
  SystemCommandRunner runner;
  int64_t pid = StartScript(runner, Rendered());
  EXPECT_EQ(WaitExit(runner, pid), 0);
  EXPECT_FALSE(fs::exists(dir_ + "/scontrol.calls"));
}

TEST_F(ScriptBehaviour, FailureExitCodePropagates) {
  WriteExe("worker", "#!/bin/bash\nexit 5\n");
  SystemCommandRunner runner;
  int64_t pid = StartScript(runner, Rendered());
  EXPECT_EQ(WaitExit(runner, pid), 5);
  EXPECT_FALSE(fs::exists(dir_ + "/scontrol.calls"));
}

// TERM comes from scancel (the user wants it stopped) or from a preemption Slurm requeues
// itself: forwarded, but no requeue from the script.
TEST_F(ScriptBehaviour, TermIsForwardedButNotRequeued) {
  WriteExe("worker",
           "#!/bin/bash\n"
           "trap 'exit 3' TERM\n"
           "touch " +
               dir_ +
               "/started\n"
               "while :; do sleep 0.05; done\n");
  SystemCommandRunner runner;
  int64_t pid = StartScript(runner, Rendered());
  ASSERT_TRUE(WaitForFile(dir_ + "/started"));
  ASSERT_EQ(kill(pid_t(pid), SIGTERM), 0);
  EXPECT_EQ(WaitExit(runner, pid), 0);
  EXPECT_FALSE(fs::exists(dir_ + "/scontrol.calls"));
  auto out = ReadFile(dir_ + "/job.out");
  EXPECT_NE(out->find("stopped by SIGTERM; not requeueing"), std::string::npos) << *out;
}

// Groups with GPUs start their workers on CUDA in both shapes, and ask Slurm for tasks per
// node x GPUs per rank, as --gpus-per-node or --gres; the user's --devices wins.
TEST(SlurmScript, GpuGroupsRunTheirWorkersOnCuda) {
  auto groups = RenderGroupsScript(PaperGroup(), PaperJob(), 1);
  ASSERT_TRUE(groups.ok()) << groups.status();
  EXPECT_NE(groups->find("#SBATCH --ntasks-per-node=4\n#SBATCH --cpus-per-task=8\n"
                         "#SBATCH --gpus-per-node=4\n"),
            std::string::npos)
      << *groups;
  EXPECT_NE(groups->find("--idle-exit 300 --devices cuda &\n"), std::string::npos) << *groups;
  auto alloc = RenderAllocationScript(PaperAllocation(), PaperJob());
  ASSERT_TRUE(alloc.ok()) << alloc.status();
  EXPECT_NE(alloc->find("#SBATCH --gpus-per-node=4\n"), std::string::npos);
  EXPECT_NE(alloc->find("--work-dir /shared/sd2/work --devices cuda &\n"), std::string::npos)
      << *alloc;

  SlurmJobOptions gres = PaperJob();
  gres.gpu_request = "gres";
  GroupSpec two = PaperGroup();
  two.gpus_per_rank = 2;
  auto g = RenderGroupsScript(two, gres, 1);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_NE(g->find("#SBATCH --gres=gpu:8\n"), std::string::npos) << *g;
  EXPECT_EQ(g->find("--gpus-per-node"), std::string::npos);
  AllocationSpec a = PaperAllocation();
  a.tasks_per_node = 2;
  auto ga = RenderAllocationScript(a, gres);
  ASSERT_TRUE(ga.ok()) << ga.status();
  EXPECT_NE(ga->find("#SBATCH --gres=gpu:2\n"), std::string::npos) << *ga;

  // Explicit devices: the user's choice, in the spec or among the worker arguments, once.
  GroupSpec cpu = PaperGroup();
  cpu.devices = "cpu";
  auto c = RenderGroupsScript(cpu, PaperJob(), 1);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(c->find("--idle-exit 300 --devices cpu &\n"), std::string::npos) << *c;
  EXPECT_NE(c->find("#SBATCH --gpus-per-node=4\n"), std::string::npos);
  GroupSpec own = PaperGroup();
  own.worker_args = {"--devices=cpu"};
  auto o = RenderGroupsScript(own, PaperJob(), 1);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->find("--devices cuda"), std::string::npos) << *o;
  EXPECT_NE(o->find("--idle-exit 300 --devices=cpu &\n"), std::string::npos) << *o;
  a = PaperAllocation();
  a.devices = "cpu";
  auto ac = RenderAllocationScript(a, PaperJob());
  ASSERT_TRUE(ac.ok());
  EXPECT_NE(ac->find("--devices cpu &\n"), std::string::npos) << *ac;

  // CPU groups get no --devices at all (the worker's default).
  GroupSpec none = PaperGroup();
  none.gpus_per_rank = 0;
  auto n = RenderGroupsScript(none, PaperJob(), 1);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->find("--devices"), std::string::npos);
  EXPECT_EQ(n->find("gpu:"), std::string::npos);

  SlurmJobOptions bad = PaperJob();
  bad.gpu_request = "gpus";
  auto b = RenderGroupsScript(PaperGroup(), bad, 1);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("gpu_request 'gpus': expected gpus-per-node or gres"),
            std::string::npos)
      << b.status();
  GroupSpec bad_dev = PaperGroup();
  bad_dev.devices = "gpu";
  auto bd = RenderGroupsScript(bad_dev, PaperJob(), 1);
  ASSERT_FALSE(bd.ok());
  EXPECT_NE(bd.status().message().find("devices 'gpu' must be cpu or cuda"), std::string::npos);
}

}  // namespace
}  // namespace sd2::cluster

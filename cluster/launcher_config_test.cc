#include "cluster/launcher_config.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace sd2::cluster {
namespace {

using json = nlohmann::json;

TEST(LauncherConfig, DefaultsToNoneAndMakesNothing) {
  auto c = ParseLauncherConfig(json());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kind, "none");
  FakeCommandRunner runner;
  EXPECT_EQ(MakeLauncher(*c, &runner).status().code(), StatusCode::kFailedPrecondition);
}

TEST(LauncherConfig, SlurmConfigReachesTheLauncherAndItsScripts) {
  auto c = ParseLauncherConfig(json::parse(R"({
    "kind": "slurm", "groups": 3, "ranks": 4, "gpus_per_rank": 1, "nodes": 2,
    "cpus_per_rank": 6, "idle_exit": 120, "env": {"NCCL_SOCKET_IFNAME": "ib0"},
    "worker": "/opt/sd2/bin/sd2-worker", "script_dir": "/tmp/sd2-launcher-config-test",
    "partition": "gpu", "time": "02:00:00", "signal_seconds": 90, "rank_launcher": "mpirun",
    "sbatch": ["--constraint=a100"], "backoff_initial_s": 1.5, "backoff_max_s": 60,
    "max_failures": 3})"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->groups, 3);
  EXPECT_EQ(c->group.nodes, 2);
  EXPECT_EQ(c->group.env.at("NCCL_SOCKET_IFNAME"), "ib0");
  EXPECT_EQ(c->slurm.job.rank_launcher, RankLauncher::kMpirun);
  EXPECT_EQ(c->keeper.initial_backoff, std::chrono::milliseconds(1500));
  EXPECT_EQ(c->keeper.max_consecutive_failures, 3);
  FakeCommandRunner runner;
  runner.Expect("sbatch", {0, "77\n", ""});
  auto l = MakeLauncher(*c, &runner);
  ASSERT_TRUE(l.ok()) << l.status();
  GroupSpec spec = c->group;
  spec.coordinator = "tcp://login1:5555";
  auto h = (*l)->Launch(spec);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->id, "77");
  EXPECT_EQ(runner.CommandLines()[0],
            "sbatch --parsable /tmp/sd2-launcher-config-test/sd2-0.sbatch");
  std::filesystem::remove_all("/tmp/sd2-launcher-config-test");
}

TEST(LauncherConfig, LocalConfigBuildsTheMpirunCommand) {
  auto c = ParseLauncherConfig(json::parse(R"({"kind": "local", "ranks": 2,
      "hostfile": "/etc/sd2/hosts", "oversubscribe": true, "pass_env": ["PATH"]})"));
  ASSERT_TRUE(c.ok()) << c.status();
  FakeCommandRunner runner;
  auto l = MakeLauncher(*c, &runner);
  ASSERT_TRUE(l.ok());
  GroupSpec spec = c->group;
  spec.coordinator = "tcp://127.0.0.1:5555";
  ASSERT_TRUE((*l)->Launch(spec).ok());
  EXPECT_EQ(runner.CommandLines()[0],
            "mpirun -np 2 --hostfile /etc/sd2/hosts --oversubscribe -x PATH sd2-worker "
            "--coordinator tcp://127.0.0.1:5555");
}

TEST(LauncherConfig, BadInputNamesTheKey) {
  auto expect_error = [](const char* text, const std::string& what) {
    auto c = ParseLauncherConfig(json::parse(text));
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find(what), std::string::npos) << c.status();
  };
  expect_error(R"({"kind": "pbs"})", "launcher.kind: 'pbs'");
  expect_error(R"({"partiton": "gpu"})", "launcher.partiton: unknown key");
  expect_error(R"({"groups": "4"})", "launcher.groups: expected an integer");
  expect_error(R"({"groups": -1})", "launcher.groups: must be >= 0");
  expect_error(R"({"ranks": 0})", "launcher: group spec: ranks must be >= 1");
  expect_error(R"({"env": {"A": 1}})", "launcher.env.A: expected a string");
  expect_error(R"({"kind": "slurm"})", "launcher.script_dir: required");
  expect_error(R"({"kind": "slurm", "script_dir": "/x", "time": "1h"})", "bad Slurm time '1h'");
  expect_error(R"({"rank_launcher": "pdsh"})", "launcher.rank_launcher: unknown rank launcher");
  expect_error(R"({"backoff_initial_s": 10, "backoff_max_s": 5})", "launcher.backoff_max_s");
  expect_error(R"([1, 2])", "launcher: expected a table");
  expect_error(R"({"devices": "gpu"})", "launcher: group spec: devices 'gpu' must be cpu or cuda");
  expect_error(R"({"kind": "slurm", "script_dir": "/x", "gpu_request": "tres"})",
               "launcher: gpu_request 'tres': expected gpus-per-node or gres");
}

TEST(LauncherConfig, GpuShapesStartCudaWorkersAndDevicesOverrides) {
  auto c = ParseLauncherConfig(json::parse(R"({"kind": "local", "ranks": 2, "gpus_per_rank": 1})"));
  ASSERT_TRUE(c.ok()) << c.status();
  FakeCommandRunner runner;
  auto l = MakeLauncher(*c, &runner);
  ASSERT_TRUE(l.ok());
  GroupSpec spec = c->group;
  spec.coordinator = "tcp://127.0.0.1:5555";
  ASSERT_TRUE((*l)->Launch(spec).ok());
  EXPECT_EQ(runner.CommandLines()[0],
            "mpirun -np 2 sd2-worker --coordinator tcp://127.0.0.1:5555 --devices cuda");
  auto s = ParseLauncherConfig(json::parse(R"({"kind": "slurm", "script_dir": "/x",
      "gpu_request": "gres", "devices": "cpu"})"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->slurm.job.gpu_request, "gres");
  EXPECT_EQ(s->group.devices, "cpu");
}

}  // namespace
}  // namespace sd2::cluster

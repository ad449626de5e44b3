// The ZeroMQ shell and the Lazy Pirate client, end to end on a loopback port.
#include "coordinator/server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <thread>

#include "cluster/command_runner.h"
#include "cluster/launcher_config.h"
#include "cluster/slurm_launcher.h"
#include "coordinator/client.h"
#include "coordinator/group_launching.h"

namespace sd2::coordinator {
namespace {

namespace proto = sd2::protocol;

coordinator::ClientOptions Opts25() {
  coordinator::ClientOptions o;
  o.timeout_s = 2;
  o.give_up_s = 5;
  return o;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sd2_server_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto s = storage::Store::Open((dir_ / "sd2.db").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
    core_ = std::make_unique<Core>(store_.get(), &clock_, CoreOptions{});
    ASSERT_TRUE(core_->Recover().ok());
    ServerOptions o;
    o.bind = "tcp://127.0.0.1:*";
    o.max_message_bytes = 1 << 20;
    o.stop_signals = {SIGUSR2};
    server_ = std::make_unique<Server>(core_.get(), o);
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { run_status_ = server_->Run(); });
  }
  void TearDown() override {
    if (thread_.joinable()) {
      server_->Stop();
      thread_.join();
    }
    server_.reset();
    core_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
  SystemClock clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Core> core_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  Status run_status_;
};

TEST_F(ServerTest, AStopSignalEndsRunThroughTheLoop) {
  Client c(server_->endpoint(), Opts25());
  ASSERT_TRUE(c.Call(proto::StatusRequest{}).ok());  // the loop runs
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);         // the default action would end the process
  thread_.join();
  EXPECT_TRUE(run_status_.ok()) << run_status_;
}

TEST_F(ServerTest, ServesAWholeTrialOverZeroMq) {
  Client c(server_->endpoint(), Opts25());
  proto::Submit sub;
  sub.name = "s";
  proto::TrialSpec t;
  t.key = "k1";
  t.method = "smoke";
  t.config = {{"method", "smoke"}};
  sub.trials = {t};
  auto submitted = c.CallAs<proto::Submitted>(sub);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->queued, 1);
  proto::Register reg;
  reg.group = "g";
  reg.size = 1;
  ASSERT_TRUE(c.CallAs<proto::Registered>(reg).ok());
  auto grant = c.CallAs<proto::LeaseGrant>(proto::LeaseRequest{"g"});
  ASSERT_TRUE(grant.ok()) << grant.status();
  EXPECT_EQ(grant->trial_key, "k1");
  std::vector<proto::MetricRow> rows;
  for (int i = 0; i < 10000; ++i) rows.push_back({i, i, "loss", 1.0 / (i + 1), 1.0 * i});
  auto ack = c.CallAs<proto::Ack>(proto::MetricsBatch{"k1", 1, rows, "g"});
  ASSERT_TRUE(ack.ok()) << ack.status();
  EXPECT_EQ(ack->accepted, 10000);
  ASSERT_TRUE(c.CallAs<proto::Ack>(proto::Result{"g", "k1", 1, "succeeded", "", {}}).ok());
  EXPECT_EQ(*store_->CountRows("metrics"), 10000);
  // Shutdown ends Run.
  ASSERT_TRUE(c.CallAs<proto::Ack>(proto::Shutdown{}).ok());
  thread_.join();
  EXPECT_TRUE(run_status_.ok()) << run_status_;
}

TEST_F(ServerTest, MalformedAndOversizedRequestsGetErrorsAndTheServerKeepsGoing) {
  Client c(server_->endpoint(), Opts25());
  auto r = c.CallRaw("{{{");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(proto::ReplyStatus(*r).message(), "message is not valid JSON");
  auto big = c.CallRaw(std::string(1536 * 1024, ' '));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(proto::ReplyStatus(*big).code(), StatusCode::kResourceExhausted);
  auto st = c.CallRaw(proto::Encode(proto::StatusRequest{}));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->type, "status_reply");
  EXPECT_EQ(st->body["counters"]["malformed"], 2);
}

TEST(ClientTest, GivesUpWhenNobodyAnswers) {
  coordinator::ClientOptions quick;
  quick.timeout_s = 0.2;
  quick.give_up_s = 0.5;
  Client c("tcp://127.0.0.1:1", quick);
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.Call(proto::StatusRequest{});
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("tcp://127.0.0.1:1"), std::string::npos);
  EXPECT_LT(s, 2.0);
}

// A Slurm controller that does not answer: squeue hangs until the test releases it (at most
// 30 s), then says the job runs.
class HangingSqueue : public cluster::CommandRunner {
 public:
  StatusOr<cluster::CommandResult> Run(const std::vector<std::string>&,
                                       std::chrono::milliseconds) override {
    std::unique_lock<std::mutex> lock(mu_);
    ++calls_;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return released_; });
    return cluster::CommandResult{0, "1234|RUNNING\n", ""};
  }
  StatusOr<int64_t> Start(const std::vector<std::string>&, const cluster::EnvMap&,
                          const std::string&) override {
    return UnimplementedError("no Start");
  }
  StatusOr<std::optional<int>> TryWait(int64_t) override { return NotFoundError("no pid"); }
  Status Signal(int64_t, int) override { return NotFoundError("no pid"); }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  bool WaitForCall() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return calls_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_ = 0;
  bool released_ = false;
};

TEST(ServerSlurmTest, StatusAnswersAndLeasesHoldWhileSqueueHangs) {
  auto dir = std::filesystem::temp_directory_path() /
             ("sd2_server_slurm_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = storage::Store::Open((dir / "sd2.db").string());
  ASSERT_TRUE(store.ok()) << store.status();
  SystemClock clock;
  CoreOptions co;
  co.lease_s = 1;
  Core core(store->get(), &clock, co);
  ASSERT_TRUE(core.Recover().ok());
  cluster::LauncherConfig config;
  config.kind = "slurm";
  config.slurm.script_dir = (dir / "slurm").string();
  config.slurm.max_array_size = 100;
  cluster::FakeCommandRunner submit_runner;
  submit_runner.Expect("sbatch", {0, "1234\n", ""});
  cluster::SlurmLauncher launcher(&submit_runner, config.slurm);
  HangingSqueue poll_runner;
  cluster::SlurmLauncher poller(&poll_runner, config.slurm);
  std::unique_ptr<SweepGroups> groups;
  ServerOptions o;
  o.bind = "tcp://127.0.0.1:*";
  o.tick_s = 0.1;
  o.stop_when = [&groups] {
    if (groups) groups->Tick();
    return false;
  };
  Server server(&core, o);
  ASSERT_TRUE(server.Bind().ok());
  groups = std::make_unique<SweepGroups>(&core, config, &launcher, server.endpoint(), nullptr,
                                         std::chrono::steady_clock::now, &poller);
  Status run_status;
  std::thread loop([&] { run_status = server.Run(); });

  Client c(server.endpoint(), Opts25());
  proto::Submit sub;
  sub.name = "s";
  proto::TrialSpec t;
  t.key = "k1";
  t.method = "smoke";
  t.config = {{"method", "smoke"}};
  sub.trials = {t};
  ASSERT_TRUE(c.CallAs<proto::Submitted>(sub).ok());
  proto::Register reg;
  reg.group = "g";
  reg.host = "h";
  reg.size = 1;
  ASSERT_TRUE(c.CallAs<proto::Registered>(reg).ok());
  ASSERT_TRUE(c.CallAs<proto::LeaseGrant>(proto::LeaseRequest{"g"}).ok());
  // The loop launched a group for the sweep and asked Slurm for its state: squeue hangs.
  ASSERT_TRUE(poll_runner.WaitForCall());
  // For three lease periods, a group heartbeats every 0.25 s and sd2ctl status is asked.
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < end) {
    auto start = std::chrono::steady_clock::now();
    auto st = c.Call(proto::StatusRequest{});
    ASSERT_TRUE(st.ok()) << st.status();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
    auto hb = c.CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g", "k1", 1, 1});
    ASSERT_TRUE(hb.ok()) << hb.status();
    EXPECT_FALSE(hb->stop) << hb->reason;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // the heartbeat period
  }
  EXPECT_EQ(core.counters().leases_expired, 0);
  poll_runner.Release();
  server.Stop();
  loop.join();
  EXPECT_TRUE(run_status.ok()) << run_status;
  groups.reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd2::coordinator

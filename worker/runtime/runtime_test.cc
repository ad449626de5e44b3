// The worker runtime against an in-process coordinator (real Core + Server on loopback), and
// the smoke method on a local communicator.
#include "worker/runtime/runtime.h"
#include "worker/runtime/blas_setup.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/file_util.h"
#include "coordinator/client.h"
#include "coordinator/server.h"
#include "worker/comm/mpi_communicator.h"
#include "worker/method.h"
#include "worker/runtime/smoke_method.h"

namespace sd2::worker {
namespace {

namespace proto = sd2::protocol;

coordinator::ClientOptions Opts25() {
  coordinator::ClientOptions o;
  o.timeout_s = 2;
  o.give_up_s = 5;
  return o;
}
using nlohmann::json;

class RuntimeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { RegisterAllMethods(); }
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sd2_runtime_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
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
  void StartCoordinator() {
    auto s = storage::Store::Open((dir_ / "sd2.db").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
    coordinator::CoreOptions co;
    co.lease_s = 5;
    co.heartbeat_s = 0.2;
    co.no_work_retry_s = 0.05;
    core_ = std::make_unique<coordinator::Core>(store_.get(), &clock_, co);
    ASSERT_TRUE(core_->Recover().ok());
    coordinator::ServerOptions so;
    so.bind = "tcp://127.0.0.1:*";
    so.tick_s = 0.05;
    server_ = std::make_unique<coordinator::Server>(core_.get(), so);
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { (void)server_->Run(); });
  }
  static proto::TrialSpec Smoke(const std::string& key, double duration_s, int steps) {
    proto::TrialSpec t;
    t.key = key;
    t.method = "smoke";
    t.config = {{"method", "smoke"},
                {"hparams", {{"duration_s", duration_s}, {"steps", steps}}},
                {"eval", json::array({{{"name", "A"}}, {{"name", "B"}}})}};
    return t;
  }
  GroupOptions Opts() {
    GroupOptions o;
    o.coordinator = server_->endpoint();
    o.work_dir = (dir_ / "work").string();
    o.exit_when_drained = true;
    o.give_up_s = 10;
    return o;
  }
  std::string TrialState(const std::string& key) {
    auto t = store_->FindTrialByKey(key);
    return t.ok() && t->has_value() ? (*t)->state : "?";
  }

  std::filesystem::path dir_;
  coordinator::SystemClock clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<coordinator::Core> core_;
  std::unique_ptr<coordinator::Server> server_;
  std::thread thread_;
};

TEST_F(RuntimeTest, GroupRunsASmokeSweepThroughTheCoordinator) {
  StartCoordinator();
  coordinator::Client c(server_->endpoint(), Opts25());
  proto::Submit sub;
  sub.name = "smoke";
  sub.trials = {Smoke("t1", 0.02, 4), Smoke("t2", 0.02, 4), Smoke("t3", 0.02, 4)};
  auto submitted = c.CallAs<proto::Submitted>(sub);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto comm = MakeLocalCommunicator();
  Status s = RunGroup(Opts(), comm.get());
  ASSERT_TRUE(s.ok()) << s;
  for (const char* k : {"t1", "t2", "t3"}) EXPECT_EQ(TrialState(k), "succeeded") << k;
  EXPECT_EQ(*store_->CountRows("metrics"), 12);
  EXPECT_EQ(*store_->CountRows("scores"), 3 * 2 * 100);
  EXPECT_GE(*store_->CountRows("checkpoints"), 3);
  auto t = store_->FindTrialByKey("t2");
  auto a = store_->ListAttempts((*t)->id);
  ASSERT_EQ(a->size(), 1u);
  EXPECT_EQ(a->at(0).variant_json, R"({"resumed_from":0,"smoke":1})");
  auto scores = store_->ListScores(a->at(0).id, "B");
  ASSERT_EQ(scores->size(), 100u);
  auto expected = SmokeScores("t2", "B", 100);
  EXPECT_EQ(scores->at(42).sample_id, expected[42].sample_id);
  EXPECT_DOUBLE_EQ(scores->at(42).score, expected[42].score);
}

TEST_F(RuntimeTest, CancelStopsARunningTrialWithinSeconds) {
  StartCoordinator();
  coordinator::Client c(server_->endpoint(), Opts25());
  proto::Submit sub;
  sub.name = "long";
  sub.trials = {Smoke("long", 60, 600)};
  auto submitted = c.CallAs<proto::Submitted>(sub);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto comm = MakeLocalCommunicator();
  auto t0 = std::chrono::steady_clock::now();
  std::thread canceller([&] {
    coordinator::Client cc(server_->endpoint(), Opts25());
    for (int i = 0; i < 100 && TrialState("long") != "running"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    proto::Cancel cancel;
    cancel.trial_key = "long";
    (void)cc.Call(cancel);
  });
  Status s = RunGroup(Opts(), comm.get());
  canceller.join();
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_LT(took, 5.0);
  EXPECT_EQ(TrialState("long"), "cancelled");
  auto t = store_->FindTrialByKey("long");
  EXPECT_EQ(store_->ListAttempts((*t)->id)->at(0).state, "cancelled");
}

TEST_F(RuntimeTest, FailingAttemptsAreRetriedAndTheCheckpointResumes) {
  StartCoordinator();
  coordinator::Client c(server_->endpoint(), Opts25());
  proto::Submit sub;
  sub.name = "retry";
  auto t = Smoke("flaky", 0.01, 6);
  t.config["hparams"]["fail_attempts"] = 1;
  sub.trials = {t};
  auto submitted = c.CallAs<proto::Submitted>(sub);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  auto comm = MakeLocalCommunicator();
  Status s = RunGroup(Opts(), comm.get());  // waits out the 1 s back-off
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(TrialState("flaky"), "succeeded");
  auto row = store_->FindTrialByKey("flaky");
  auto attempts = *store_->ListAttempts((*row)->id);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].state, "failed");
  EXPECT_NE(attempts[0].error.find("failing attempt 1 on purpose"), std::string::npos);
  // Attempt 2 resumed from the finished checkpoint: no steps left to run.
  EXPECT_EQ(attempts[1].variant_json, R"({"resumed_from":6,"smoke":1})");
  EXPECT_EQ(store_->ListMetrics(attempts[1].id)->size(), 0u);
}

TEST_F(RuntimeTest, PreemptionCheckpointsAndRequeuesWithoutAFailure) {
  StartCoordinator();
  coordinator::Client c(server_->endpoint(), Opts25());
  proto::Submit sub;
  sub.name = "preempt";
  auto spec = Smoke("pre", 30, 300);
  spec.max_attempts = 1;  // a preemption must not use up the only attempt
  sub.trials = {spec};
  auto submitted = c.CallAs<proto::Submitted>(sub);
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  InstallPreemptionHandlers();
  std::thread signaller([&] {
    for (int i = 0; i < 100 && TrialState("pre") != "running"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    ::raise(SIGUSR1);
  });
  auto comm = MakeLocalCommunicator();
  Status s = RunGroup(Opts(), comm.get());  // returns after the preempted trial
  signaller.join();
  EXPECT_TRUE(PreemptionRequested());
  TEST_ResetPreemption();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(TrialState("pre"), "queued");
  auto t = store_->FindTrialByKey("pre");
  auto attempts = *store_->ListAttempts((*t)->id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].state, "preempted");
  auto cks = *store_->ListCheckpoints(attempts[0].id);
  ASSERT_FALSE(cks.empty());
  auto step = ReadFile((dir_ / "work" / "pre" / "smoke_step").string());
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(std::to_string(cks.back().step), *step);
}

TEST_F(RuntimeTest, SmokeChecksCollectives) {
  auto bad = MakeLocalCommunicator(/*fail_after=*/0);
  TrialContext ctx;
  ctx.config = {{"method", "smoke"}};
  ctx.trial_key = "k";
  ctx.work_dir = dir_.string();
  ctx.comm = bad.get();
  auto m = MethodRegistry::Global().Create("smoke");
  ASSERT_TRUE(m.ok());
  Status s = (*m)->Run(ctx);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
}

TEST_F(RuntimeTest, RunLocalWritesMetricsAndScores) {
  auto comm = MakeLocalCommunicator();
  json config = {{"method", "smoke"},
                 {"hparams", {{"duration_s", 0.0}, {"steps", 3}}},
                 {"eval", json::array({{{"name", "CDF"}}})}};
  std::string out = (dir_ / "out").string();
  Status s = RunLocal(config, "abc", out, comm.get());
  ASSERT_TRUE(s.ok()) << s;
  auto metrics = ReadFile(out + "/metrics.jsonl");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(std::count(metrics->begin(), metrics->end(), '\n'), 3);
  auto csv = ReadFile(out + "/CDF/scores.csv");
  ASSERT_TRUE(csv.ok());
  EXPECT_EQ(csv->substr(0, 30), "sample,video,label,type,score\n");
  EXPECT_EQ(std::count(csv->begin(), csv->end(), '\n'), 101);
  json unknown = {{"method", "nope"}};
  Status u = RunLocal(unknown, "x", out, comm.get());
  EXPECT_EQ(u.code(), StatusCode::kNotFound);
  EXPECT_NE(u.message().find("unknown method 'nope'"), std::string::npos);
}

TEST(BlasSetupTest, PicksKernelsOnlyWhenOpenBlasFellBack) {
  EXPECT_EQ(BetterBlasCoretype("Prescott", true, true), "SkylakeX");
  EXPECT_EQ(BetterBlasCoretype("Prescott", false, true), "Haswell");
  EXPECT_EQ(BetterBlasCoretype("Prescott", false, false), "");
  EXPECT_EQ(BetterBlasCoretype("Haswell", true, true), "");  // OpenBLAS knew the CPU
  EXPECT_EQ(BetterBlasCoretype("", true, true), "");
}

}  // namespace
}  // namespace sd2::worker

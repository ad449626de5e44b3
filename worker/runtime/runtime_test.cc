// The worker runtime against an in-process coordinator (real Core + Server on loopback), and
// the smoke method on a local communicator.
#include "worker/runtime/runtime.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>
#include <zmq.hpp>

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

// A coordinator front for the score-upload tests: the real Core behind a ROUTER socket of its
// own, which refuses (an error reply, as a coordinator whose disk is full answers) or drops (no
// reply) the first `refuse`/`drop` scores messages and serves everything else.
class FlakyScoresCoordinator {
 public:
  FlakyScoresCoordinator(coordinator::Core* core, int refuse, int drop)
      : core_(core), refuse_(refuse), drop_(drop), socket_(ctx_, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FlakyScoresCoordinator() {
    done_ = true;
    thread_.join();
  }
  const std::string& endpoint() const { return endpoint_; }
  int scores_seen() const { return scores_seen_.load(); }

 private:
  void Loop() {
    while (!done_) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(20));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t identity, payload;
      if (!socket_.recv(identity) || !socket_.recv(payload)) continue;
      const std::string bytes = payload.to_string();
      std::string reply;
      auto msg = proto::Decode(bytes);
      if (msg.ok() && msg->type == proto::ScoresBatch::kType) {
        int n = ++scores_seen_;
        if (n <= drop_) continue;
        if (n <= drop_ + refuse_) {
          reply = proto::ErrorReply(ResourceExhaustedError("refused by the test: disk full"));
        }
      }
      if (reply.empty()) reply = core_->HandleBytes(bytes);
      socket_.send(identity, zmq::send_flags::sndmore);
      socket_.send(zmq::buffer(reply), zmq::send_flags::none);
    }
  }

  coordinator::Core* core_;
  const int refuse_;
  const int drop_;
  std::atomic<int> scores_seen_{0};
  std::atomic<bool> done_{false};
  zmq::context_t ctx_;
  zmq::socket_t socket_;
  std::string endpoint_;
  std::thread thread_;
};

// One smoke trial (two eval sets of 100 scores, one attempt) run by a group whose coordinator
// refuses or drops score uploads.
class ScoreUploadTest : public RuntimeTest {
 protected:
  void RunAgainst(int refuse, int drop, double give_up_s) {
    StartCoordinator();
    coordinator::Client c(server_->endpoint(), Opts25());
    proto::Submit sub;
    sub.name = "scores";
    auto spec = Smoke("sc", 0.01, 2);
    spec.max_attempts = 1;
    sub.trials = {spec};
    ASSERT_TRUE(c.CallAs<proto::Submitted>(sub).ok());
    server_->Stop();  // from here on the Core is served by the flaky front only
    thread_.join();
    FlakyScoresCoordinator flaky(core_.get(), refuse, drop);
    GroupOptions o = Opts();
    o.coordinator = flaky.endpoint();
    o.give_up_s = give_up_s;
    auto comm = MakeLocalCommunicator();
    auto t0 = std::chrono::steady_clock::now();
    group_ = RunGroup(o, comm.get());
    took_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    scores_seen_ = flaky.scores_seen();
    auto t = store_->FindTrialByKey("sc");
    attempts_ = *store_->ListAttempts((*t)->id);
  }
  Status group_;
  double took_s_ = 0;
  int scores_seen_ = 0;
  std::vector<storage::AttemptRow> attempts_;
};

TEST_F(ScoreUploadTest, RefusedThenAcceptedIsRetried) {
  RunAgainst(/*refuse=*/3, /*drop=*/0, /*give_up_s=*/5);
  ASSERT_TRUE(group_.ok()) << group_;
  EXPECT_EQ(TrialState("sc"), "succeeded");
  EXPECT_EQ(scores_seen_, 3 + 2);  // three refusals of set A, then A and B
  EXPECT_EQ(*store_->CountRows("scores"), 2 * 100);
}

TEST_F(ScoreUploadTest, AlwaysRefusedFailsTheAttempt) {
  RunAgainst(/*refuse=*/1000, /*drop=*/0, /*give_up_s=*/1.5);
  ASSERT_TRUE(group_.ok()) << group_;
  EXPECT_EQ(TrialState("sc"), "failed");
  ASSERT_EQ(attempts_.size(), 1u);
  EXPECT_EQ(attempts_[0].state, "failed");
  EXPECT_NE(attempts_[0].error.find("scores of A: not acknowledged after"), std::string::npos)
      << attempts_[0].error;
  EXPECT_NE(attempts_[0].error.find("refused by the test: disk full"), std::string::npos)
      << attempts_[0].error;
  EXPECT_GE(scores_seen_, 3);  // retried with back-off until give_up_s
  EXPECT_EQ(*store_->CountRows("scores"), 0);
  EXPECT_LT(took_s_, 10.0);
}

TEST_F(ScoreUploadTest, AlwaysDroppedFailsTheAttempt) {
  RunAgainst(/*refuse=*/0, /*drop=*/1000, /*give_up_s=*/1.5);
  ASSERT_TRUE(group_.ok()) << group_;
  EXPECT_EQ(TrialState("sc"), "failed");
  ASSERT_EQ(attempts_.size(), 1u);
  EXPECT_NE(attempts_[0].error.find("scores of A: not acknowledged after"), std::string::npos)
      << attempts_[0].error;
  EXPECT_NE(attempts_[0].error.find("no reply from the coordinator"), std::string::npos)
      << attempts_[0].error;
  EXPECT_GE(scores_seen_, 1);
  EXPECT_EQ(*store_->CountRows("scores"), 0);
  EXPECT_LT(took_s_, 10.0);
}

TEST_F(RuntimeTest, NonFiniteScoresAreATrialError) {
  MethodRegistry::Global().Register("nan_scores", [] {
    struct NanScores : Method {
      Status Run(TrialContext& ctx) override {
        std::vector<ScoreRow> rows(3);
        for (int i = 0; i < 3; ++i) rows[i] = {"s" + std::to_string(i), "v", i % 2, "FS", 0.5};
        rows[2].score = std::nan("");
        ctx.report_scores("A", rows);
        return OkStatus();
      }
    };
    return std::make_unique<NanScores>();
  });
  StartCoordinator();
  coordinator::Client c(server_->endpoint(), Opts25());
  proto::Submit sub;
  sub.name = "nan";
  proto::TrialSpec t;
  t.key = "nan";
  t.method = "nan_scores";
  t.config = {{"method", "nan_scores"}};
  t.max_attempts = 1;
  sub.trials = {t};
  ASSERT_TRUE(c.CallAs<proto::Submitted>(sub).ok());
  auto comm = MakeLocalCommunicator();
  ASSERT_TRUE(RunGroup(Opts(), comm.get()).ok());
  EXPECT_EQ(TrialState("nan"), "failed");
  auto row = store_->FindTrialByKey("nan");
  auto attempts = *store_->ListAttempts((*row)->id);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].error,
            "INVALID_ARGUMENT: scores of A: row 2 (sample 's2') has score nan; no score of the "
            "set was kept (did training diverge?)");
  EXPECT_EQ(*store_->CountRows("scores"), 0);
  // RunLocal refuses them too.
  Status local = RunLocal({{"method", "nan_scores"}}, "x", (dir_ / "local").string(), comm.get());
  EXPECT_EQ(local.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "local" / "A" / "scores.csv"));
}

TEST_F(RuntimeTest, WorkDirsAndReadPathsStayConfined) {
  StartCoordinator();
  namespace fs = std::filesystem;
  fs::create_directories(dir_ / "outside");
  fs::create_directories(dir_ / "data" / "sub");
  fs::create_directory_symlink(dir_ / "outside", dir_ / "data" / "escape");
  fs::create_directories(dir_ / "work");
  // A symlink planted where a trial's work dir goes, pointing out of --work-dir.
  fs::create_directory_symlink(dir_ / "outside", dir_ / "work" / "esc");
  auto spec = [&](const std::string& key, json data, json probe = nullptr) {
    proto::TrialSpec t = Smoke(key, 0.01, 2);
    t.max_attempts = 1;
    t.config["data"] = std::move(data);
    if (!probe.is_null()) t.config["probe"] = std::move(probe);
    return t;
  };
  const std::string in = (dir_ / "data" / "sub").string();
  proto::Submit sub;
  sub.name = "confined";
  sub.trials = {
      spec("esc", {{"root", in}}),
      spec("ok", {{"root", in}, {"manifest", in + "/m.jsonl"}}),
      spec("far", {{"root", (dir_ / "outside").string()}}),
      spec("viasymlink",
           {{"root", in}, {"manifest", (dir_ / "data" / "escape" / "m.jsonl").string()}}),
      spec("dotdot", {{"root", in + "/../../outside"}}),
      spec("probe", {{"root", in}}, {{"of", "../../x"}}),
  };
  coordinator::Client c(server_->endpoint(), Opts25());
  ASSERT_TRUE(c.CallAs<proto::Submitted>(sub).ok());
  GroupOptions o = Opts();
  o.allow_read_roots = {(dir_ / "data").string()};
  auto comm = MakeLocalCommunicator();
  ASSERT_TRUE(RunGroup(o, comm.get()).ok());
  auto error = [&](const std::string& key) {
    auto t = store_->FindTrialByKey(key);
    auto a = store_->ListAttempts((*t)->id);
    return a->empty() ? std::string("no attempt") : a->back().error;
  };
  EXPECT_EQ(TrialState("ok"), "succeeded") << error("ok");
  EXPECT_EQ(TrialState("esc"), "failed");
  EXPECT_NE(error("esc").find("work/esc is a symlink (to "), std::string::npos) << error("esc");
  EXPECT_TRUE(fs::is_empty(dir_ / "outside"));  // nothing was written through it
  for (const char* key : {"far", "viasymlink", "dotdot"}) {
    EXPECT_EQ(TrialState(key), "failed") << key;
    EXPECT_NE(error(key).find("is outside the worker's allowed read roots (" +
                              (dir_ / "data").string() + "; sd2-worker --allow-read-root)"),
              std::string::npos)
        << error(key);
  }
  EXPECT_NE(error("viasymlink").find("data.manifest"), std::string::npos);
  EXPECT_EQ(TrialState("probe"), "failed");
  EXPECT_NE(error("probe").find("config.probe.of \"../../x\" is not a trial key"),
            std::string::npos)
      << error("probe");
}

}  // namespace
}  // namespace sd2::worker

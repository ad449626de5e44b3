// The ZeroMQ shell and the Lazy Pirate client, end to end on a loopback port.
#include "coordinator/server.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "coordinator/client.h"

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
  auto ack = c.CallAs<proto::Ack>(proto::MetricsBatch{"k1", 1, rows});
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

}  // namespace
}  // namespace sd2::coordinator

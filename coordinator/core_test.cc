// Coordinator core with a fake clock and direct calls (no transport).
#include "coordinator/core.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace sd2::coordinator {
namespace {

namespace proto = sd2::protocol;
using nlohmann::json;

class CoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sd2_core_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    OpenCore();
  }
  void TearDown() override {
    core_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  // (Re)opens the store and a fresh core on it, as a restarted coordinator does.
  void OpenCore() {
    core_.reset();
    store_.reset();
    auto s = storage::Store::Open((dir_ / "sd2.db").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
    options_.lease_s = 10;
    options_.backoff_base_s = 2;
    core_ = std::make_unique<Core>(store_.get(), &clock_, options_);
    ASSERT_TRUE(core_->Recover().ok());
  }

  template <typename T>
  proto::Message Call(const T& m) {
    auto d = proto::Decode(core_->HandleBytes(proto::Encode(m)));
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : proto::Message{};
  }
  template <typename R, typename T>
  R CallAs(const T& m) {
    proto::Message reply = Call(m);
    auto r = proto::ParseAs<R>(reply);
    EXPECT_TRUE(r.ok()) << r.status() << " reply: " << reply.body.dump();
    return r.ok() ? *r : R{};
  }

  static proto::TrialSpec Spec(const std::string& key, int ranks = 1, int max_attempts = 3) {
    proto::TrialSpec t;
    t.key = key;
    t.method = "smoke";
    t.config = {{"method", "smoke"}, {"seed", 0}};
    t.resources = {{"ranks", ranks}, {"gpus_per_rank", 0}};
    t.max_attempts = max_attempts;
    return t;
  }
  proto::Submitted Submit(std::vector<proto::TrialSpec> trials, int priority = 0,
                          bool force = false) {
    proto::Submit s;
    s.name = "sweep";
    s.spec_toml = "# test";
    s.priority = priority;
    s.force = force;
    s.trials = std::move(trials);
    return CallAs<proto::Submitted>(s);
  }
  void Register(const std::string& group, int size = 1, std::vector<proto::LeaseRef> held = {}) {
    proto::Register r;
    r.group = group;
    r.host = "h";
    r.size = size;
    r.held = std::move(held);
    last_registered_ = CallAs<proto::Registered>(r);
  }
  proto::Message Lease(const std::string& group) { return Call(proto::LeaseRequest{group}); }
  proto::LeaseGrant Grant(const std::string& group) {
    return CallAs<proto::LeaseGrant>(proto::LeaseRequest{group});
  }
  std::string TrialState(const std::string& key) {
    auto t = store_->FindTrialByKey(key);
    return t.ok() && t->has_value() ? (*t)->state : "?";
  }
  std::vector<storage::AttemptRow> Attempts(const std::string& key) {
    auto t = store_->FindTrialByKey(key);
    return *store_->ListAttempts((*t)->id);
  }

  std::filesystem::path dir_;
  FakeClock clock_{1000};
  CoreOptions options_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Core> core_;
  proto::Registered last_registered_;
};

TEST_F(CoreTest, RunsASweepToCompletion) {
  auto sub = Submit({Spec("a"), Spec("b")});
  EXPECT_EQ(sub.trials, 2);
  EXPECT_EQ(sub.queued, 2);
  Register("g1");
  auto g = Grant("g1");
  EXPECT_EQ(g.trial_key, "a");
  EXPECT_EQ(g.attempt, 1);
  EXPECT_EQ(g.config["method"], "smoke");
  EXPECT_EQ(g.resources["ranks"], 1);
  EXPECT_EQ(TrialState("a"), "running");
  auto hb = CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 3});
  EXPECT_FALSE(hb.stop);
  EXPECT_EQ(Attempts("a")[0].state, "running");
  auto ack = CallAs<proto::Ack>(proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}}});
  EXPECT_EQ(ack.accepted, 1);
  auto ack2 =
      CallAs<proto::Ack>(proto::ScoresBatch{"a", 1, 0, "smoke", {{"s", "v", 1, "FS", 0.9}}});
  EXPECT_EQ(ack2.accepted, 1);
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "succeeded", "", {{"lc", "mean"}}});
  EXPECT_EQ(TrialState("a"), "succeeded");
  EXPECT_EQ(Attempts("a")[0].variant_json, R"({"lc":"mean"})");
  EXPECT_EQ(Grant("g1").trial_key, "b");
  CallAs<proto::Ack>(proto::Result{"g1", "b", 1, "succeeded", "", {}});
  EXPECT_EQ(store_->GetSweep(sub.sweep_id)->state, "done");
  auto nw = CallAs<proto::NoWork>(proto::LeaseRequest{"g1"});
  EXPECT_TRUE(nw.drained);
  EXPECT_TRUE(core_->Drained());
  auto st = core_->StatusJson(sub.sweep_id);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)["sweep"], sub.sweep_id);
  EXPECT_EQ((*st)["trials"]["succeeded"], 2);
  EXPECT_EQ((*st)["trials"]["total"], 2);
  EXPECT_EQ((*st)["groups"][0]["id"], "g1");
}

TEST_F(CoreTest, DedupesSucceededKeysUnlessForced) {
  Submit({Spec("a")});
  Register("g1");
  Grant("g1");
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "succeeded", "", {}});
  auto again = Submit({Spec("a")});
  EXPECT_EQ(again.reused, 1);
  EXPECT_EQ(again.queued, 0);
  EXPECT_EQ(store_->GetSweep(again.sweep_id)->state, "done");
  EXPECT_TRUE(CallAs<proto::NoWork>(proto::LeaseRequest{"g1"}).drained);
  EXPECT_EQ((*store_->CountSweep(again.sweep_id)).reused, 1);
  auto forced = Submit({Spec("a")}, 0, /*force=*/true);
  EXPECT_EQ(forced.queued, 1);
  auto g = Grant("g1");
  EXPECT_EQ(g.trial_key, "a");
  EXPECT_EQ(g.attempt, 2);
}

TEST_F(CoreTest, ExpiredLeaseIsLostAndRetriedAfterBackoff) {
  Submit({Spec("a")});
  Register("g1");
  Grant("g1");
  clock_.Advance(9);
  EXPECT_EQ(core_->Tick(), 0);
  CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 0});  // renews to t+10
  clock_.Advance(9);
  EXPECT_EQ(core_->Tick(), 0);
  clock_.Advance(2);
  EXPECT_EQ(core_->Tick(), 1);
  EXPECT_EQ(Attempts("a")[0].state, "lost");
  EXPECT_EQ(TrialState("a"), "queued");
  // Back-off: 2 s after the first failure.
  Register("g2");
  EXPECT_EQ(Lease("g2").type, "no_work");
  clock_.Advance(2.5);
  auto g = Grant("g2");
  EXPECT_EQ(g.trial_key, "a");
  EXPECT_EQ(g.attempt, 2);
}

TEST_F(CoreTest, StaleLeaseHolderIsToldToStop) {
  Submit({Spec("a")});
  Register("g1");
  Grant("g1");
  clock_.Advance(11);
  core_->Tick();
  clock_.Advance(5);
  Register("g2");
  EXPECT_EQ(Grant("g2").attempt, 2);
  // g1 comes back: its heartbeat, data and result are refused; its re-register says stop.
  auto hb = CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 5});
  EXPECT_TRUE(hb.stop);
  EXPECT_EQ(hb.reason, "lease lost");
  auto m = Call(proto::MetricsBatch{"a", 1, {{0, 0, "loss", 1, 1}}});
  EXPECT_EQ(proto::ReplyStatus(m).code(), StatusCode::kAborted);
  auto r = Call(proto::Result{"g1", "a", 1, "succeeded", "", {}});
  EXPECT_EQ(proto::ReplyStatus(r).code(), StatusCode::kAborted);
  Register("g1", 1, {{"a", 1}});
  ASSERT_EQ(last_registered_.stop.size(), 1u);
  EXPECT_TRUE(last_registered_.keep.empty());
  // g2's attempt is unaffected and succeeds once.
  CallAs<proto::Ack>(proto::Result{"g2", "a", 2, "succeeded", "", {}});
  int succeeded = 0;
  for (const auto& a : Attempts("a")) succeeded += a.state == "succeeded";
  EXPECT_EQ(succeeded, 1);
}

TEST_F(CoreTest, RetriesAreLimitedAndKeepTheLastError) {
  Submit({Spec("a", 1, /*max_attempts=*/2)});
  Register("g1");
  Grant("g1");
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "failed", "nan loss", {}});
  EXPECT_EQ(TrialState("a"), "queued");
  clock_.Advance(100);
  EXPECT_EQ(Grant("g1").attempt, 2);
  CallAs<proto::Ack>(proto::Result{"g1", "a", 2, "failed", "nan loss again", {}});
  EXPECT_EQ(TrialState("a"), "failed");
  EXPECT_EQ((*store_->FindTrialByKey("a"))->last_error, "nan loss again");
  clock_.Advance(100);
  EXPECT_EQ(Lease("g1").type, "no_work");
}

TEST_F(CoreTest, PreemptionRequeuesWithoutCountingAsFailure) {
  Submit({Spec("a", 1, /*max_attempts=*/1)});
  Register("g1");
  Grant("g1");
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "preempted", "", {}});
  EXPECT_EQ(TrialState("a"), "queued");
  auto g = Grant("g1");  // no back-off either
  EXPECT_EQ(g.attempt, 2);
  CallAs<proto::Ack>(proto::Result{"g1", "a", 2, "succeeded", "", {}});
  EXPECT_EQ(TrialState("a"), "succeeded");
}

TEST_F(CoreTest, CancelReachesTheRunningGroup) {
  auto sub = Submit({Spec("a"), Spec("b")});
  Register("g1");
  Grant("g1");
  proto::Cancel c;
  c.sweep = sub.sweep_id;
  EXPECT_EQ(CallAs<proto::Ack>(c).accepted, 2);
  EXPECT_EQ(TrialState("b"), "cancelled");
  auto hb = CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 1});
  EXPECT_TRUE(hb.stop);
  EXPECT_EQ(hb.reason, "cancelled");
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "cancelled", "", {}});
  EXPECT_EQ(TrialState("a"), "cancelled");
  EXPECT_EQ(Attempts("a")[0].state, "cancelled");
  EXPECT_EQ(Lease("g1").type, "no_work");
  EXPECT_EQ(store_->GetSweep(sub.sweep_id)->state, "cancelled");
  // Resume puts them back.
  EXPECT_EQ(CallAs<proto::Ack>(proto::Resume{sub.sweep_id}).accepted, 2);
  EXPECT_EQ(Grant("g1").trial_key, "a");
  proto::Cancel bad;
  bad.trial_key = "nope";
  EXPECT_EQ(proto::ReplyStatus(Call(bad)).code(), StatusCode::kNotFound);
}

TEST_F(CoreTest, RestartKeepsLeasesForReconnectingGroups) {
  Submit({Spec("a"), Spec("b")});
  Register("g1");
  Register("g2");
  Grant("g1");
  Grant("g2");
  CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 1});
  CallAs<proto::Ack>(proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}}});
  // The coordinator dies and comes back 30 s later (past the old deadline).
  clock_.Advance(30);
  OpenCore();
  EXPECT_EQ(core_->Tick(), 0);  // leases are measured from the restart
  // g1 reconnects with its lease; g2 never does.
  Register("g1", 1, {{"a", 1}});
  ASSERT_EQ(last_registered_.keep.size(), 1u);
  auto hb = CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 2});
  EXPECT_FALSE(hb.stop);
  // Resent metrics are not duplicated.
  auto ack = CallAs<proto::Ack>(
      proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}, {1, 2, "loss", 0.4, 2.0}}});
  EXPECT_EQ(ack.accepted, 1);
  EXPECT_EQ(ack.duplicates, 1);
  clock_.Advance(11);
  CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 3});
  EXPECT_EQ(core_->Tick(), 1);  // g2's lease on b expired
  EXPECT_EQ(Attempts("b")[0].state, "lost");
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "succeeded", "", {}});
  // A result resent after a lost reply is acknowledged, not applied twice.
  auto dup = CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "succeeded", "", {}});
  EXPECT_EQ(dup.duplicates, 1);
  EXPECT_EQ(Attempts("a").size(), 1u);
  EXPECT_EQ(*store_->CountRows("metrics"), 2);
}

TEST_F(CoreTest, ResentLeaseRequestGetsTheSameGrant) {
  Submit({Spec("a"), Spec("b")});
  Register("g1");
  auto g1 = Grant("g1");
  auto g2 = Grant("g1");
  EXPECT_EQ(g1.trial_key, g2.trial_key);
  EXPECT_EQ(g1.attempt, g2.attempt);
  EXPECT_EQ(*store_->CountRows("attempts"), 1);
}

TEST_F(CoreTest, MatchesResourcesAndPriorities) {
  Submit({Spec("big", /*ranks=*/2)});
  auto gpu = Spec("gpu");
  gpu.resources["gpus_per_rank"] = 1;
  Submit({gpu});
  Submit({Spec("urgent")}, /*priority=*/5);
  Register("small", 1);
  Register("pair", 2);
  EXPECT_EQ(Grant("small").trial_key, "urgent");
  CallAs<proto::Ack>(proto::Result{"small", "urgent", 1, "succeeded", "", {}});
  EXPECT_EQ(Lease("small").type, "no_work");  // big needs 2 ranks, gpu needs cuda
  EXPECT_EQ(Grant("pair").trial_key, "big");
  proto::Register cuda;
  cuda.group = "cuda";
  cuda.size = 1;
  cuda.devices = "cuda";
  CallAs<proto::Registered>(cuda);
  EXPECT_EQ(Grant("cuda").trial_key, "gpu");
}

TEST_F(CoreTest, DependenciesWaitAndFailWithTheirParent) {
  auto probe = Spec("probe");
  probe.depends_on = "enc";
  Submit({Spec("enc", 1, 1), probe});
  Register("g1");
  Register("g2");
  EXPECT_EQ(Grant("g1").trial_key, "enc");
  EXPECT_EQ(Lease("g2").type, "no_work");
  CallAs<proto::Ack>(proto::Result{"g1", "enc", 1, "failed", "oom", {}});
  core_->Tick();
  EXPECT_EQ(TrialState("probe"), "failed");
  EXPECT_NE((*store_->FindTrialByKey("probe"))->last_error.find("dependency enc failed"),
            std::string::npos);
  auto orphan = Spec("orphan");
  orphan.depends_on = "missing";
  proto::Submit s;
  s.name = "x";
  s.trials = {orphan};
  Status st = proto::ReplyStatus(Call(s));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "trial orphan depends on unknown trial missing");
  EXPECT_FALSE(store_->FindTrialByKey("orphan")->has_value());  // rolled back
}

TEST_F(CoreTest, MalformedMessagesGetErrorsAndAreCounted) {
  auto reply = proto::Decode(core_->HandleBytes("garbage"));
  ASSERT_TRUE(reply.ok());
  EXPECT_EQ(reply->type, "error");
  EXPECT_EQ(proto::ReplyStatus(*reply).message(), "message is not valid JSON");
  auto big = proto::Decode(core_->HandleBytes(std::string(2000, 'x'), 1000));
  EXPECT_EQ(proto::ReplyStatus(*big).code(), StatusCode::kResourceExhausted);
  auto unknown = proto::Decode(core_->HandleBytes(R"({"v":1,"type":"fly"})"));
  EXPECT_EQ(proto::ReplyStatus(*unknown).message(), "unknown message type 'fly'");
  auto bad = proto::Decode(core_->HandleBytes(R"({"v":1,"type":"heartbeat","group":3})"));
  EXPECT_EQ(proto::ReplyStatus(*bad).message(),
            "heartbeat: field 'group': expected a string, got integer");
  EXPECT_EQ(core_->counters().malformed, 4);
  // Requests from unregistered groups are refused, not crashed on.
  EXPECT_EQ(proto::ReplyStatus(Lease("nobody")).code(), StatusCode::kFailedPrecondition);
  // And the core still works.
  Submit({Spec("a")});
  Register("g1");
  EXPECT_EQ(Grant("g1").trial_key, "a");
}

TEST_F(CoreTest, DeeplyNestedMessagesAreRefusedBeforeAnyCopy) {
  // ~200 KB each, far under the byte limit: 100,000 nested arrays in the fields the Core copies
  // (register.versions, result.variant, a submitted trial's config) and at the top level.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string messages[] = {
      R"({"v":1,"type":"register","group":"g9","size":1,"versions":{"x":)" + deep + "}}",
      R"({"v":1,"type":"result","group":"g9","trial":"a","attempt":1,"outcome":"succeeded",)"
      R"("variant":{"x":)" +
          deep + "}}",
      R"({"v":1,"type":"submit","name":"s","trials":[{"key":"a","method":"smoke","config":)"
      R"({"x":)" +
          deep + "}}]}",
      deep,
  };
  for (const std::string& m : messages) {
    auto reply = proto::Decode(core_->HandleBytes(m));
    ASSERT_TRUE(reply.ok()) << reply.status();
    Status st = proto::ReplyStatus(*reply);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message().rfind("message nests JSON deeper than 64 levels", 0), 0u) << st;
  }
  EXPECT_EQ(core_->counters().malformed, 4);
  EXPECT_EQ(*store_->CountRows("trials"), 0);
  EXPECT_EQ(*store_->CountRows("sweeps"), 0);
  // And the core still works.
  Submit({Spec("a")});
  Register("g1");
  EXPECT_EQ(Grant("g1").trial_key, "a");
}

}  // namespace
}  // namespace sd2::coordinator

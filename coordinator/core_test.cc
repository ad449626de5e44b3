// Coordinator core with a fake clock and direct calls (no transport).
#include "coordinator/core.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "cluster/fake_launcher.h"
#include "cluster/launcher_config.h"
#include "common/file_util.h"
#include "coordinator/group_launching.h"
#include "coordinator/submit.h"

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
  auto ack = CallAs<proto::Ack>(proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}}, "g1"});
  EXPECT_EQ(ack.accepted, 1);
  auto ack2 =
      CallAs<proto::Ack>(proto::ScoresBatch{"a", 1, 0, "smoke", {{"s", "v", 1, "FS", 0.9}}, "g1"});
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
  auto m = Call(proto::MetricsBatch{"a", 1, {{0, 0, "loss", 1, 1}}, "g1"});
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
  CallAs<proto::Ack>(proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}}, "g1"});
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
      proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}, {1, 2, "loss", 0.4, 2.0}}, "g1"});
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

TEST_F(CoreTest, PathLikeTrialKeysAreRefused) {
  for (const char* key : {"../../x", "a/b", "..", ".", "x y"}) {
    proto::Submit s;
    s.name = "sweep";
    s.trials = {Spec(key)};
    Status st = proto::ReplyStatus(Call(s));
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << key;
    EXPECT_NE(st.message().find("field 'key' is not a trial key"), std::string::npos) << st;
  }
  EXPECT_EQ(*store_->CountRows("trials"), 0);
  EXPECT_EQ(*store_->CountRows("sweeps"), 0);
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

// The paper's sweeps ask for gpus_per_rank = 1: groups that register `cuda` take them, `cpu`
// groups are refused, and `status` says why the trials wait. The attempt records each rank's
// device, the hosts and the Slurm job of the group that ran it.
TEST_F(CoreTest, PaperGpuTrialsGoToCudaGroupsOnlyAndStatusSaysWhy) {
  auto opts = ParseExpandFlags({"SD2_DATA=/data/mmidd", "SD2_CLIP=/models/clip",
                                "SD2_XCEPTION=/models/xception.safetensors"},
                               "", "");
  ASSERT_TRUE(opts.ok()) << opts.status();
  auto submit =
      BuildSubmit(std::string(SD2_SOURCE_DIR) + "/sweeps/paper/table6_scaling.toml", *opts);
  ASSERT_TRUE(submit.ok()) << submit.status();
  ASSERT_FALSE(submit->trials.empty());
  for (const auto& t : submit->trials) {
    ASSERT_EQ(t.resources.value("gpus_per_rank", 0), 1) << t.key;
    ASSERT_EQ(t.resources.value("ranks", 0), 8) << t.key;
  }
  const int64_t n = static_cast<int64_t>(submit->trials.size());
  auto sub = CallAs<proto::Submitted>(*submit);
  EXPECT_EQ(sub.queued, n);

  auto status = [&]() {
    auto st = core_->StatusJson(0);
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? *st : json();
  };
  json st = status();
  ASSERT_EQ(st["sweeps"].size(), 1u);
  EXPECT_EQ(st["sweeps"][0]["needs"], json({{"ranks", 8}, {"gpus_per_rank", 1}}));
  EXPECT_EQ(
      st["sweeps"][0]["waiting"],
      json::array({{{"reason", "needs cuda groups of >= 8 ranks; no worker groups registered"},
                    {"trials", n}}}));

  // Two CPU groups of 8 ranks: refused, and the reason names them.
  Register("cpu-1", 8);
  Register("cpu-2", 8);
  EXPECT_EQ(Lease("cpu-1").type, proto::NoWork::kType);
  EXPECT_EQ(Lease("cpu-2").type, proto::NoWork::kType);
  st = status();
  EXPECT_EQ(st["sweeps"][0]["waiting"],
            json::array({{{"reason",
                           "needs cuda groups of >= 8 ranks; 2 cpu groups of 8 ranks "
                           "registered"},
                          {"trials", n}}}));
  // A CUDA group that is too small is refused as well.
  proto::Register small;
  small.group = "cuda-4";
  small.host = "gpu09";
  small.size = 4;
  small.devices = "cuda";
  CallAs<proto::Registered>(small);
  EXPECT_EQ(Lease("cuda-4").type, proto::NoWork::kType);
  st = status();
  EXPECT_EQ(st["sweeps"][0]["waiting"][0]["reason"],
            "needs cuda groups of >= 8 ranks; 2 cpu groups of 8 ranks, 1 cuda group of 4 ranks "
            "registered");

  // An 8-rank CUDA group over two nodes, in a Slurm array task.
  proto::Register gpu;
  gpu.group = "gpu01:77";
  gpu.host = "gpu01";
  gpu.size = 8;
  gpu.devices = "cuda";
  for (int r = 0; r < 8; ++r) {
    gpu.ranks.push_back({r < 4 ? "gpu01" : "gpu02", "cuda:" + std::to_string(r % 4)});
  }
  gpu.slurm = {"1240", "1234", "6"};
  CallAs<proto::Registered>(gpu);
  st = status();
  EXPECT_EQ(st["sweeps"][0]["waiting"][0]["reason"], "ready: a fitting group is idle");
  auto g = Grant("gpu01:77");
  ASSERT_FALSE(g.trial_key.empty());
  EXPECT_EQ(g.resources.value("gpus_per_rank", 0), 1);
  st = status();
  EXPECT_EQ(st["sweeps"][0]["waiting"][0]["reason"],
            "waits for a free group (1 fitting group busy)");
  EXPECT_EQ(st["sweeps"][0]["waiting"][0]["trials"], n - 1);
  json group;
  for (const auto& gj : st["groups"]) {
    if (gj["id"] == "gpu01:77") group = gj;
  }
  EXPECT_EQ(group["devices"], "cuda");
  EXPECT_EQ(group["rank_devices"], "cuda:0,cuda:1,cuda:2,cuda:3,cuda:0,cuda:1,cuda:2,cuda:3");
  EXPECT_EQ(group["slurm_job_id"], "1240");
  // The CPU groups still get nothing.
  EXPECT_EQ(Lease("cpu-1").type, proto::NoWork::kType);

  auto attempts = Attempts(g.trial_key);
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(attempts[0].host, "gpu01,gpu02");
  EXPECT_EQ(attempts[0].devices, "cuda:0,cuda:1,cuda:2,cuda:3,cuda:0,cuda:1,cuda:2,cuda:3");
  EXPECT_EQ(attempts[0].slurm_job_id, "1240");
  EXPECT_EQ(attempts[0].slurm_array_job_id, "1234");
  EXPECT_EQ(attempts[0].slurm_array_task_id, "6");
  proto::Logs logs;
  logs.trial_key = g.trial_key;
  proto::Message lr = Call(logs);
  ASSERT_EQ(lr.type, "logs_reply") << lr.body.dump();
  const json& a = lr.body["attempts"][0];
  EXPECT_EQ(a["host"], "gpu01,gpu02");
  EXPECT_EQ(a["devices"], attempts[0].devices);
  EXPECT_EQ(a["slurm_job_id"], "1240");
  EXPECT_EQ(a["slurm_array_job_id"], "1234");
  EXPECT_EQ(a["slurm_array_task_id"], "6");
}

TEST(WaitReasonTest, NamesBackOffDependenciesAndWhatIsRegistered) {
  FirstFitPolicy policy;
  QueuedTrial q;
  q.ranks = 1;
  q.gpus_per_rank = 1;
  GroupState cpu1, cpu2, cuda;
  cpu1.devices = cpu2.devices = "cpu";
  cuda.devices = "cuda";
  q.not_before = 103.2;
  EXPECT_EQ(WaitReason(q, {}, policy, 100), "retry back-off (4 s left)");
  q.not_before = 0;
  EXPECT_EQ(WaitReason(q, {}, policy, 100, "ab12 (running)"), "waits for trial ab12 (running)");
  EXPECT_EQ(WaitReason(q, {&cpu1, &cpu2}, policy, 100),
            "needs cuda groups; 2 cpu groups registered");
  EXPECT_EQ(WaitReason(q, {&cpu1}, policy, 100), "needs cuda groups; 1 cpu group registered");
  cuda.attempt_id = 9;
  EXPECT_EQ(WaitReason(q, {&cpu1, &cuda}, policy, 100),
            "waits for a free group (1 fitting group busy)");
  cuda.attempt_id = 0;
  EXPECT_EQ(WaitReason(q, {&cpu1, &cuda}, policy, 100), "ready: a fitting group is idle");
  q.gpus_per_rank = 0;
  q.ranks = 2;
  EXPECT_EQ(WaitReason(q, {&cpu1}, policy, 100),
            "needs groups of >= 2 ranks; 1 cpu group of 1 rank registered");
}

// [launcher]: SweepGroups launches groups of the shape the paper sweep's queued trials need
// (8 ranks, 1 GPU each), and their workers start on CUDA; an explicit `devices` wins.
TEST_F(CoreTest, LauncherConfigStartsPaperGroupsOnCuda) {
  auto opts = ParseExpandFlags({"SD2_DATA=/data/mmidd", "SD2_CLIP=/models/clip",
                                "SD2_XCEPTION=/models/xception.safetensors"},
                               "", "");
  ASSERT_TRUE(opts.ok());
  auto submit =
      BuildSubmit(std::string(SD2_SOURCE_DIR) + "/sweeps/paper/table6_scaling.toml", *opts);
  ASSERT_TRUE(submit.ok()) << submit.status();
  ASSERT_EQ(CallAs<proto::Submitted>(*submit).queued, static_cast<int64_t>(submit->trials.size()));
  auto now = std::chrono::steady_clock::now();
  auto clock = [&now] { return now; };

  // kind = "slurm", with the launcher's commands faked: the script that goes to sbatch.
  auto cfg = cluster::ParseLauncherConfig(json{{"kind", "slurm"},
                                               {"groups", 1},
                                               {"ranks", 2},  // the sweep's 8 replace it
                                               {"nodes", 2},
                                               {"partition", "gpu"},
                                               {"time", "12:00:00"},
                                               {"script_dir", (dir_ / "slurm").string()}});
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  cluster::FakeCommandRunner runner;
  runner.Expect("sbatch", {0, "4242\n", ""});
  cluster::SlurmLauncher slurm(&runner, cfg->slurm);
  SweepGroups groups(core_.get(), *cfg, &slurm, "tcp://login1:5557", nullptr, clock);
  EXPECT_EQ(groups.Tick(), std::set<std::string>{"sweep-1"});
  ASSERT_FALSE(slurm.last_script().empty());
  auto script = ReadFile(slurm.last_script());
  ASSERT_TRUE(script.ok()) << script.status();
  EXPECT_NE(script->find("#SBATCH --ntasks-per-node=4\n"), std::string::npos) << *script;
  EXPECT_NE(script->find("#SBATCH --gpus-per-node=4\n"), std::string::npos) << *script;
  EXPECT_NE(script->find("--coordinator tcp://login1:5557 --devices cuda"), std::string::npos)
      << *script;

  // kind = "local" (FakeLauncher here): the spec, and the worker command it turns into.
  auto local = cluster::ParseLauncherConfig(json{{"kind", "local"}, {"groups", 2}});
  ASSERT_TRUE(local.ok());
  cluster::FakeLauncher fake;
  SweepGroups local_groups(core_.get(), *local, &fake, "tcp://head:5557", nullptr, clock);
  local_groups.Tick();
  ASSERT_EQ(fake.launches().size(), 2u);
  const cluster::GroupSpec& spec = fake.launches()[0].spec;
  EXPECT_EQ(spec.ranks, 8);
  EXPECT_EQ(spec.gpus_per_rank, 1);
  EXPECT_EQ(cluster::WorkerCommand(spec, "sd2-worker"),
            (std::vector<std::string>{"sd2-worker", "--coordinator", "tcp://head:5557", "--devices",
                                      "cuda"}));

  // devices = "cpu" in the config is the user's word.
  auto cpu = cluster::ParseLauncherConfig(json{{"kind", "local"}, {"devices", "cpu"}});
  ASSERT_TRUE(cpu.ok());
  cluster::FakeLauncher fake_cpu;
  SweepGroups cpu_groups(core_.get(), *cpu, &fake_cpu, "tcp://head:5557", nullptr, clock);
  cpu_groups.Tick();
  ASSERT_EQ(fake_cpu.launches().size(), 1u);
  EXPECT_EQ(
      cluster::WorkerCommand(fake_cpu.launches()[0].spec, "w"),
      (std::vector<std::string>{"w", "--coordinator", "tcp://head:5557", "--devices", "cpu"}));
  auto bad = cluster::ParseLauncherConfig(json{{"kind", "local"}, {"devices", "gpu"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("devices 'gpu' must be cpu or cuda"), std::string::npos)
      << bad.status();
}

TEST_F(CoreTest, LeaseDeadlinesIgnoreWallClockSteps) {
  Submit({Spec("a")});
  Register("g1");
  Grant("g1");
  // The wall clock steps an hour ahead: the lease is not expired by it.
  clock_.JumpWall(3600);
  EXPECT_EQ(core_->Tick(), 0);
  EXPECT_FALSE(CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 1}).stop);
  // Stepped back two hours, the lease still expires lease_s after the last heartbeat.
  clock_.JumpWall(-7200);
  clock_.Advance(options_.lease_s + 1);
  EXPECT_EQ(core_->Tick(), 1);
  EXPECT_EQ(Attempts("a")[0].state, "lost");
}

TEST_F(CoreTest, CancellingASweepKeepsTrialsAnotherLiveSweepShares) {
  auto first = Submit({Spec("a"), Spec("b")});
  auto second = Submit({Spec("a")});
  Register("g1");
  EXPECT_EQ(Grant("g1").trial_key, "a");
  proto::Cancel c;
  c.sweep = first.sweep_id;
  EXPECT_EQ(CallAs<proto::Ack>(c).accepted, 1);  // b only
  EXPECT_EQ(TrialState("b"), "cancelled");
  EXPECT_EQ(TrialState("a"), "running");
  EXPECT_FALSE(CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 1}).stop);
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "succeeded", "", {}});
  EXPECT_EQ(TrialState("a"), "succeeded");
  EXPECT_EQ(store_->GetSweep(second.sweep_id)->state, "done");
  EXPECT_EQ(store_->GetSweep(first.sweep_id)->state, "cancelled");
}

TEST_F(CoreTest, ResubmittingATrialWhoseCancelIsStillStoppingRequeuesIt) {
  Submit({Spec("a")});
  Register("g1");
  Grant("g1");
  proto::Cancel c;
  c.trial_key = "a";
  EXPECT_EQ(CallAs<proto::Ack>(c).accepted, 1);
  EXPECT_TRUE(CallAs<proto::HeartbeatReply>(proto::Heartbeat{"g1", "a", 1, 1}).stop);
  // Submitted again while its group is still stopping it.
  auto again = Submit({Spec("a")});
  EXPECT_EQ(again.queued, 1);
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "cancelled", "", {}});
  EXPECT_EQ(TrialState("a"), "queued");
  auto g = Grant("g1");
  EXPECT_EQ(g.trial_key, "a");
  EXPECT_EQ(g.attempt, 2);
  CallAs<proto::Ack>(proto::Result{"g1", "a", 2, "succeeded", "", {}});
  EXPECT_EQ(store_->GetSweep(again.sweep_id)->state, "done");
}

TEST_F(CoreTest, NumbersOutsideIntAreRefusedNotTruncated) {
  Submit({Spec("a")});
  Register("g1");
  Grant("g1");
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "succeeded", "", {}});
  // 2^32 + 1 would truncate to attempt 1, which succeeded.
  const int64_t wrapped = (int64_t{1} << 32) + 1;
  auto m = Call(proto::MetricsBatch{"a", wrapped, {{0, 1, "loss", 0.5, 1.0}}, "g1"});
  EXPECT_EQ(proto::ReplyStatus(m).code(), StatusCode::kNotFound) << m.body.dump();
  auto r = Call(proto::Result{"g1", "a", wrapped, "succeeded", "", {}});
  EXPECT_EQ(proto::ReplyStatus(r).code(), StatusCode::kNotFound) << r.body.dump();
  EXPECT_EQ(*store_->CountRows("metrics"), 0);
  // A priority of 2^32 would truncate to 0; 2^31 - 1 + 1 would wrap negative.
  proto::Submit s;
  s.name = "big";
  s.trials = {Spec("b")};
  s.priority = int64_t{1} << 32;
  EXPECT_EQ(proto::ReplyStatus(Call(s)).code(), StatusCode::kInvalidArgument);
  s.priority = 1'000'000'000;
  s.trials[0].priority = 1'000'000'000;
  EXPECT_TRUE(proto::ReplyStatus(Call(s)).ok());
  s.trials[0].key = "c";
  s.trials[0].priority = int64_t{1} << 31;
  EXPECT_EQ(proto::ReplyStatus(Call(s)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TrialState("c"), "?");
  proto::Register big;
  big.group = "g2";
  big.host = "h";
  big.size = int64_t{1} << 32;
  EXPECT_EQ(proto::ReplyStatus(Call(big)).code(), StatusCode::kInvalidArgument);
}

TEST_F(CoreTest, DataForASucceededAttemptIsTakenOnlyFromItsGroup) {
  Submit({Spec("a")});
  Register("g1");
  Register("g2");
  Grant("g1");
  // While the lease is held, a data message naming another group is refused.
  auto other = Call(proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}}, "g2"});
  EXPECT_EQ(proto::ReplyStatus(other).code(), StatusCode::kAborted) << other.body.dump();
  EXPECT_EQ(
      CallAs<proto::Ack>(proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}}, "g1"}).accepted,
      1);
  CallAs<proto::Ack>(proto::Result{"g1", "a", 1, "succeeded", "", {}});
  // After success: g1's resend is a duplicate; g2, or a sender that names no group, is refused.
  auto resent = CallAs<proto::Ack>(proto::MetricsBatch{"a", 1, {{0, 1, "loss", 0.5, 1.0}}, "g1"});
  EXPECT_EQ(resent.duplicates, 1);
  for (const std::string& group : {std::string("g2"), std::string()}) {
    auto m = Call(proto::MetricsBatch{"a", 1, {{1, 2, "loss", 9, 2.0}}, group});
    EXPECT_EQ(proto::ReplyStatus(m).code(), StatusCode::kAborted) << group;
    auto sc = Call(proto::ScoresBatch{"a", 1, 0, "e", {{"s", "v", 1, "FS", 0.9}}, group});
    EXPECT_EQ(proto::ReplyStatus(sc).code(), StatusCode::kAborted) << group;
    auto ck = Call(proto::CheckpointRecord{"a", 1, 5, "/w/a/ck", "", group});
    EXPECT_EQ(proto::ReplyStatus(ck).code(), StatusCode::kAborted) << group;
  }
  EXPECT_EQ(*store_->CountRows("metrics"), 1);
  EXPECT_EQ(*store_->CountRows("scores"), 0);
}

}  // namespace
}  // namespace sd2::coordinator

#include "common/protocol.h"

#include <gtest/gtest.h>

#include <random>

namespace sd2::protocol {
namespace {

template <typename T>
T RoundTrip(const T& m) {
  auto d = Decode(Encode(m));
  EXPECT_TRUE(d.ok()) << d.status();
  auto p = ParseAs<T>(*d);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : T{};
}

TEST(ProtocolTest, RoundTripsWorkerMessages) {
  Register reg;
  reg.group = "host:1";
  reg.host = "host";
  reg.size = 2;
  reg.devices = "cuda";
  reg.version = "0.1.0";
  reg.git_commit = "abc";
  reg.versions = {{"torch", "1.13"}};
  reg.held = {{"k1", 2}};
  Register r2 = RoundTrip(reg);
  EXPECT_EQ(r2.group, "host:1");
  EXPECT_EQ(r2.size, 2);
  EXPECT_EQ(r2.devices, "cuda");
  EXPECT_EQ(r2.versions["torch"], "1.13");
  ASSERT_EQ(r2.held.size(), 1u);
  EXPECT_EQ(r2.held[0].trial_key, "k1");
  EXPECT_EQ(r2.held[0].attempt, 2);
  EXPECT_TRUE(r2.ranks.empty());
  EXPECT_EQ(r2.slurm.job_id, "");
  reg.ranks = {{"gpu01", "cuda:0"}, {"gpu02", "cuda:1"}};
  reg.slurm = {"1240", "1234", "6"};
  Register r3 = RoundTrip(reg);
  ASSERT_EQ(r3.ranks.size(), 2u);
  EXPECT_EQ(r3.ranks[1].host, "gpu02");
  EXPECT_EQ(r3.ranks[1].device, "cuda:1");
  EXPECT_EQ(r3.slurm.job_id, "1240");
  EXPECT_EQ(r3.slurm.array_job_id, "1234");
  EXPECT_EQ(r3.slurm.array_task_id, "6");

  LeaseGrant g{"k1", 3, {{"method", "smoke"}}, {{"ranks", 2}}, 7.5};
  LeaseGrant g2 = RoundTrip(g);
  EXPECT_EQ(g2.attempt, 3);
  EXPECT_EQ(g2.config["method"], "smoke");
  EXPECT_DOUBLE_EQ(g2.lease_s, 7.5);

  MetricsBatch mb{"k1", 1, {{0, 1, "loss", 0.5, 100.25}, {1, 1, "acc", 0.75, 100.5}}, ""};
  MetricsBatch mb2 = RoundTrip(mb);
  ASSERT_EQ(mb2.rows.size(), 2u);
  EXPECT_EQ(mb2.rows[1].name, "acc");
  EXPECT_DOUBLE_EQ(mb2.rows[1].value, 0.75);
  EXPECT_DOUBLE_EQ(mb2.rows[0].time, 100.25);

  ScoresBatch sb{"k1", 1, 4, "DF40", {{"s1", "v1", 1, "FS", 0.25}}, ""};
  ScoresBatch sb2 = RoundTrip(sb);
  EXPECT_EQ(sb2.seq, 4);
  ASSERT_EQ(sb2.rows.size(), 1u);
  EXPECT_EQ(sb2.rows[0].label, 1);
  EXPECT_EQ(sb2.rows[0].type, "FS");

  Result res{"g", "k1", 1, "preempted", "", {{"lc", "mean"}}};
  EXPECT_EQ(RoundTrip(res).outcome, "preempted");
  Heartbeat hb{"g", "k1", 1, 40};
  EXPECT_EQ(RoundTrip(hb).step, 40);
  HeartbeatReply hr{true, "cancelled"};
  EXPECT_TRUE(RoundTrip(hr).stop);
  CheckpointRecord ck{"k1", 1, 10, "/w/k1/ckpt", "d", ""};
  EXPECT_EQ(RoundTrip(ck).path, "/w/k1/ckpt");
  EXPECT_EQ(RoundTrip(ck).group, "");
  ck.group = "g";
  mb.group = "g";
  sb.group = "g";
  EXPECT_EQ(RoundTrip(ck).group, "g");
  EXPECT_EQ(RoundTrip(mb).group, "g");
  EXPECT_EQ(RoundTrip(sb).group, "g");
}

TEST(ProtocolTest, RoundTripsControlMessages) {
  Submit s;
  s.name = "t6";
  s.spec_toml = "x = 1";
  s.force = true;
  TrialSpec t;
  t.key = "k";
  t.method = "smoke";
  t.config = {{"method", "smoke"}};
  t.resources = {{"ranks", 2}, {"gpus_per_rank", 0}};
  t.depends_on = "k0";
  s.trials.push_back(t);
  Submit s2 = RoundTrip(s);
  EXPECT_TRUE(s2.force);
  ASSERT_EQ(s2.trials.size(), 1u);
  EXPECT_EQ(s2.trials[0].depends_on, "k0");
  EXPECT_EQ(s2.trials[0].resources["ranks"], 2);
  Cancel c;
  c.sweep = 3;
  EXPECT_EQ(RoundTrip(c).sweep, 3);
}

TEST(ProtocolTest, RejectsMalformedEnvelopes) {
  auto code = [](std::string_view b, size_t max = kDefaultMaxMessageBytes) {
    return Decode(b, max).status();
  };
  EXPECT_EQ(code("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(code("{not json").message(), "message is not valid JSON");
  EXPECT_EQ(code("[1,2]").message(), "message must be a JSON object, got array");
  EXPECT_EQ(code(R"({"type":"heartbeat"})").message(),
            "message has no integer protocol version 'v'");
  Status v = code(R"({"v":2,"type":"heartbeat"})");
  EXPECT_EQ(v.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(v.message().find("protocol version 2 is not supported"), std::string::npos);
  EXPECT_EQ(code(R"({"v":1,"type":7})").message(), "message has no string 'type'");
  Status big = code(std::string(100, ' '), 99);
  EXPECT_EQ(big.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(big.message(), "message of 100 bytes exceeds the limit of 99");
}

TEST(ProtocolTest, TrialKeysAreCheckedOnBothSides) {
  // A key names work_dir/<key> on the worker: "../../x" must never get through a decode.
  const char* msg[] = {
      R"({"v":1,"type":"lease_grant","trial":"../../x","attempt":1,"lease_s":5,"config":{}})",
      R"({"v":1,"type":"heartbeat","group":"g","trial":"../../x","attempt":1})",
      R"({"v":1,"type":"metrics","trial":"../../x","attempt":1,"rows":[]})",
      R"({"v":1,"type":"scores","trial":"../../x","attempt":1,"seq":0,"eval_set":"A","rows":[]})",
      R"({"v":1,"type":"checkpoint","trial":"../../x","attempt":1,"step":1,"path":"p"})",
      R"({"v":1,"type":"result","group":"g","trial":"../../x","attempt":1,"outcome":"failed"})",
      R"({"v":1,"type":"registered","keep":[{"trial":"../../x","attempt":1}],"stop":[],)"
      R"("heartbeat_s":1,"lease_s":5})",
      R"({"v":1,"type":"register","group":"g","size":1,"held":[{"trial":"a/b","attempt":1}]})",
      R"({"v":1,"type":"submit","name":"s","force":false,"trials":[{"key":"..","method":"m",)"
      R"("config":{}}]})",
      R"({"v":1,"type":"submit","name":"s","force":false,"trials":[{"key":"k","method":"m",)"
      R"("config":{},"depends_on":"../k"}]})",
      R"({"v":1,"type":"cancel","trial":"x\u0000y"})",
      R"({"v":1,"type":"logs","trial":"."})",
  };
  for (const char* m : msg) {
    auto d = Decode(m);
    ASSERT_TRUE(d.ok()) << m;
    Status s;
    const std::string& type = d->type;
    if (type == "lease_grant") s = ParseAs<LeaseGrant>(*d).status();
    if (type == "heartbeat") s = ParseAs<Heartbeat>(*d).status();
    if (type == "metrics") s = ParseAs<MetricsBatch>(*d).status();
    if (type == "scores") s = ParseAs<ScoresBatch>(*d).status();
    if (type == "checkpoint") s = ParseAs<CheckpointRecord>(*d).status();
    if (type == "result") s = ParseAs<Result>(*d).status();
    if (type == "registered") s = ParseAs<Registered>(*d).status();
    if (type == "register") s = ParseAs<Register>(*d).status();
    if (type == "submit") s = ParseAs<Submit>(*d).status();
    if (type == "cancel") s = ParseAs<Cancel>(*d).status();
    if (type == "logs") s = ParseAs<Logs>(*d).status();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << m;
    EXPECT_NE(s.message().find("is not a trial key (1 to 64 characters of 0-9 A-Z a-z . _ -, "
                               "not . or ..)"),
              std::string::npos)
        << s;
  }
  auto d = Decode(R"({"v":1,"type":"logs","trial":"../../x"})");
  EXPECT_EQ(ParseAs<Logs>(*d).status().message(),
            "logs: field 'trial' is not a trial key (1 to 64 characters of 0-9 A-Z a-z . _ -, not "
            ". or ..): \"../../x\"");
  EXPECT_TRUE(IsValidTrialKey("8756251a815f2716"));
  EXPECT_TRUE(IsValidTrialKey("t1"));
  EXPECT_FALSE(IsValidTrialKey(std::string(65, 'a')));
  EXPECT_FALSE(IsValidTrialKey(""));
  // An idle heartbeat has no trial; a cancel of a sweep neither.
  EXPECT_TRUE(ParseAs<Heartbeat>(*Decode(Encode(Heartbeat{"g", "", 0, 0}))).ok());
}

TEST(ProtocolTest, RejectsDeepNestingBeforeParsing) {
  // A lease grant (worker side) and a register (coordinator side) with 100,000 nested arrays:
  // ~200 KB, under the byte limit; copying or dumping the value would overflow the stack.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const std::string& m :
       {R"({"v":1,"type":"lease_grant","trial":"a","attempt":1,"lease_s":5,"config":{"x":)" + deep +
            "}}",
        R"({"v":1,"type":"register","group":"g","size":1,"versions":)" + deep + "}"}) {
    auto d = Decode(m);
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find("message nests JSON deeper than 64 levels (at byte "),
              std::string::npos)
        << d.status();
  }
  // Exactly the limit, envelope included, is accepted.
  std::string ok = R"({"v":1,"type":"register","group":"g","size":1,"versions":{"x":)" +
                   std::string(62, '[') + std::string(62, ']') + "}}";
  auto d = Decode(ok);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(ParseAs<Register>(*d).ok());
  EXPECT_FALSE(Decode(R"({"v":1,"type":"register","group":"g","size":1,"versions":{"x":)" +
                      std::string(63, '[') + std::string(63, ']') + "}}")
                   .ok());
}

TEST(ProtocolTest, RejectsBadFieldsWithPreciseMessages) {
  auto parse = [](const std::string& s, auto* out) {
    auto d = Decode(s);
    EXPECT_TRUE(d.ok()) << d.status();
    return Parse(d->body, out);
  };
  Heartbeat hb;
  EXPECT_EQ(
      parse(R"({"v":1,"type":"heartbeat","group":"g","trial":"k","attempt":"one"})", &hb).message(),
      "heartbeat: field 'attempt': expected an integer, got string");
  EXPECT_EQ(parse(R"({"v":1,"type":"heartbeat","trial":"k"})", &hb).message(),
            "heartbeat: missing field 'group'");
  EXPECT_EQ(
      parse(R"({"v":1,"type":"heartbeat","group":"g","trial":"k","attempt":0})", &hb).message(),
      "heartbeat: field 'attempt' must be >= 1, got 0");
  ScoresBatch sb;
  EXPECT_EQ(parse(R"({"v":1,"type":"scores","trial":"k","attempt":1,"seq":0,"eval_set":"e",)"
                  R"("rows":[["s","v",2,"FS",0.5]]})",
                  &sb)
                .message(),
            "scores: rows[0]: label must be 0 or 1");
  MetricsBatch mb;
  EXPECT_EQ(parse(R"({"v":1,"type":"metrics","trial":"k","attempt":1,"rows":[[1,2,"x",0.5]]})", &mb)
                .message(),
            "metrics: rows[0]: expected [seq, step, name, value, time]");
  Result res;
  EXPECT_EQ(parse(R"({"v":1,"type":"result","group":"g","trial":"k","attempt":1,)"
                  R"("outcome":"great"})",
                  &res)
                .message(),
            "result: field 'outcome' must be succeeded, failed, cancelled or preempted, got "
            "\"great\"");
  Register reg;
  EXPECT_EQ(parse(R"({"v":1,"type":"register","group":"g","size":0})", &reg).message(),
            "register: field 'size' must be between 1 and 1048576, got 0");
  EXPECT_EQ(parse(R"({"v":1,"type":"register","group":"g","size":2,)"
                  R"("ranks":[{"host":"a","device":"cuda:0"}]})",
                  &reg)
                .message(),
            "register: field 'ranks' has 1 entries for 2 ranks");
  EXPECT_EQ(parse(R"({"v":1,"type":"register","group":"g","size":1,"ranks":[{"host":"a"}]})", &reg)
                .message(),
            "register: ranks[0]: missing field 'device'");
  EXPECT_EQ(parse(R"({"v":1,"type":"register","group":"g","size":1,"slurm":{"job_id":7}})", &reg)
                .message(),
            "register: slurm: field 'job_id': expected a string, got integer");
  Cancel c;
  EXPECT_EQ(parse(R"({"v":1,"type":"cancel"})", &c).message(),
            "cancel: give exactly one of 'sweep' and 'trial'");
  Submit s;
  EXPECT_EQ(parse(R"({"v":1,"type":"submit","name":"x","trials":[{"key":"k"}]})", &s).message(),
            "submit: trials[0]: missing field 'method'");
  auto wrong = ParseAs<Heartbeat>(*Decode(Encode(LeaseRequest{"g"})));
  EXPECT_EQ(wrong.status().message(), "expected a 'heartbeat' message, got 'lease_request'");
}

TEST(ProtocolTest, ErrorRepliesCarryTheStatus) {
  auto d = Decode(ErrorReply(AbortedError("lease lost")));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->type, "error");
  Status s = ReplyStatus(*d);
  EXPECT_EQ(s.code(), StatusCode::kAborted);
  EXPECT_EQ(s.message(), "lease lost");
  EXPECT_TRUE(ReplyStatus(*Decode(Encode(Ack{1, 0}))).ok());
}

// Random bytes and truncations of valid messages never crash and never decode+parse as valid
// when truncated.
TEST(ProtocolTest, GarbageNeverCrashes) {
  std::mt19937 rng(42);
  std::string valid = Encode(ScoresBatch{"k", 1, 0, "e", {{"s", "v", 0, "REAL", 0.1}}, ""});
  for (size_t cut = 0; cut < valid.size(); ++cut) {
    auto d = Decode(std::string_view(valid).substr(0, cut));
    EXPECT_FALSE(d.ok());
  }
  for (int i = 0; i < 2000; ++i) {
    std::string s = valid;
    for (int k = 0; k < 3; ++k) s[rng() % s.size()] = static_cast<char>(rng() % 256);
    auto d = Decode(s);
    if (!d.ok()) continue;
    ScoresBatch sb;
    (void)Parse(d->body, &sb);
  }
}

}  // namespace
}  // namespace sd2::protocol

namespace sd2::protocol {
namespace {

TEST(ProtocolTest, BatchAndSubmitSizesAreLimited) {
  MetricsBatch mb{"k1", 1, {}};
  mb.rows.assign(kMaxMetricRowsPerBatch, MetricRow{0, 1, "loss", 0.5, 1.0});
  for (size_t i = 0; i < mb.rows.size(); ++i) mb.rows[i].seq = int64_t(i);
  MetricsBatch ok;
  EXPECT_TRUE(Parse(ToJson(mb), &ok).ok());
  mb.rows.push_back(MetricRow{int64_t(kMaxMetricRowsPerBatch), 1, "loss", 0.5, 1.0});
  MetricsBatch too_many;
  Status s = Parse(ToJson(mb), &too_many);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("more than the limit of 100000"), std::string::npos) << s;

  Submit sub;
  sub.name = "big";
  sub.trials.resize(kMaxTrialsPerSubmit + 1);
  Submit parsed;
  Status t = Parse(ToJson(sub), &parsed);
  EXPECT_EQ(t.code(), StatusCode::kResourceExhausted) << t;
}

}  // namespace
}  // namespace sd2::protocol

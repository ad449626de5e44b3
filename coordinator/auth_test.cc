// CURVE keys, allow-lists, the bind policy, and end-to-end authentication through the ZAP
// handler and the handshake monitor: an allowed client is served; a client without keys, with
// a wrong coordinator key or with an unknown key gets no reply, is logged with its address and
// the reason, and nothing it sent reaches the store.
#include "coordinator/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <zmq.hpp>

#include "common/file_util.h"
#include "coordinator/client.h"
#include "coordinator/server.h"

namespace sd2::coordinator {
namespace {

namespace proto = sd2::protocol;
namespace fs = std::filesystem;

fs::path FreshDir() {
  fs::path d =
      fs::temp_directory_path() / ("sd2_auth_test_" + std::to_string(::getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

mode_t ModeOf(const fs::path& p) {
  struct stat st;
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST(AuthKeys, CurveIsAvailable) { EXPECT_TRUE(CurveAvailable()); }

TEST(AuthKeys, InitWritesKeysWithPrivateModesAndAnAllowList) {
  fs::path d = FreshDir();
  auto written = InitKeys((d / "keys").string(), {});
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->size(), 7u);  // 3 x (key, pub) + authorized_keys
  EXPECT_EQ(ModeOf(d / "keys"), 0700u);
  for (const char* n : {"coordinator", "worker", "ctl"}) {
    EXPECT_EQ(ModeOf(d / "keys" / (std::string(n) + ".key")), 0600u) << n;
    auto kp = ReadKeyPair((d / "keys" / (std::string(n) + ".key")).string());
    ASSERT_TRUE(kp.ok()) << kp.status();
    EXPECT_TRUE(IsZ85Key(kp->public_key));
    auto pub = ReadPublicKey((d / "keys" / (std::string(n) + ".pub")).string());
    ASSERT_TRUE(pub.ok()) << pub.status();
    EXPECT_EQ(*pub, kp->public_key);
  }
  auto server = LoadServerCurve((d / "keys").string());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(server->allowed_clients.size(), 2u);
  auto worker = LoadClientCurve((d / "keys").string(), "worker");
  ASSERT_TRUE(worker.ok()) << worker.status();
  EXPECT_EQ(worker->server_public_key, server->keys.public_key);
  EXPECT_EQ(server->allowed_clients.count(worker->keys.public_key), 1u);
  // A second init does not overwrite keys silently.
  auto again = InitKeys((d / "keys").string(), {});
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  fs::remove_all(d);
}

TEST(AuthKeys, RefusesReadableSecretsAndBadContent) {
  fs::path d = FreshDir();
  ASSERT_TRUE(InitKeys(d.string(), {}).ok());
  fs::path key = d / "worker.key";
  ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
  auto r = ReadKeyPair(key.string());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("chmod 600"), std::string::npos) << r.status();
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  // A public key that does not match the secret key.
  auto other = GenerateKeyPair();
  ASSERT_TRUE(other.ok());
  auto kp = ReadKeyPair(key.string());
  ASSERT_TRUE(kp.ok());
  {
    std::ofstream f(key, std::ios::trunc);
    f << "public-key = " << other->public_key << "\nsecret-key = " << kp->secret_key << "\n";
  }
  EXPECT_EQ(ReadKeyPair(key.string()).status().code(), StatusCode::kDataLoss);
  {
    std::ofstream f(key, std::ios::trunc);
    f << "public-key = short\n";
  }
  auto bad = ReadKeyPair(key.string());
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("worker.key:1:"), std::string::npos) << bad.status();
  {
    std::ofstream f(d / "authorized_keys", std::ios::trunc);
    f << "# comment\n\n" << other->public_key << " alice\nnot-a-key\n";
  }
  auto allow = ReadAllowList((d / "authorized_keys").string());
  EXPECT_EQ(allow.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(allow.status().message().find("authorized_keys:4:"), std::string::npos)
      << allow.status();
  EXPECT_EQ(InitKeys((d / "x").string(), {{"../evil"}, false}).status().code(),
            StatusCode::kInvalidArgument);
  fs::remove_all(d);
}

TEST(AuthBind, LocalEndpointsOnlyWithoutKeys) {
  for (const char* e : {"tcp://127.0.0.1:5557", "tcp://127.0.0.1:*", "tcp://localhost:1",
                        "tcp://[::1]:5557", "ipc:///tmp/sd2.sock", "inproc://x"}) {
    EXPECT_TRUE(IsLocalEndpoint(e)) << e;
    EXPECT_TRUE(CheckBindAllowed(e, {}).ok()) << e;
  }
  for (const char* e : {"tcp://0.0.0.0:5557", "tcp://*:5557", "tcp://eth0:5557",
                        "tcp://10.0.0.1:5557", "tcp://127.0.0.1.evil.com:1", "tcp://[::]:1",
                        "tcp://127.0.0.1;10.0.0.1:1", "udp://127.0.0.1:1"}) {
    EXPECT_FALSE(IsLocalEndpoint(e)) << e;
    Status s = CheckBindAllowed(e, {});
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << e;
    EXPECT_NE(s.message().find("sd2ctl keys init"), std::string::npos) << s;
  }
  ServerCurve c;
  auto kp = GenerateKeyPair();
  ASSERT_TRUE(kp.ok());
  c.keys = *kp;
  EXPECT_EQ(CheckBindAllowed("tcp://0.0.0.0:1", c).code(), StatusCode::kFailedPrecondition);
  c.allowed_clients.insert(kp->public_key);
  EXPECT_TRUE(CheckBindAllowed("tcp://0.0.0.0:1", c).ok());
}

// A coordinator with CURVE on a loopback port, keys from `sd2ctl keys init`.
class AuthServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = FreshDir();
    ASSERT_TRUE(InitKeys((dir_ / "keys").string(), {}).ok());
    auto s = storage::Store::Open((dir_ / "sd2.db").string());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(s).value();
    core_ = std::make_unique<Core>(store_.get(), &clock_, CoreOptions{});
    ASSERT_TRUE(core_->Recover().ok());
    auto curve = LoadServerCurve((dir_ / "keys").string());
    ASSERT_TRUE(curve.ok()) << curve.status();
    ServerOptions o;
    o.bind = "tcp://127.0.0.1:*";
    o.curve = *curve;
    o.auth_log = [this](const std::string& line) {
      std::lock_guard<std::mutex> l(log_mu_);
      log_.push_back(line);
    };
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
    ::unsetenv("SD2_KEYS_DIR");
    ::unsetenv("SD2_KEY_NAME");
    fs::remove_all(dir_);
  }

  static proto::Submit OneTrial() {
    proto::Submit sub;
    sub.name = "s";
    proto::TrialSpec t;
    t.key = "k1";
    t.method = "smoke";
    t.config = {{"method", "smoke"}};
    sub.trials = {t};
    return sub;
  }
  int64_t Rows(const char* table) {
    auto n = store_->CountRows(table);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : -1;
  }
  // Waits up to 10 s (sanitizer builds are slow) for `done`.
  static bool WaitFor(const std::function<bool()>& done) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  }
  std::vector<std::string> Log() {
    std::lock_guard<std::mutex> l(log_mu_);
    return log_;
  }
  // The log lines that contain every one of `parts`.
  std::vector<std::string> LogLinesWith(const std::vector<std::string>& parts) {
    std::vector<std::string> out;
    for (const auto& line : Log()) {
      bool all = true;
      for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
      if (all) out.push_back(line);
    }
    return out;
  }
  std::string LogText() {
    std::string all;
    for (const auto& line : Log()) all += line + "\n";
    return all;
  }
  // A refused client must leave no trace in the store or the Core.
  void ExpectStoreUntouched(int64_t events_before) {
    EXPECT_EQ(Rows("sweeps"), 0);
    EXPECT_EQ(Rows("trials"), 0);
    EXPECT_EQ(Rows("events"), events_before);
    EXPECT_EQ(core_->counters().messages, 0);
  }

  // Calls the server as a client with `curve` keys, expects no answer, and waits until the
  // handshake monitor has logged the refusal. Returns the events rows before the call.
  template <typename Curve>
  int64_t CallAndExpectRefused(const Curve& curve) {
    ClientOptions co{0.3, 0.6};
    co.curve = curve;
    const int64_t events = Rows("events");
    Client c(server_->endpoint(), co);
    auto r = c.Call(OneTrial());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status();
    EXPECT_TRUE(WaitFor([&] { return server_->handshake_failures_logged() >= 1; })) << LogText();
    return events;
  }

  fs::path dir_;
  SystemClock clock_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<Core> core_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  Status run_status_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

TEST_F(AuthServerTest, AllowedClientIsServed) {
  auto curve = LoadClientCurve((dir_ / "keys").string(), "ctl");
  ASSERT_TRUE(curve.ok()) << curve.status();
  ClientOptions co{2, 5};
  co.curve = *curve;
  Client c(server_->endpoint(), co);
  auto submitted = c.CallAs<proto::Submitted>(OneTrial());
  ASSERT_TRUE(submitted.ok()) << submitted.status();
  EXPECT_EQ(submitted->queued, 1);
  EXPECT_EQ(Rows("sweeps"), 1);
  EXPECT_EQ(server_->handshake_failures().total(), 0) << LogText();
  EXPECT_EQ(server_->zap_refusals(), 0);
}

TEST_F(AuthServerTest, ClientKeysFromTheEnvironment) {
  ::setenv("SD2_KEYS_DIR", (dir_ / "keys").c_str(), 1);
  ::setenv("SD2_KEY_NAME", "worker", 1);
  Client c(server_->endpoint(), {2, 5});
  proto::Register reg;
  reg.group = "g";
  auto r = c.CallAs<proto::Registered>(reg);
  ASSERT_TRUE(r.ok()) << r.status();
  // A missing key file is a precise error, not a silent unauthenticated connection.
  ::setenv("SD2_KEY_NAME", "nobody", 1);
  Client missing(server_->endpoint(), {0.2, 0.2});
  auto m = missing.CallAs<proto::Registered>(reg);
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound) << m.status();
  EXPECT_NE(m.status().message().find("SD2_KEYS_DIR"), std::string::npos) << m.status();
}

// A peer without keys fails the CURVE handshake before ZAP is asked: only the handshake
// monitor sees it.
TEST_F(AuthServerTest, ClientWithoutKeysIsRefusedLoggedAndStoreIsUntouched) {
  int64_t events = Rows("events");
  Client c(server_->endpoint(), {0.3, 0.6});
  auto r = c.Call(OneTrial());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status();
  ASSERT_TRUE(WaitFor([&] { return server_->handshake_failures_logged() >= 1; })) << LogText();
  // Whichever side reads the other's greeting first: the coordinator sees the mechanism
  // mismatch, or the client hangs up on the coordinator's CURVE greeting.
  auto failures = server_->handshake_failures();
  EXPECT_GE(failures.protocol + failures.no_detail, 1);
  EXPECT_EQ(failures.auth, 0);
  EXPECT_EQ(server_->zap_refusals(), 0);
  auto mismatch = LogLinesWith({"sd2 auth: handshake failed with peer", "mechanism mismatch"});
  auto hung_up = LogLinesWith({"sd2 auth: handshake failed with peer", "did not complete"});
  EXPECT_GE(mismatch.size() + hung_up.size(), 1u) << LogText();
  // The client retried on fresh connections; the peer address is known for (at least) one.
  EXPECT_FALSE(LogLinesWith({"with peer tcp://127.0.0.1:"}).empty()) << LogText();
  ExpectStoreUntouched(events);
}

// A client with an allowed key pair but a wrong coordinator public key: its HELLO cannot be
// opened (a CURVE cryptographic error), again before ZAP.
TEST_F(AuthServerTest, WrongServerKeyIsRefusedLoggedAndStoreIsUntouched) {
  auto curve = LoadClientCurve((dir_ / "keys").string(), "worker");
  ASSERT_TRUE(curve.ok()) << curve.status();
  auto impostor = GenerateKeyPair();
  ASSERT_TRUE(impostor.ok());
  curve->server_public_key = impostor->public_key;
  const int64_t events = CallAndExpectRefused(*curve);
  if (HasFailure()) return;
  EXPECT_GE(server_->handshake_failures().protocol, 1);
  EXPECT_EQ(server_->zap_refusals(), 0);
  EXPECT_FALSE(
      LogLinesWith({"sd2 auth: handshake failed with peer", "cryptographic error"}).empty())
      << LogText();
  EXPECT_FALSE(LogLinesWith({"peer tcp://127.0.0.1:", "cryptographic error"}).empty()) << LogText();
  ExpectStoreUntouched(events);
}

TEST_F(AuthServerTest, UnknownKeyIsRefusedLoggedAndStoreIsUntouched) {
  // A well-formed key pair that knows the coordinator's public key but is not allowed.
  fs::path other = dir_ / "other";
  ASSERT_TRUE(InitKeys(other.string(), {{"mallory"}, false}).ok());
  auto curve = LoadClientCurve(other.string(), "mallory");
  ASSERT_TRUE(curve.ok());
  auto server_pub = ReadPublicKey((dir_ / "keys" / "coordinator.pub").string());
  ASSERT_TRUE(server_pub.ok());
  curve->server_public_key = *server_pub;
  const int64_t events = CallAndExpectRefused(*curve);
  if (HasFailure()) return;
  // Refused by ZAP (logged with the key) and seen by the handshake monitor.
  EXPECT_GE(server_->zap_refusals(), 1);
  EXPECT_GE(server_->handshake_failures().auth, 1);
  EXPECT_FALSE(LogLinesWith({"sd2 auth: refused peer 127.0.0.1", curve->keys.public_key}).empty())
      << LogText();
  EXPECT_FALSE(
      LogLinesWith({"sd2 auth: handshake failed with peer", "ZAP allow-list (status 400)"}).empty())
      << LogText();
  ExpectStoreUntouched(events);
}

TEST(AuthZap, HandlerCountsAndLogsRefusals) {
  zmq::context_t ctx(1);
  std::vector<std::string> log;
  std::mutex mu;
  auto server_keys = GenerateKeyPair();
  auto good = GenerateKeyPair();
  auto bad = GenerateKeyPair();
  ASSERT_TRUE(server_keys.ok() && good.ok() && bad.ok());
  auto zap = ZapHandler::Start(&ctx, {good->public_key}, [&](const std::string& line) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back(line);
  });
  ASSERT_TRUE(zap.ok()) << zap.status();
  zmq::socket_t server(ctx, zmq::socket_type::router);
  server.set(zmq::sockopt::linger, 0);
  ServerCurve sc;
  sc.keys = *server_keys;
  ASSERT_TRUE(ApplyServerCurve(server, sc).ok());
  // Over tcp: inproc connections skip the ZMTP handshake, so no mechanism applies there.
  server.bind("tcp://127.0.0.1:*");
  std::string endpoint = server.get(zmq::sockopt::last_endpoint);
  auto try_client = [&](const CurveKeyPair& kp) {
    zmq::socket_t c(ctx, zmq::socket_type::dealer);
    c.set(zmq::sockopt::linger, 0);
    ClientCurve cc{kp, server_keys->public_key};
    EXPECT_TRUE(ApplyClientCurve(c, cc).ok());
    c.connect(endpoint);
    c.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    zmq::pollitem_t item{static_cast<void*>(server), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(1000));
    bool got = item.revents & ZMQ_POLLIN;
    if (got) {
      zmq::message_t id, body;
      (void)server.recv(id);
      (void)server.recv(body);
      EXPECT_EQ(body.to_string(), "hello");
    }
    return got;
  };
  EXPECT_TRUE(try_client(*good));
  EXPECT_FALSE(try_client(*bad));
  EXPECT_EQ((*zap)->accepted(), 1);
  EXPECT_GE((*zap)->denied(), 1);
  std::lock_guard<std::mutex> l(mu);
  ASSERT_FALSE(log.empty());
  EXPECT_NE(log[0].find(bad->public_key), std::string::npos) << log[0];
}

}  // namespace
}  // namespace sd2::coordinator

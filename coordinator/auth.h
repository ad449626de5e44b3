// Authentication of coordinator peers with ZeroMQ CURVE and a ZAP allow-list (docs/security.md).
//
// `sd2ctl keys init --dir DIR` writes Z85 key pairs: DIR/coordinator.key, DIR/worker.key and
// DIR/ctl.key (secret + public, mode 0600), their public halves DIR/NAME.pub, and
// DIR/authorized_keys (the client public keys the coordinator accepts, one per line).
// The coordinator loads its pair and the allow-list (LoadServerCurve); every client (workers,
// sd2ctl) loads its own pair and the coordinator's public key (LoadClientCurve), either
// explicitly through ClientOptions::curve or from the environment (SD2_KEYS_DIR, SD2_KEY_NAME).
// A ZapHandler answers ZeroMQ's authentication requests (inproc://zeromq.zap.01) of the
// coordinator's context: a peer whose key is not allowed is refused and logged, and its messages
// never reach the socket (so never the Core or the store).
//
//   SD2_RETURN_IF_ERROR(sd2::coordinator::InitKeys("/etc/sd2/keys", {}));
//   SD2_ASSIGN_OR_RETURN(auto curve, sd2::coordinator::LoadServerCurve("/etc/sd2/keys"));
//   SD2_RETURN_IF_ERROR(sd2::coordinator::CheckBindAllowed("tcp://0.0.0.0:5557", curve));
//   ServerOptions o; o.curve = curve;   // Server::Bind starts the ZAP handler and sets CURVE
//
// A HandshakeMonitor (zmq_socket_monitor on the coordinator's ROUTER socket) logs and counts
// every failed ZMTP handshake, including peers that fail CURVE before ZAP is asked (no keys, a
// wrong coordinator key).
//
// Thread-safety: the free functions are thread-compatible; a ZapHandler and a HandshakeMonitor
// each run their own thread and their counters may be read from any thread.
#ifndef SD2_COORDINATOR_AUTH_H_
#define SD2_COORDINATOR_AUTH_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace zmq {
class context_t;
class socket_t;
}  // namespace zmq

namespace sd2::coordinator {

inline constexpr size_t kZ85KeyChars = 40;  // a 32-byte CURVE key in Z85

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// The coordinator's side. Disabled (empty keys) means no authentication (NULL mechanism).
struct ServerCurve {
  CurveKeyPair keys;
  std::set<std::string> allowed_clients;  // Z85 public keys
  bool enabled() const { return !keys.secret_key.empty(); }
};

// A client's side: its own pair and the coordinator's public key.
struct ClientCurve {
  CurveKeyPair keys;
  std::string server_public_key;
  bool enabled() const { return !keys.secret_key.empty(); }
};

// True when this libzmq was built with CURVE (libsodium).
bool CurveAvailable();
StatusOr<CurveKeyPair> GenerateKeyPair();
// True for 40 characters of the Z85 alphabet.
bool IsZ85Key(const std::string& key);

// Writes DIR/NAME.key (0600: "public-key = ..." and "secret-key = ..." lines) and DIR/NAME.pub.
// Refuses to overwrite an existing NAME.key unless `overwrite`.
Status WriteKeyPair(const std::string& dir, const std::string& name, const CurveKeyPair& keys,
                    bool overwrite = false);
// Reads a NAME.key file. Refuses a file readable by group or others (DataLoss on bad content).
StatusOr<CurveKeyPair> ReadKeyPair(const std::string& path);
// Reads a public key: a NAME.pub or NAME.key file ("public-key = ...") or a bare Z85 line.
StatusOr<std::string> ReadPublicKey(const std::string& path);
// Reads an allow-list: one Z85 public key per line, optionally followed by a comment; '#'
// lines and blank lines are skipped. Errors name the file and line.
StatusOr<std::set<std::string>> ReadAllowList(const std::string& path);

struct KeysInitOptions {
  std::vector<std::string> clients = {"worker", "ctl"};  // client key pairs to create
  bool overwrite = false;
};
// Creates DIR (0700), coordinator.key/.pub, one pair per client and authorized_keys listing the
// clients' public keys. Returns the paths written.
StatusOr<std::vector<std::string>> InitKeys(const std::string& dir, const KeysInitOptions& options);

// DIR/coordinator.key + DIR/authorized_keys.
StatusOr<ServerCurve> LoadServerCurve(const std::string& dir);
// DIR/NAME.key + DIR/coordinator.pub.
StatusOr<ClientCurve> LoadClientCurve(const std::string& dir, const std::string& name);
// From SD2_KEYS_DIR (and SD2_KEY_NAME, default "worker"); disabled when SD2_KEYS_DIR is unset.
StatusOr<ClientCurve> ClientCurveFromEnv();

// True for endpoints only this host can reach: ipc://, inproc://, tcp://127.x.x.x, tcp://[::1],
// tcp://localhost (and those names with a port).
bool IsLocalEndpoint(const std::string& endpoint);
// A coordinator may bind a non-local endpoint only with CURVE keys and a non-empty allow-list.
Status CheckBindAllowed(const std::string& endpoint, const ServerCurve& curve);

// Sets CURVE server / client options on a socket (before bind / connect).
Status ApplyServerCurve(zmq::socket_t& socket, const ServerCurve& curve);
Status ApplyClientCurve(zmq::socket_t& socket, const ClientCurve& curve);

// Answers ZAP requests for one ZeroMQ context on its own thread: CURVE peers whose public key is
// in the allow-list get 200, everything else 400 and a log line.
class ZapHandler {
 public:
  using LogFn = std::function<void(const std::string&)>;
  // Binds inproc://zeromq.zap.01 in `ctx` (which must outlive the handler). `log` defaults to
  // stderr.
  static StatusOr<std::unique_ptr<ZapHandler>> Start(zmq::context_t* ctx,
                                                     std::set<std::string> allowed,
                                                     LogFn log = nullptr);
  ~ZapHandler();
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  int64_t accepted() const { return accepted_.load(); }
  int64_t denied() const { return denied_.load(); }

 private:
  ZapHandler(std::set<std::string> allowed, LogFn log);
  void Loop(zmq::socket_t* socket);

  std::set<std::string> allowed_;
  LogFn log_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> accepted_{0};
  std::atomic<int64_t> denied_{0};
  std::unique_ptr<zmq::socket_t> socket_;
  std::thread thread_;
};

// Watches the ZMTP handshakes of one server socket through a ZeroMQ socket monitor
// (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL / _PROTOCOL / _AUTH, libzmq >= 4.3) on its own thread.
// Every failed handshake is counted at once and logged as one line:
//   sd2 auth: handshake failed with peer tcp://10.0.0.7:51234: REASON
// A peer without CURVE keys gives "security mechanism mismatch", a wrong coordinator public key
// "cryptographic error", a key outside the allow-list "refused by the ZAP handler (status
// 400)", a peer that hangs up or times out mid-handshake "handshake did not complete".
//
// The peer's address: libzmq 4.3's monitor events name the listening endpoint, not the peer,
// and a failure event carries no file descriptor. The monitor therefore looks the peer up
// (getpeername) when it sees the connection accepted (ZMQ_EVENT_ACCEPTED carries the fd) and
// logs the failure when that connection's ZMQ_EVENT_DISCONNECTED follows it (libzmq emits the
// two back to back from the connection's I/O thread). A connection that is already closed when
// the monitor reads its ACCEPTED event is logged as "peer (address unknown)".
class HandshakeMonitor {
 public:
  using LogFn = std::function<void(const std::string&)>;
  struct Counts {
    int64_t no_detail = 0;  // hung up or timed out mid-handshake
    int64_t protocol = 0;   // ZMTP/CURVE protocol errors (mechanism mismatch, bad crypto)
    int64_t auth = 0;       // refused by ZAP
    int64_t total() const { return no_detail + protocol + auth; }
  };
  // Starts monitoring `socket` (call before it binds; `ctx` is its context). Both must outlive
  // the monitor, and the destructor, which stops monitoring, must run on the thread that owns
  // `socket` or when no other thread uses it. `log` defaults to stderr.
  static StatusOr<std::unique_ptr<HandshakeMonitor>> Start(zmq::context_t* ctx,
                                                           zmq::socket_t* socket,
                                                           LogFn log = nullptr);
  ~HandshakeMonitor();
  HandshakeMonitor(const HandshakeMonitor&) = delete;
  HandshakeMonitor& operator=(const HandshakeMonitor&) = delete;

  Counts counts() const;
  int64_t failures() const { return counts().total(); }
  // Failures logged so far (a failure is logged when its connection's disconnect is seen).
  int64_t logged() const { return logged_.load(); }

 private:
  HandshakeMonitor(zmq::socket_t* socket, LogFn log);
  void Loop();
  void HandleEvent(uint16_t event, uint32_t value, const std::string& endpoint);
  void FlushPending(const std::string& peer);

  zmq::socket_t* socket_;  // the monitored socket (not owned)
  LogFn log_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> no_detail_{0};
  std::atomic<int64_t> protocol_{0};
  std::atomic<int64_t> auth_{0};
  std::atomic<int64_t> logged_{0};
  std::unique_ptr<zmq::socket_t> pair_;  // receives the monitor's events
  std::thread thread_;
  // Monitor thread only: peer addresses of accepted connections by fd, and the reason of a
  // failure whose disconnect has not been seen yet.
  std::map<int, std::string> peers_;
  std::string pending_;
};

}  // namespace sd2::coordinator

#endif  // SD2_COORDINATOR_AUTH_H_

#include "coordinator/auth.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <zmq.hpp>

#include "common/file_util.h"

namespace sd2::coordinator {

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr const char* kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Writes `content` to `path` through a temporary file created with `mode`, then renames it.
Status WriteWithMode(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return InternalError(tmp + ": " + std::strerror(errno));
  // The umask may have removed bits; set exactly `mode`.
  if (::fchmod(fd, mode) != 0) {
    int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return InternalError(tmp + ": chmod: " + std::strerror(e));
  }
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return ResourceExhaustedError(tmp + ": write: " + std::strerror(e));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return InternalError(tmp + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return InternalError(path + ": rename: " + std::strerror(e));
  }
  return OkStatus();
}

// Parses "name = value" lines of a key file.
StatusOr<std::string> KeyField(const std::string& text, const std::string& field,
                               const std::string& path) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos) continue;
    if (Trim(t.substr(0, eq)) != field) continue;
    std::string v = Trim(t.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    if (!IsZ85Key(v)) {
      return DataLossError(path + ":" + std::to_string(n) + ": " + field +
                           " is not a 40-character Z85 key");
    }
    return v;
  }
  return DataLossError(path + ": no '" + field + "' line");
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

}  // namespace

bool CurveAvailable() { return zmq_has("curve") != 0; }

bool IsZ85Key(const std::string& key) {
  if (key.size() != kZ85KeyChars) return false;
  for (char c : key) {
    if (c == '\0' || std::strchr(kZ85Alphabet, c) == nullptr) return false;
  }
  return true;
}

StatusOr<CurveKeyPair> GenerateKeyPair() {
  if (!CurveAvailable()) {
    return UnimplementedError("this libzmq was built without CURVE support (libsodium)");
  }
  char pub[41] = {0}, sec[41] = {0};
  if (zmq_curve_keypair(pub, sec) != 0) {
    return InternalError(std::string("zmq_curve_keypair: ") + zmq_strerror(zmq_errno()));
  }
  return CurveKeyPair{pub, sec};
}

Status WriteKeyPair(const std::string& dir, const std::string& name, const CurveKeyPair& keys,
                    bool overwrite) {
  if (!ValidName(name)) {
    return InvalidArgumentError("key name '" + name + "' must be 1-64 letters, digits, '_' or '-'");
  }
  if (!IsZ85Key(keys.public_key) || !IsZ85Key(keys.secret_key)) {
    return InvalidArgumentError("key pair '" + name + "' is not two Z85 keys");
  }
  std::string key_path = dir + "/" + name + ".key";
  if (!overwrite && PathExists(key_path)) {
    return AlreadyExistsError(key_path + " exists (pass --force to replace it)");
  }
  SD2_RETURN_IF_ERROR(WriteWithMode(key_path,
                                    "# sd2 CURVE key pair '" + name +
                                        "': keep secret\npublic-key = " + keys.public_key +
                                        "\nsecret-key = " + keys.secret_key + "\n",
                                    0600));
  return WriteWithMode(
      dir + "/" + name + ".pub",
      "# sd2 CURVE public key '" + name + "'\npublic-key = " + keys.public_key + "\n", 0644);
}

StatusOr<CurveKeyPair> ReadKeyPair(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return NotFoundError(path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return InvalidArgumentError(path + ": not a regular file");
  if (st.st_mode & 0077) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return FailedPreconditionError(path + ": secret key file has mode " + mode +
                                   "; it must not be readable by group or others (chmod 600)");
  }
  SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  CurveKeyPair kp;
  SD2_ASSIGN_OR_RETURN(kp.public_key, KeyField(text, "public-key", path));
  SD2_ASSIGN_OR_RETURN(kp.secret_key, KeyField(text, "secret-key", path));
  // The public key must be the one derived from the secret key.
  char derived[41] = {0};
  if (zmq_curve_public(derived, kp.secret_key.c_str()) != 0) {
    return DataLossError(path + ": secret-key cannot be decoded");
  }
  if (kp.public_key != derived) {
    return DataLossError(path + ": public-key does not belong to secret-key");
  }
  return kp;
}

StatusOr<std::string> ReadPublicKey(const std::string& path) {
  SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::string t = Trim(text);
  if (IsZ85Key(t)) return t;
  return KeyField(text, "public-key", path);
}

StatusOr<std::set<std::string>> ReadAllowList(const std::string& path) {
  SD2_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  std::set<std::string> out;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    std::string key = t.substr(0, t.find_first_of(" \t"));
    if (!IsZ85Key(key)) {
      return InvalidArgumentError(path + ":" + std::to_string(n) +
                                  ": expected a 40-character Z85 public key, got '" +
                                  key.substr(0, 60) + "'");
    }
    out.insert(key);
  }
  return out;
}

StatusOr<std::vector<std::string>> InitKeys(const std::string& dir,
                                            const KeysInitOptions& options) {
  if (dir.empty()) return InvalidArgumentError("keys: empty directory");
  if (options.clients.empty()) return InvalidArgumentError("keys: no client key pairs asked for");
  std::set<std::string> names{"coordinator"};
  for (const auto& c : options.clients) {
    if (!ValidName(c)) {
      return InvalidArgumentError("key name '" + c + "' must be 1-64 letters, digits, '_' or '-'");
    }
    if (!names.insert(c).second) {
      return InvalidArgumentError("key name '" + c + "' given twice (or is 'coordinator')");
    }
  }
  SD2_RETURN_IF_ERROR(MakeDirs(dir));
  if (::chmod(dir.c_str(), 0700) != 0) {
    return InternalError(dir + ": chmod 700: " + std::strerror(errno));
  }
  if (!options.overwrite) {
    for (const auto& n : names) {
      if (PathExists(dir + "/" + n + ".key")) {
        return AlreadyExistsError(dir + "/" + n + ".key exists (pass --force to replace keys)");
      }
    }
  }
  std::vector<std::string> written;
  SD2_ASSIGN_OR_RETURN(CurveKeyPair server, GenerateKeyPair());
  SD2_RETURN_IF_ERROR(WriteKeyPair(dir, "coordinator", server, options.overwrite));
  written.push_back(dir + "/coordinator.key");
  written.push_back(dir + "/coordinator.pub");
  std::string allow = "# Client public keys the coordinator accepts (one per line).\n";
  for (const auto& c : options.clients) {
    SD2_ASSIGN_OR_RETURN(CurveKeyPair kp, GenerateKeyPair());
    SD2_RETURN_IF_ERROR(WriteKeyPair(dir, c, kp, options.overwrite));
    written.push_back(dir + "/" + c + ".key");
    written.push_back(dir + "/" + c + ".pub");
    allow += kp.public_key + " " + c + "\n";
  }
  SD2_RETURN_IF_ERROR(WriteWithMode(dir + "/authorized_keys", allow, 0644));
  written.push_back(dir + "/authorized_keys");
  return written;
}

StatusOr<ServerCurve> LoadServerCurve(const std::string& dir) {
  ServerCurve c;
  SD2_ASSIGN_OR_RETURN(c.keys, ReadKeyPair(dir + "/coordinator.key"));
  SD2_ASSIGN_OR_RETURN(c.allowed_clients, ReadAllowList(dir + "/authorized_keys"));
  if (c.allowed_clients.empty()) {
    return FailedPreconditionError(dir + "/authorized_keys lists no client keys");
  }
  return c;
}

StatusOr<ClientCurve> LoadClientCurve(const std::string& dir, const std::string& name) {
  if (!ValidName(name)) return InvalidArgumentError("key name '" + name + "' is not valid");
  ClientCurve c;
  SD2_ASSIGN_OR_RETURN(c.keys, ReadKeyPair(dir + "/" + name + ".key"));
  SD2_ASSIGN_OR_RETURN(c.server_public_key, ReadPublicKey(dir + "/coordinator.pub"));
  return c;
}

StatusOr<ClientCurve> ClientCurveFromEnv() {
  const char* dir = std::getenv("SD2_KEYS_DIR");
  if (dir == nullptr || *dir == '\0') return ClientCurve{};
  const char* name = std::getenv("SD2_KEY_NAME");
  auto c = LoadClientCurve(dir, name && *name ? name : "worker");
  if (!c.ok()) {
    return Status(c.status().code(), "SD2_KEYS_DIR: " + c.status().message());
  }
  return c;
}

bool IsLocalEndpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  std::string host = endpoint.substr(6);
  if (host.find(';') != std::string::npos) return false;  // "src;dst" forms
  if (!host.empty() && host[0] == '[') {
    size_t close = host.find(']');
    if (close == std::string::npos) return false;
    host = host.substr(1, close - 1);
    return host == "::1";
  }
  host = host.substr(0, host.rfind(':'));
  if (host == "localhost") return true;
  // 127.0.0.0/8, written as four decimal octets.
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

Status CheckBindAllowed(const std::string& endpoint, const ServerCurve& curve) {
  if (IsLocalEndpoint(endpoint)) return OkStatus();
  if (!curve.enabled()) {
    return FailedPreconditionError(
        "refusing to bind " + endpoint +
        " without CURVE keys: only loopback (tcp://127.0.0.1:PORT) and ipc:// endpoints may be "
        "bound unauthenticated; create keys with `sd2ctl keys init --dir DIR` and pass --keys "
        "DIR");
  }
  if (curve.allowed_clients.empty()) {
    return FailedPreconditionError("refusing to bind " + endpoint +
                                   ": the client allow-list is empty");
  }
  return OkStatus();
}

Status ApplyServerCurve(zmq::socket_t& socket, const ServerCurve& curve) {
  if (!curve.enabled()) return OkStatus();
  if (!CurveAvailable()) return UnimplementedError("libzmq lacks CURVE support");
  try {
    socket.set(zmq::sockopt::zap_domain, "sd2");
    socket.set(zmq::sockopt::curve_server, 1);
    socket.set(zmq::sockopt::curve_secretkey, curve.keys.secret_key);
  } catch (const zmq::error_t& e) {
    return InvalidArgumentError(std::string("CURVE server options: ") + e.what());
  }
  return OkStatus();
}

Status ApplyClientCurve(zmq::socket_t& socket, const ClientCurve& curve) {
  if (!curve.enabled()) return OkStatus();
  if (!CurveAvailable()) return UnimplementedError("libzmq lacks CURVE support");
  try {
    socket.set(zmq::sockopt::curve_serverkey, curve.server_public_key);
    socket.set(zmq::sockopt::curve_publickey, curve.keys.public_key);
    socket.set(zmq::sockopt::curve_secretkey, curve.keys.secret_key);
  } catch (const zmq::error_t& e) {
    return InvalidArgumentError(std::string("CURVE client options: ") + e.what());
  }
  return OkStatus();
}

// ---- ZapHandler ----

ZapHandler::ZapHandler(std::set<std::string> allowed, LogFn log)
    : allowed_(std::move(allowed)), log_(std::move(log)) {
  if (!log_) log_ = [](const std::string& line) { std::cerr << line << std::endl; };
}

StatusOr<std::unique_ptr<ZapHandler>> ZapHandler::Start(zmq::context_t* ctx,
                                                        std::set<std::string> allowed, LogFn log) {
  std::unique_ptr<ZapHandler> h(new ZapHandler(std::move(allowed), std::move(log)));
  try {
    h->socket_ = std::make_unique<zmq::socket_t>(*ctx, zmq::socket_type::rep);
    h->socket_->set(zmq::sockopt::linger, 0);
    h->socket_->bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    return UnavailableError(std::string("ZAP handler: cannot bind ") + kZapEndpoint + ": " +
                            e.what());
  }
  ZapHandler* raw = h.get();
  h->thread_ = std::thread([raw]() { raw->Loop(raw->socket_.get()); });
  return h;
}

ZapHandler::~ZapHandler() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  socket_.reset();
}

void ZapHandler::Loop(zmq::socket_t* socket) {
  while (!stop_) {
    try {
      zmq::pollitem_t item{static_cast<void*>(*socket), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> frames;
      do {
        frames.emplace_back();
        if (!socket->recv(frames.back(), zmq::recv_flags::none)) break;
      } while (socket->get(zmq::sockopt::rcvmore));
      // version, request id, domain, address, identity, mechanism, credentials...
      std::string request_id = frames.size() > 1 ? frames[1].to_string() : "";
      std::string address = frames.size() > 3 ? frames[3].to_string() : "?";
      std::string mechanism = frames.size() > 5 ? frames[5].to_string() : "";
      bool ok = false;
      std::string why, key;
      if (frames.size() < 6 || frames[0].to_string() != "1.0") {
        why = "malformed ZAP request";
      } else if (mechanism != "CURVE") {
        why = "mechanism " + mechanism + " is not allowed";
      } else if (frames.size() < 7 || frames[6].size() != 32) {
        why = "CURVE request without a 32-byte public key";
      } else {
        char z85[41] = {0};
        zmq_z85_encode(z85, static_cast<const uint8_t*>(frames[6].data()), 32);
        key = z85;
        ok = allowed_.count(key) > 0;
        if (!ok) why = "public key " + key + " is not in the allow-list";
      }
      if (ok) {
        ++accepted_;
      } else {
        ++denied_;
        log_("sd2 auth: refused peer " + address + ": " + why);
      }
      socket->send(zmq::str_buffer("1.0"), zmq::send_flags::sndmore);
      socket->send(zmq::buffer(request_id), zmq::send_flags::sndmore);
      socket->send(zmq::buffer(std::string(ok ? "200" : "400")), zmq::send_flags::sndmore);
      socket->send(zmq::buffer(std::string(ok ? "OK" : "not allowed")), zmq::send_flags::sndmore);
      socket->send(zmq::buffer(key), zmq::send_flags::sndmore);  // user id
      socket->send(zmq::str_buffer(""), zmq::send_flags::none);  // metadata
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      log_(std::string("sd2 auth: ZAP handler: ") + e.what());
    }
  }
}

// ---- HandshakeMonitor ----

namespace {

constexpr int kMonitoredEvents =
    ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
    ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

// The port at the end of "tcp://HOST:PORT" (-1 if none).
int EndpointPort(const std::string& endpoint) {
  size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon + 1 >= endpoint.size()) return -1;
  int port = 0;
  for (size_t i = colon + 1; i < endpoint.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(endpoint[i])) || port > 65535) return -1;
    port = port * 10 + (endpoint[i] - '0');
  }
  return port;
}

// The peer of the connection `fd` that the server accepted on `local_endpoint` (the address
// frame of ZMQ_EVENT_ACCEPTED): "tcp://IP:PORT", or "ipc (pid P, uid U)". Empty when `fd` is no
// longer that connection (closed, or reused by a socket with another local port).
std::string PeerOfAcceptedFd(int fd, const std::string& local_endpoint) {
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
      ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 ||
      local.ss_family != peer.ss_family) {
    return "";
  }
  char host[INET6_ADDRSTRLEN] = {0};
  if (peer.ss_family == AF_INET) {
    const auto* l = reinterpret_cast<const sockaddr_in*>(&local);
    const auto* p = reinterpret_cast<const sockaddr_in*>(&peer);
    if (ntohs(l->sin_port) != EndpointPort(local_endpoint)) return "";
    if (::inet_ntop(AF_INET, &p->sin_addr, host, sizeof(host)) == nullptr) return "";
    return "tcp://" + std::string(host) + ":" + std::to_string(ntohs(p->sin_port));
  }
  if (peer.ss_family == AF_INET6) {
    const auto* l = reinterpret_cast<const sockaddr_in6*>(&local);
    const auto* p = reinterpret_cast<const sockaddr_in6*>(&peer);
    if (ntohs(l->sin6_port) != EndpointPort(local_endpoint)) return "";
    if (::inet_ntop(AF_INET6, &p->sin6_addr, host, sizeof(host)) == nullptr) return "";
    return "tcp://[" + std::string(host) + "]:" + std::to_string(ntohs(p->sin6_port));
  }
  if (peer.ss_family == AF_UNIX) {
    if (local_endpoint.rfind("ipc://", 0) != 0) return "";
    ucred cred{};
    socklen_t cred_len = sizeof(cred);
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) != 0) return "ipc";
    return "ipc (pid " + std::to_string(cred.pid) + ", uid " + std::to_string(cred.uid) + ")";
  }
  return "";
}

std::string ProtocolErrorName(uint32_t code) {
  switch (code) {
    case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
      return "security mechanism mismatch (a peer without CURVE keys, or a CURVE peer of a "
             "coordinator without keys)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
      return "cryptographic error (the peer does not use this coordinator's public key, or "
             "its handshake is damaged)";
    case ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND:
      return "unexpected ZMTP command";
    case ZMQ_PROTOCOL_ERROR_ZMTP_INVALID_SEQUENCE:
      return "invalid ZMTP command sequence";
    case ZMQ_PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE:
      return "key exchange failed";
    default:
      break;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "ZMTP protocol error 0x%08x", static_cast<unsigned>(code));
  return buf;
}

std::string HandshakeFailure(uint16_t event, uint32_t value) {
  switch (event) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      return ProtocolErrorName(value);
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      return "refused by the ZAP allow-list (status " + std::to_string(value) + ")";
    default:
      // E.g. a peer without CURVE keys that saw the coordinator's CURVE greeting and hung up.
      return std::string("handshake did not complete (") + std::strerror(static_cast<int>(value)) +
             "): the peer hung up or stalled mid-handshake (a peer without CURVE keys, or with "
             "another security mechanism, does this)";
  }
}

}  // namespace

HandshakeMonitor::HandshakeMonitor(zmq::socket_t* socket, LogFn log)
    : socket_(socket), log_(std::move(log)) {
  if (!log_) log_ = [](const std::string& line) { std::cerr << line << std::endl; };
}

StatusOr<std::unique_ptr<HandshakeMonitor>> HandshakeMonitor::Start(zmq::context_t* ctx,
                                                                    zmq::socket_t* socket,
                                                                    LogFn log) {
  std::unique_ptr<HandshakeMonitor> m(new HandshakeMonitor(socket, std::move(log)));
  char endpoint[80];
  std::snprintf(endpoint, sizeof(endpoint), "inproc://sd2-handshake-monitor-%p",
                static_cast<void*>(m.get()));
  if (zmq_socket_monitor(socket->handle(), endpoint, kMonitoredEvents) != 0) {
    m->socket_ = nullptr;  // nothing to stop
    return UnavailableError(std::string("socket monitor: ") + zmq_strerror(zmq_errno()));
  }
  try {
    m->pair_ = std::make_unique<zmq::socket_t>(*ctx, zmq::socket_type::pair);
    m->pair_->set(zmq::sockopt::linger, 0);
    m->pair_->connect(endpoint);
  } catch (const zmq::error_t& e) {
    return UnavailableError(std::string("socket monitor: cannot connect ") + endpoint + ": " +
                            e.what());
  }
  HandshakeMonitor* raw = m.get();
  m->thread_ = std::thread([raw]() { raw->Loop(); });
  return m;
}

HandshakeMonitor::~HandshakeMonitor() {
  // Stop the events first, then read those already queued and end the thread.
  if (socket_ != nullptr) zmq_socket_monitor(socket_->handle(), nullptr, 0);
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  pair_.reset();
}

HandshakeMonitor::Counts HandshakeMonitor::counts() const {
  Counts c;
  c.no_detail = no_detail_.load();
  c.protocol = protocol_.load();
  c.auth = auth_.load();
  return c;
}

void HandshakeMonitor::Loop() {
  while (true) {
    bool stopping = stop_.load();
    try {
      zmq::pollitem_t item{pair_->handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(stopping ? 0 : 50));
      if (item.revents & ZMQ_POLLIN) {
        // Frame 1: uint16 event + uint32 value; frame 2: the endpoint.
        zmq::message_t event, address;
        if (!pair_->recv(event, zmq::recv_flags::none)) continue;
        if (event.more()) (void)pair_->recv(address, zmq::recv_flags::none);
        if (event.size() >= 6) {
          uint16_t id;
          uint32_t value;
          std::memcpy(&id, event.data(), sizeof(id));
          std::memcpy(&value, static_cast<const char*>(event.data()) + sizeof(id), sizeof(value));
          HandleEvent(id, value, address.to_string());
        }
        continue;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) break;
      log_(std::string("sd2 auth: handshake monitor: ") + e.what());
      if (stopping) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (stopping) break;
  }
  if (!pending_.empty()) FlushPending("");
}

void HandshakeMonitor::HandleEvent(uint16_t event, uint32_t value, const std::string& endpoint) {
  int fd = static_cast<int>(value);
  switch (event) {
    case ZMQ_EVENT_ACCEPTED:
      peers_[fd] = PeerOfAcceptedFd(fd, endpoint);
      return;
    case ZMQ_EVENT_DISCONNECTED: {
      std::string peer;
      if (auto it = peers_.find(fd); it != peers_.end()) {
        peer = it->second;
        peers_.erase(it);
      }
      if (!pending_.empty()) FlushPending(peer);
      return;
    }
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      ++no_detail_;
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      ++protocol_;
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      ++auth_;
      break;
    default:
      return;
  }
  if (!pending_.empty()) FlushPending("");  // the previous failure's disconnect never came
  pending_ = HandshakeFailure(event, value);
}

void HandshakeMonitor::FlushPending(const std::string& peer) {
  log_("sd2 auth: handshake failed with " +
       (peer.empty() ? std::string("peer (address unknown)") : "peer " + peer) + ": " + pending_);
  pending_.clear();
  ++logged_;
}

}  // namespace sd2::coordinator

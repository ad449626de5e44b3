#include "coordinator/auth.h"

#include <fcntl.h>
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

}  // namespace sd2::coordinator

// The coordinator's transport shell: a ZeroMQ ROUTER socket driven by one Boost.Asio
// io_context, which owns the Core (all state). Each request frame is handed to
// Core::HandleBytes and its reply sent back to the same peer; a timer calls Core::Tick to
// expire leases. The Core commits every change before its reply exists, so a reply is never
// sent for an uncommitted change.
//
//   sd2::coordinator::Server server(&core, {.bind = "tcp://127.0.0.1:5557"});
//   SD2_RETURN_IF_ERROR(server.Bind());
//   server.Run();  // until a `shutdown` request, Stop(), or `stop_when` returns true
//
// Thread-safety: Run on one thread; Stop() may be called from any thread.
#ifndef SD2_COORDINATOR_SERVER_H_
#define SD2_COORDINATOR_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "coordinator/auth.h"
#include "coordinator/core.h"

namespace sd2::coordinator {

struct ServerOptions {
  // ZeroMQ endpoint; "tcp://127.0.0.1:*" binds a free port (see Server::endpoint()).
  std::string bind = "tcp://127.0.0.1:5557";
  size_t max_message_bytes = protocol::kDefaultMaxMessageBytes;
  double tick_s = 0.2;  // lease expiry check period
  // Checked after every tick; Run returns when it is true (e.g. the sweep launch is done).
  std::function<bool()> stop_when;
  bool verbose = false;
  // CURVE keys and client allow-list (coordinator/auth.h). Without keys, Bind refuses any
  // endpoint but loopback and ipc.
  ServerCurve curve = {};
  // Where refused peers and failed handshakes are logged (ZapHandler, HandshakeMonitor); stderr
  // when empty. Called from their threads.
  std::function<void(const std::string&)> auth_log;
  // Signals that stop Run (e.g. SIGINT, SIGTERM). They are taken with an asio::signal_set on
  // the loop, so nothing runs in signal-handler context.
  std::vector<int> stop_signals;
};

class Server {
 public:
  Server(Core* core, ServerOptions options);
  ~Server();
  Status Bind();
  // The bound endpoint (with the real port after a wildcard bind).
  std::string endpoint() const;
  Status Run();
  void Stop();
  // Failed ZMTP handshakes seen so far (HandshakeMonitor; zero before Bind), and peers the ZAP
  // handler refused (zero without keys). Readable from any thread.
  HandshakeMonitor::Counts handshake_failures() const;
  int64_t handshake_failures_logged() const;
  int64_t zap_refusals() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sd2::coordinator

#endif  // SD2_COORDINATOR_SERVER_H_

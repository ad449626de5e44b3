// A request/reply client of the coordinator over a ZeroMQ DEALER socket, with the Lazy
// Pirate pattern: a request not answered within `timeout_s` is sent again on a fresh socket
// (so a late reply to the old one is never mistaken for the new one's), until `give_up_s`
// has passed. Every protocol request is idempotent, so resending is safe.
//
//   sd2::coordinator::Client client("tcp://127.0.0.1:5557", {.timeout_s = 2, .give_up_s = 5});
//   SD2_ASSIGN_OR_RETURN(sd2::protocol::Message reply, client.Call(sd2::protocol::Shutdown{}));
//
// Thread-safety: one thread per Client (ZeroMQ sockets are not thread-safe).
#ifndef SD2_COORDINATOR_CLIENT_H_
#define SD2_COORDINATOR_CLIENT_H_

#include <memory>
#include <string>

#include "common/protocol.h"
#include "common/status.h"
#include "coordinator/auth.h"

namespace sd2::coordinator {

struct ClientOptions {
  double timeout_s = 5;   // per try
  double give_up_s = 15;  // all tries together
  // CURVE keys (coordinator/auth.h); when disabled, taken from SD2_KEYS_DIR / SD2_KEY_NAME.
  ClientCurve curve = {};
};

class Client {
 public:
  explicit Client(std::string endpoint, ClientOptions options = {});
  ~Client();
  // Sends one request and waits for its reply. An `error` reply is returned as a Message (use
  // protocol::ReplyStatus); a coordinator that never answers gives UnavailableError.
  StatusOr<protocol::Message> CallRaw(const std::string& request);
  template <typename T>
  StatusOr<protocol::Message> Call(const T& m) {
    return CallRaw(protocol::Encode(m));
  }
  // Like Call, but an error reply becomes the returned status, and the reply must be `R`.
  template <typename R, typename T>
  StatusOr<R> CallAs(const T& m) {
    SD2_ASSIGN_OR_RETURN(protocol::Message reply, Call(m));
    SD2_RETURN_IF_ERROR(protocol::ReplyStatus(reply));
    return protocol::ParseAs<R>(reply);
  }
  const std::string& endpoint() const { return endpoint_; }

 private:
  struct Impl;
  std::string endpoint_;
  ClientOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sd2::coordinator

#endif  // SD2_COORDINATOR_CLIENT_H_

#include "coordinator/client.h"

#include <chrono>
#include <zmq.hpp>

namespace sd2::coordinator {

namespace {
zmq::context_t& Context() {
  static zmq::context_t* ctx = new zmq::context_t(1);  // lives for the process
  return *ctx;
}
}  // namespace

struct Client::Impl {
  std::unique_ptr<zmq::socket_t> socket;
  ClientCurve curve;
  Status curve_status;
  void Reset(const std::string& endpoint) {
    socket = std::make_unique<zmq::socket_t>(Context(), zmq::socket_type::dealer);
    socket->set(zmq::sockopt::linger, 0);
    if (Status s = ApplyClientCurve(*socket, curve); !s.ok()) curve_status = s;
    socket->set(zmq::sockopt::reconnect_ivl, 100);
    socket->set(zmq::sockopt::reconnect_ivl_max, 1000);
    socket->connect(endpoint);
  }
};

Client::Client(std::string endpoint, ClientOptions options)
    : endpoint_(std::move(endpoint)), options_(options), impl_(std::make_unique<Impl>()) {
  if (options_.curve.enabled()) {
    impl_->curve = options_.curve;
  } else if (auto env = ClientCurveFromEnv(); env.ok()) {
    impl_->curve = *env;
  } else {
    impl_->curve_status = env.status();
  }
}

Client::~Client() = default;

StatusOr<protocol::Message> Client::CallRaw(const std::string& request) {
  using Clock = std::chrono::steady_clock;
  auto give_up =
      Clock::now() + std::chrono::microseconds(static_cast<int64_t>(options_.give_up_s * 1e6));
  try {
    SD2_RETURN_IF_ERROR(impl_->curve_status);
    if (!impl_->socket) impl_->Reset(endpoint_);
    SD2_RETURN_IF_ERROR(impl_->curve_status);
    while (true) {
      impl_->socket->send(zmq::buffer(request), zmq::send_flags::none);
      auto deadline = std::min(
          give_up,
          Clock::now() + std::chrono::microseconds(static_cast<int64_t>(options_.timeout_s * 1e6)));
      while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) break;
        zmq::pollitem_t item{static_cast<void*>(*impl_->socket), 0, ZMQ_POLLIN, 0};
        zmq::poll(&item, 1, left);
        if (item.revents & ZMQ_POLLIN) {
          zmq::message_t reply;
          (void)impl_->socket->recv(reply, zmq::recv_flags::none);
          return protocol::Decode(
              std::string_view(static_cast<const char*>(reply.data()), reply.size()));
        }
      }
      // No answer: drop the socket (and any late reply to it) and try again.
      impl_->Reset(endpoint_);
      if (Clock::now() >= give_up) {
        return UnavailableError("no reply from the coordinator at " + endpoint_ + " within " +
                                std::to_string(options_.give_up_s) + " s");
      }
    }
  } catch (const zmq::error_t& e) {
    impl_->socket.reset();
    return UnavailableError("zeromq (" + endpoint_ + "): " + e.what());
  }
}

}  // namespace sd2::coordinator

#include "coordinator/server.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <iostream>
#include <zmq.hpp>

namespace sd2::coordinator {

namespace asio = boost::asio;

struct Server::Impl {
  Impl(Core* c, ServerOptions o)
      : core(c),
        options(std::move(o)),
        ctx(1),
        socket(ctx, zmq::socket_type::router),
        descriptor(io),
        timer(io),
        signals(io) {}

  // Handles every message waiting on the socket. ZMQ_FD is edge-triggered: drain until
  // ZMQ_EVENTS has no POLLIN before waiting on the descriptor again.
  void Drain() {
    while (socket.get(zmq::sockopt::events) & ZMQ_POLLIN) {
      zmq::message_t identity, payload;
      if (!socket.recv(identity, zmq::recv_flags::dontwait)) break;
      std::string reply;
      bool more = socket.get(zmq::sockopt::rcvmore);
      if (!more) continue;  // a bare identity frame: nothing to answer
      (void)socket.recv(payload, zmq::recv_flags::dontwait);
      // Extra frames are not part of the protocol: drop them and answer with an error.
      bool extra = false;
      while (socket.get(zmq::sockopt::rcvmore)) {
        zmq::message_t junk;
        (void)socket.recv(junk, zmq::recv_flags::dontwait);
        extra = true;
      }
      if (extra) {
        reply = protocol::ErrorReply(InvalidArgumentError("one frame per message expected"));
      } else {
        reply = core->HandleBytes(
            std::string_view(static_cast<const char*>(payload.data()), payload.size()),
            options.max_message_bytes);
      }
      if (options.verbose) {
        std::cerr << "coordinator: " << payload.size() << " B -> " << reply.substr(0, 120) << "\n";
      }
      try {
        socket.send(identity, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
        socket.send(zmq::buffer(reply), zmq::send_flags::dontwait);
      } catch (const zmq::error_t& e) {
        std::cerr << "coordinator: reply dropped: " << e.what() << "\n";
      }
      if (core->shutdown_requested()) io.stop();
    }
  }

  void WaitReadable() {
    descriptor.async_wait(asio::posix::stream_descriptor::wait_read,
                          [this](const boost::system::error_code& ec) {
                            if (ec) return;
                            Drain();
                            WaitReadable();
                          });
  }

  void ScheduleTick() {
    timer.expires_after(std::chrono::microseconds(static_cast<int64_t>(options.tick_s * 1e6)));
    timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      core->Tick();
      Drain();  // also catches edges missed while ticking
      if (options.stop_when && options.stop_when()) {
        io.stop();
        return;
      }
      ScheduleTick();
    });
  }

  Core* core;
  ServerOptions options;
  zmq::context_t ctx;
  zmq::socket_t socket;
  asio::io_context io;
  asio::posix::stream_descriptor descriptor;
  asio::steady_timer timer;
  asio::signal_set signals;
  std::string endpoint;
  std::unique_ptr<ZapHandler> zap;  // closed before ctx
  // Declared last: stops monitoring `socket` before anything else is destroyed.
  std::unique_ptr<HandshakeMonitor> monitor;
};

Server::Server(Core* core, ServerOptions options)
    : impl_(std::make_unique<Impl>(core, std::move(options))) {}

Server::~Server() {
  if (impl_->descriptor.is_open()) impl_->descriptor.release();  // ZeroMQ owns the fd
}

Status Server::Bind() {
  try {
    impl_->socket.set(zmq::sockopt::linger, 0);
    impl_->socket.set(zmq::sockopt::router_mandatory, false);
    // Messages a little over the limit reach the core and get an error reply; ZeroMQ drops
    // the connection of a peer sending one far over it (twice the limit) before it is buffered.
    impl_->socket.set(zmq::sockopt::maxmsgsize,
                      static_cast<int64_t>(2 * impl_->options.max_message_bytes));
    impl_->socket.set(zmq::sockopt::sndhwm, 100000);
    impl_->socket.set(zmq::sockopt::rcvhwm, 100000);
    SD2_RETURN_IF_ERROR(CheckBindAllowed(impl_->options.bind, impl_->options.curve));
    if (!impl_->monitor) {
      SD2_ASSIGN_OR_RETURN(impl_->monitor, HandshakeMonitor::Start(&impl_->ctx, &impl_->socket,
                                                                   impl_->options.auth_log));
    }
    if (impl_->options.curve.enabled()) {
      SD2_ASSIGN_OR_RETURN(impl_->zap,
                           ZapHandler::Start(&impl_->ctx, impl_->options.curve.allowed_clients,
                                             impl_->options.auth_log));
      SD2_RETURN_IF_ERROR(ApplyServerCurve(impl_->socket, impl_->options.curve));
    }
    impl_->socket.bind(impl_->options.bind);
    impl_->endpoint = impl_->socket.get(zmq::sockopt::last_endpoint);
    impl_->descriptor.assign(impl_->socket.get(zmq::sockopt::fd));
  } catch (const zmq::error_t& e) {
    return UnavailableError("cannot bind " + impl_->options.bind + ": " + e.what());
  } catch (const boost::system::system_error& e) {
    return InternalError(std::string("asio: ") + e.what());
  }
  return OkStatus();
}

std::string Server::endpoint() const { return impl_->endpoint; }

Status Server::Run() {
  if (impl_->endpoint.empty()) return FailedPreconditionError("Server::Run before Bind");
  try {
    for (int sig : impl_->options.stop_signals) impl_->signals.add(sig);
    if (!impl_->options.stop_signals.empty()) {
      impl_->signals.async_wait([this](const boost::system::error_code& ec, int) {
        if (!ec) impl_->io.stop();
      });
    }
    impl_->Drain();
    impl_->WaitReadable();
    impl_->ScheduleTick();
    impl_->io.run();
  } catch (const std::exception& e) {
    return InternalError(std::string("coordinator loop: ") + e.what());
  }
  return OkStatus();
}

HandshakeMonitor::Counts Server::handshake_failures() const {
  return impl_->monitor ? impl_->monitor->counts() : HandshakeMonitor::Counts{};
}

int64_t Server::handshake_failures_logged() const {
  return impl_->monitor ? impl_->monitor->logged() : 0;
}

int64_t Server::zap_refusals() const { return impl_->zap ? impl_->zap->denied() : 0; }

void Server::Stop() {
  asio::post(impl_->io, [this]() { impl_->io.stop(); });
}

}  // namespace sd2::coordinator

#include "worker/comm/mpi_communicator.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace sd2::worker {
namespace {

Status MpiStatus(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return OkStatus();
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return UnavailableError(std::string(what) + ": " + std::string(msg, size_t(len)));
}

// MPI counts are int: large buffers go in chunks.
constexpr size_t kMaxChunk = size_t(1) << 30;

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, double timeout_s) : comm_(comm), timeout_s_(timeout_s) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  Status AllReduceSum(float* data, size_t n) override { return AllReduce(data, n, MPI_FLOAT); }
  Status AllReduceSum(double* data, size_t n) override { return AllReduce(data, n, MPI_DOUBLE); }

  Status AllGather(const float* in, size_t n, float* out) override {
    SD2_RETURN_IF_ERROR(CheckUsable());
    if (n > kMaxChunk) return InvalidArgumentError("AllGather: buffer too large");
    MPI_Request req;
    SD2_RETURN_IF_ERROR(
        MpiStatus(MPI_Iallgather(in, int(n), MPI_FLOAT, out, int(n), MPI_FLOAT, comm_, &req),
                  "MPI_Allgather"));
    return Wait(&req, "MPI_Allgather");
  }

  Status Broadcast(std::string* bytes, int root) override {
    SD2_RETURN_IF_ERROR(CheckUsable());
    if (root < 0 || root >= size_) return InvalidArgumentError("Broadcast: root out of range");
    unsigned long long len = bytes->size();
    MPI_Request req;
    SD2_RETURN_IF_ERROR(
        MpiStatus(MPI_Ibcast(&len, 1, MPI_UNSIGNED_LONG_LONG, root, comm_, &req), "MPI_Bcast"));
    SD2_RETURN_IF_ERROR(Wait(&req, "MPI_Bcast"));
    if (rank_ != root) bytes->resize(size_t(len));
    for (size_t off = 0; off < len; off += kMaxChunk) {
      size_t chunk = std::min(kMaxChunk, size_t(len) - off);
      SD2_RETURN_IF_ERROR(MpiStatus(
          MPI_Ibcast(bytes->data() + off, int(chunk), MPI_BYTE, root, comm_, &req), "MPI_Bcast"));
      SD2_RETURN_IF_ERROR(Wait(&req, "MPI_Bcast"));
    }
    return OkStatus();
  }

  Status Barrier() override {
    SD2_RETURN_IF_ERROR(CheckUsable());
    MPI_Request req;
    SD2_RETURN_IF_ERROR(MpiStatus(MPI_Ibarrier(comm_, &req), "MPI_Barrier"));
    return Wait(&req, "MPI_Barrier");
  }
  void Abort(int code) override { MPI_Abort(comm_, code); }

  void WaitPending() {
    for (MPI_Request& r : pending_) MPI_Wait(&r, MPI_STATUS_IGNORE);
    pending_.clear();
    broken_.clear();
  }

 private:
  Status AllReduce(void* data, size_t n, MPI_Datatype type) {
    SD2_RETURN_IF_ERROR(CheckUsable());
    int elem = 0;
    MPI_Type_size(type, &elem);
    char* p = static_cast<char*>(data);
    for (size_t off = 0; off < n; off += kMaxChunk) {
      size_t chunk = std::min(kMaxChunk, n - off);
      MPI_Request req;
      SD2_RETURN_IF_ERROR(MpiStatus(MPI_Iallreduce(MPI_IN_PLACE, p + off * size_t(elem), int(chunk),
                                                   type, MPI_SUM, comm_, &req),
                                    "MPI_Allreduce"));
      SD2_RETURN_IF_ERROR(Wait(&req, "MPI_Allreduce"));
    }
    return OkStatus();
  }

  Status CheckUsable() const {
    if (broken_.empty()) return OkStatus();
    return FailedPreconditionError("MPI communicator is unusable: " + broken_);
  }

  // Polls `req` until it completes or the time-out passes. Spins briefly (short collectives
  // finish in microseconds), then sleeps with a growing back-off of up to 1 ms, so that a rank
  // waiting for a slow peer leaves its core to the peer.
  Status Wait(MPI_Request* req, const char* what) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    int done = 0;
    auto sleep = std::chrono::microseconds(20);
    for (int polls = 0;; ++polls) {
      SD2_RETURN_IF_ERROR(MpiStatus(MPI_Test(req, &done, MPI_STATUS_IGNORE), what));
      if (done) return OkStatus();
      if (polls < 200) continue;
      double waited = std::chrono::duration<double>(Clock::now() - start).count();
      if (timeout_s_ > 0 && waited > timeout_s_) {
        char buf[64];
        std::snprintf(buf, sizeof(buf), "%.1f", timeout_s_);
        broken_ = std::string(what) + " on rank " + std::to_string(rank_) + " of " +
                  std::to_string(size_) + " timed out after " + buf +
                  " s (a peer rank hung or died)";
        pending_.push_back(*req);
        return DeadlineExceededError(broken_);
      }
      std::this_thread::sleep_for(sleep);
      sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
    }
  }

  MPI_Comm comm_;
  double timeout_s_;
  int rank_ = 0;
  int size_ = 1;
  std::string broken_;  // why the communicator is unusable; empty while it is usable
  std::vector<MPI_Request> pending_;
};

class LocalCommunicator : public Communicator {
 public:
  explicit LocalCommunicator(int fail_after) : fail_after_(fail_after) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  Status AllReduceSum(float*, size_t) override { return Tick(); }
  Status AllReduceSum(double*, size_t) override { return Tick(); }
  Status AllGather(const float* in, size_t n, float* out) override {
    SD2_RETURN_IF_ERROR(Tick());
    if (n) std::memmove(out, in, n * sizeof(float));
    return OkStatus();
  }
  Status Broadcast(std::string*, int root) override {
    if (root != 0) return InvalidArgumentError("Broadcast: root out of range");
    return Tick();
  }
  Status Barrier() override { return Tick(); }
  void Abort(int code) override { std::_Exit(code); }

 private:
  Status Tick() {
    if (fail_after_ >= 0 && calls_++ >= fail_after_) {
      return UnavailableError("local communicator: injected failure");
    }
    return OkStatus();
  }
  int fail_after_;
  int calls_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> MakeMpiCommunicator(MPI_Comm comm, double timeout_s) {
  return std::make_unique<MpiCommunicator>(comm, timeout_s);
}

bool TEST_WaitPendingCollectives(Communicator* comm) {
  auto* mpi = dynamic_cast<MpiCommunicator*>(comm);
  if (mpi == nullptr) return false;
  mpi->WaitPending();
  return true;
}

std::unique_ptr<Communicator> MakeLocalCommunicator(int fail_after) {
  return std::make_unique<LocalCommunicator>(fail_after);
}

}  // namespace sd2::worker

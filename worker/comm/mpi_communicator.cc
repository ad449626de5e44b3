#include "worker/comm/mpi_communicator.h"

#include <cstring>
#include <string>

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
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  Status AllReduceSum(float* data, size_t n) override { return AllReduce(data, n, MPI_FLOAT); }
  Status AllReduceSum(double* data, size_t n) override { return AllReduce(data, n, MPI_DOUBLE); }

  Status AllGather(const float* in, size_t n, float* out) override {
    if (n > kMaxChunk) return InvalidArgumentError("AllGather: buffer too large");
    return MpiStatus(MPI_Allgather(in, int(n), MPI_FLOAT, out, int(n), MPI_FLOAT, comm_),
                     "MPI_Allgather");
  }

  Status Broadcast(std::string* bytes, int root) override {
    unsigned long long len = bytes->size();
    SD2_RETURN_IF_ERROR(
        MpiStatus(MPI_Bcast(&len, 1, MPI_UNSIGNED_LONG_LONG, root, comm_), "MPI_Bcast"));
    if (rank_ != root) bytes->resize(size_t(len));
    for (size_t off = 0; off < len; off += kMaxChunk) {
      size_t chunk = std::min(kMaxChunk, size_t(len) - off);
      SD2_RETURN_IF_ERROR(MpiStatus(
          MPI_Bcast(bytes->data() + off, int(chunk), MPI_BYTE, root, comm_), "MPI_Bcast"));
    }
    return OkStatus();
  }

  Status Barrier() override { return MpiStatus(MPI_Barrier(comm_), "MPI_Barrier"); }
  void Abort(int code) override { MPI_Abort(comm_, code); }

 private:
  Status AllReduce(void* data, size_t n, MPI_Datatype type) {
    int elem = 0;
    MPI_Type_size(type, &elem);
    char* p = static_cast<char*>(data);
    for (size_t off = 0; off < n; off += kMaxChunk) {
      size_t chunk = std::min(kMaxChunk, n - off);
      SD2_RETURN_IF_ERROR(MpiStatus(
          MPI_Allreduce(MPI_IN_PLACE, p + off * size_t(elem), int(chunk), type, MPI_SUM, comm_),
          "MPI_Allreduce"));
    }
    return OkStatus();
  }

  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

class LocalCommunicator : public Communicator {
 public:
  explicit LocalCommunicator(int fail_after) : fail_after_(fail_after) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
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

std::unique_ptr<Communicator> MakeMpiCommunicator(MPI_Comm comm) {
  return std::make_unique<MpiCommunicator>(comm);
}

std::unique_ptr<Communicator> MakeLocalCommunicator(int fail_after) {
  return std::make_unique<LocalCommunicator>(fail_after);
}

}  // namespace sd2::worker

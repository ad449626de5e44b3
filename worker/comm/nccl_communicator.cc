#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "worker/comm/mpi_communicator.h"

namespace sd2::worker {
namespace {

using Clock = std::chrono::steady_clock;

Status NcclStatus(ncclResult_t r, const std::string& what) {
  if (r == ncclSuccess || r == ncclInProgress) return OkStatus();
  return UnavailableError(what + ": " + ncclGetErrorString(r));
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", s);
  return buf;
}

// Polls `done` (returns true when finished, or an error) until it is finished or the
// deadline passes, with a back-off from 10 us to 1 ms between polls.
template <typename Poll>
Status PollUntil(Poll done, double timeout_s, const std::string& what, bool* timed_out) {
  const auto start = Clock::now();
  auto sleep = std::chrono::microseconds(10);
  *timed_out = false;
  for (;;) {
    StatusOr<bool> finished = done();
    if (!finished.ok()) return finished.status();
    if (*finished) return OkStatus();
    if (timeout_s > 0 && std::chrono::duration<double>(Clock::now() - start).count() > timeout_s) {
      *timed_out = true;
      return DeadlineExceededError(what + " timed out after " + Seconds(timeout_s) +
                                   " s (a peer rank hung or died)");
    }
    std::this_thread::sleep_for(sleep);
    sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
  }
}

// Waits until a non-blocking NCCL communicator has no operation in progress.
Status WaitComm(ncclComm_t comm, double timeout_s, const std::string& what, bool* timed_out) {
  return PollUntil(
      [&]() -> StatusOr<bool> {
        ncclResult_t async = ncclSuccess;
        SD2_RETURN_IF_ERROR(NcclStatus(ncclCommGetAsyncError(comm, &async), what));
        if (async == ncclInProgress) return false;
        SD2_RETURN_IF_ERROR(NcclStatus(async, what));
        return true;
      },
      timeout_s, what, timed_out);
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> mpi, ncclComm_t nccl, cudaStream_t stream,
                   int device, double timeout_s)
      : mpi_(std::move(mpi)),
        nccl_(nccl),
        stream_(stream),
        device_(device),
        timeout_s_(timeout_s) {}
  ~NcclCommunicator() override {
    if (nccl_ != nullptr) {
      // A healthy communicator is finalized (flushes pending work) before it is destroyed.
      bool timed_out = false;
      if (ncclCommFinalize(nccl_) == ncclSuccess &&
          WaitComm(nccl_, timeout_s_, "ncclCommFinalize", &timed_out).ok()) {
        ncclCommDestroy(nccl_);
      } else {
        ncclCommAbort(nccl_);
      }
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  std::string backend() const override { return "nccl"; }
  bool device_buffers() const override { return true; }

  Status AllReduceSum(float* data, size_t n) override {
    return Run("ncclAllReduce",
               [&] { return ncclAllReduce(data, data, n, ncclFloat32, ncclSum, nccl_, stream_); });
  }
  Status AllReduceSum(double* data, size_t n) override {
    return Run("ncclAllReduce",
               [&] { return ncclAllReduce(data, data, n, ncclFloat64, ncclSum, nccl_, stream_); });
  }
  Status AllGather(const float* in, size_t n, float* out) override {
    return Run("ncclAllGather",
               [&] { return ncclAllGather(in, out, n, ncclFloat32, nccl_, stream_); });
  }
  Status Broadcast(std::string* bytes, int root) override { return mpi_->Broadcast(bytes, root); }
  Status Barrier() override { return mpi_->Barrier(); }
  void Abort(int code) override {
    if (nccl_ != nullptr) ncclCommAbort(nccl_);
    nccl_ = nullptr;
    mpi_->Abort(code);
  }

 private:
  // Enqueues one collective and waits, against the deadline, until NCCL has enqueued it and
  // the stream has run it. A time-out or an asynchronous NCCL error aborts the communicator.
  template <typename Launch>
  Status Run(const std::string& what, Launch launch) {
    if (!broken_.empty())
      return FailedPreconditionError("NCCL communicator is unusable: " + broken_);
    if (cudaSetDevice(device_) != cudaSuccess)
      return UnavailableError("cudaSetDevice(" + std::to_string(device_) + ") failed");
    const std::string where = what + " on rank " + std::to_string(rank()) + " of " +
                              std::to_string(size()) + " (cuda:" + std::to_string(device_) + ")";
    Status s = NcclStatus(launch(), where);
    bool timed_out = false;
    if (s.ok()) s = WaitComm(nccl_, timeout_s_, where, &timed_out);
    if (s.ok()) {
      s = PollUntil(
          [&]() -> StatusOr<bool> {
            cudaError_t e = cudaStreamQuery(stream_);
            if (e == cudaSuccess) return true;
            if (e != cudaErrorNotReady)
              return UnavailableError(where + ": " + cudaGetErrorString(e));
            ncclResult_t async = ncclSuccess;
            ncclCommGetAsyncError(nccl_, &async);
            if (async != ncclSuccess && async != ncclInProgress)
              return UnavailableError(where + ": " + ncclGetErrorString(async));
            return false;
          },
          timeout_s_, where, &timed_out);
    }
    if (!s.ok()) {
      broken_ = s.message();
      ncclCommAbort(nccl_);
      nccl_ = nullptr;
    }
    return s;
  }

  std::unique_ptr<Communicator> mpi_;  // bootstrap, Broadcast, Barrier
  ncclComm_t nccl_;
  cudaStream_t stream_;
  int device_;
  double timeout_s_;
  std::string broken_;
};

}  // namespace

StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(MPI_Comm comm, int cuda_device,
                                                             double timeout_s) {
  auto mpi = MakeMpiCommunicator(comm, timeout_s);
  const int rank = mpi->rank(), size = mpi->size();
  int devices = 0;
  cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess)
    return UnavailableError(std::string("no usable CUDA device: ") + cudaGetErrorString(e));
  if (cuda_device < 0 || cuda_device >= devices)
    return InvalidArgumentError("cuda:" + std::to_string(cuda_device) + " does not exist (" +
                                std::to_string(devices) + " visible)");
  if (cudaSetDevice(cuda_device) != cudaSuccess)
    return UnavailableError("cudaSetDevice(" + std::to_string(cuda_device) + ") failed");
  // Rank 0 makes the id; a failure there must still reach the other ranks, so the id's
  // broadcast carries an "ok" prefix.
  ncclUniqueId id{};
  std::string msg;
  if (rank == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    msg = r == ncclSuccess ? "ok" + std::string(id.internal, sizeof(id.internal))
                           : std::string("ncclGetUniqueId: ") + ncclGetErrorString(r);
  }
  SD2_RETURN_IF_ERROR(mpi->Broadcast(&msg, 0));
  if (msg.size() != 2 + sizeof(id.internal) || msg.compare(0, 2, "ok") != 0)
    return UnavailableError("NCCL bootstrap failed on rank 0: " + msg);
  msg.copy(id.internal, sizeof(id.internal), 2);

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // every call returns at once; WaitComm polls against the deadline
  ncclComm_t nccl = nullptr;
  Status s = NcclStatus(ncclCommInitRankConfig(&nccl, size, id, rank, &config), "ncclCommInitRank");
  bool timed_out = false;
  if (s.ok()) s = WaitComm(nccl, timeout_s, "ncclCommInitRank", &timed_out);
  if (!s.ok()) {
    if (nccl != nullptr) ncclCommAbort(nccl);
    return s;
  }
  cudaStream_t stream = nullptr;
  if (cudaStreamCreate(&stream) != cudaSuccess) {
    ncclCommAbort(nccl);
    return UnavailableError("cudaStreamCreate failed");
  }
  return std::unique_ptr<Communicator>(
      new NcclCommunicator(std::move(mpi), nccl, stream, cuda_device, timeout_s));
}

}  // namespace sd2::worker

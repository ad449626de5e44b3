#include "worker/comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <string>

namespace sd2::worker {
namespace {

Status NcclStatus(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return OkStatus();
  return UnavailableError(std::string(what) + ": " + ncclGetErrorString(r));
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(MPI_Comm mpi, ncclComm_t nccl, cudaStream_t stream, int rank, int size)
      : mpi_(mpi), nccl_(nccl), stream_(stream), rank_(rank), size_(size) {}
  ~NcclCommunicator() override {
    ncclCommDestroy(nccl_);
    cudaStreamDestroy(stream_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status AllReduceSum(float* data, size_t n) override {
    return Sync(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, nccl_, stream_),
                "ncclAllReduce");
  }
  Status AllReduceSum(double* data, size_t n) override {
    return Sync(ncclAllReduce(data, data, n, ncclFloat64, ncclSum, nccl_, stream_),
                "ncclAllReduce");
  }
  Status AllGather(const float* in, size_t n, float* out) override {
    return Sync(ncclAllGather(in, out, n, ncclFloat32, nccl_, stream_), "ncclAllGather");
  }
  Status Broadcast(std::string* bytes, int root) override {
    long long n = static_cast<long long>(bytes->size());
    if (MPI_Bcast(&n, 1, MPI_LONG_LONG, root, mpi_) != MPI_SUCCESS)
      return UnavailableError("MPI_Bcast failed");
    bytes->resize(size_t(n));
    if (n > 0 && MPI_Bcast(bytes->data(), int(n), MPI_CHAR, root, mpi_) != MPI_SUCCESS)
      return UnavailableError("MPI_Bcast failed");
    return OkStatus();
  }
  Status Barrier() override {
    return MPI_Barrier(mpi_) == MPI_SUCCESS ? OkStatus() : UnavailableError("MPI_Barrier failed");
  }
  void Abort(int code) override {
    ncclCommAbort(nccl_);
    MPI_Abort(mpi_, code);
  }

 private:
  Status Sync(ncclResult_t r, const char* what) {
    SD2_RETURN_IF_ERROR(NcclStatus(r, what));
    cudaError_t e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess) return UnavailableError(std::string(what) + ": " + cudaGetErrorString(e));
    return OkStatus();
  }
  MPI_Comm mpi_;
  ncclComm_t nccl_;
  cudaStream_t stream_;
  int rank_, size_;
};

}  // namespace

StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(MPI_Comm comm, int cuda_device) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  if (cudaSetDevice(cuda_device) != cudaSuccess)
    return UnavailableError("cudaSetDevice(" + std::to_string(cuda_device) + ") failed");
  ncclUniqueId id;
  if (rank == 0) SD2_RETURN_IF_ERROR(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  if (MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, comm) != MPI_SUCCESS)
    return UnavailableError("MPI_Bcast of the NCCL unique id failed");
  ncclComm_t nccl;
  SD2_RETURN_IF_ERROR(NcclStatus(ncclCommInitRank(&nccl, size, id, rank), "ncclCommInitRank"));
  cudaStream_t stream;
  if (cudaStreamCreate(&stream) != cudaSuccess) {
    ncclCommDestroy(nccl);
    return UnavailableError("cudaStreamCreate failed");
  }
  return std::unique_ptr<Communicator>(new NcclCommunicator(comm, nccl, stream, rank, size));
}

}  // namespace sd2::worker

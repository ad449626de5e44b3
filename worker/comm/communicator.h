// Communicator: the collectives a worker group needs, behind one interface.
//
// Backends: MpiCommunicator (CPU buffers, MPI_COMM of the group), NcclCommunicator (CUDA
// buffers; built with -DSD2_WITH_NCCL=ON), FakeCommunicator (one process, tests; can be told to
// fail). Torch-free on purpose: tensors are passed as raw buffers by worker/train.
//
// Thread-safety: none. All calls on one thread (MPI is rarely thread-safe).
#ifndef SD2_WORKER_COMM_COMMUNICATOR_H_
#define SD2_WORKER_COMM_COMMUNICATOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::worker {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In-place sum over ranks.
  virtual Status AllReduceSum(float* data, size_t n) = 0;
  virtual Status AllReduceSum(double* data, size_t n) = 0;
  // out has size()*n elements: rank r's n elements at offset r*n.
  virtual Status AllGather(const float* in, size_t n, float* out) = 0;
  // Broadcast bytes from root; `bytes` is resized on non-root ranks.
  virtual Status Broadcast(std::string* bytes, int root) = 0;
  virtual Status Barrier() = 0;
  // Kills the whole group (MPI_Abort); used when a rank fails so the lease expires.
  virtual void Abort(int code) = 0;
};

}  // namespace sd2::worker

#endif  // SD2_WORKER_COMM_COMMUNICATOR_H_

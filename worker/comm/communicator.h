// Communicator: the collectives a worker group needs, behind one interface.
//
// Backends: MpiCommunicator (CPU buffers, MPI_COMM of the group), NcclCommunicator (CUDA
// buffers; built with -DSD2_WITH_NCCL=ON), LocalCommunicator (one process, tests; can be told to
// fail). Torch-free on purpose: tensors are passed as raw buffers by worker/train.
//
// Buffers: AllReduceSum and AllGather take host pointers unless device_buffers() is true, when
// they take device pointers on the rank's CUDA device (NCCL), ordered after the work already
// queued on that device's legacy default stream. Broadcast and Barrier are always host-side.
//
// Time-outs: every collective of the MPI and NCCL backends gives up after the communicator's
// time-out (a hung or dead peer) and returns DeadlineExceeded; the communicator is then broken:
// every later collective fails at once with FailedPrecondition, and the group must be torn down
// (Abort), since the peers' halves of the collective are still pending.
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

// Default time-out of one collective: long enough for the slowest step of a 3M-image epoch's
// evaluation barrier on a shared file system, short against a Slurm job's hours.
inline constexpr double kDefaultCollectiveTimeoutS = 600;

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi", "nccl" or "local": for logs and the attempt record.
  virtual std::string backend() const = 0;
  // True when AllReduceSum / AllGather take CUDA device pointers (see above).
  virtual bool device_buffers() const { return false; }
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

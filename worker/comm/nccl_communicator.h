// NCCL backend of Communicator for CUDA buffers (built with -DSD2_WITH_NCCL=ON).
//
// AllReduceSum / AllGather take device pointers on this rank's CUDA device
// (device_buffers() is true); they run on the communicator's own CUDA stream, which is a
// blocking stream and so ordered after the work already queued on the legacy default stream
// (LibTorch's default), and return once the collective has completed on the device. The bytes
// never visit the host. MPI bootstraps NCCL (rank 0's unique id is broadcast over the group's
// MPI communicator) and carries Broadcast of bytes and Barrier.
//
// Time-outs: the NCCL communicator is non-blocking (ncclConfig_t.blocking = 0) and every wait
// polls against the deadline; a collective that a hung or dead peer never completes returns
// DeadlineExceeded after `timeout_s`, aborts the NCCL communicator (ncclCommAbort, which frees
// the GPU stream), and leaves this Communicator broken (communicator.h).
//
//   auto comm = sd2::worker::MakeNcclCommunicator(MPI_COMM_WORLD, /*cuda_device=*/local_rank);
//   if (!comm.ok()) ...; (*comm)->AllReduceSum(grad_device_ptr, n);
#ifndef SD2_WORKER_COMM_NCCL_COMMUNICATOR_H_
#define SD2_WORKER_COMM_NCCL_COMMUNICATOR_H_

#include <mpi.h>

#include <memory>

#include "worker/comm/communicator.h"

namespace sd2::worker {

// Does not take ownership of `comm`. Fails (Unavailable) when NCCL or CUDA init fails, and
// (DeadlineExceeded) when the group does not finish NCCL's set-up within `timeout_s`.
StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(
    MPI_Comm comm, int cuda_device, double timeout_s = kDefaultCollectiveTimeoutS);

}  // namespace sd2::worker

#endif  // SD2_WORKER_COMM_NCCL_COMMUNICATOR_H_

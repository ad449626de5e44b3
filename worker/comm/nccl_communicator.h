// NCCL backend of Communicator for CUDA buffers (built with -DSD2_WITH_NCCL=ON). Every pointer
// passed to AllReduceSum / AllGather is a device pointer on this rank's current CUDA device.
// The NCCL unique id is created by rank 0 and broadcast over MPI; Broadcast of bytes and
// Barrier go through MPI as well.
//
//   auto comm = sd2::worker::MakeNcclCommunicator(MPI_COMM_WORLD, /*cuda_device=*/local_rank);
//   if (!comm.ok()) ...; (*comm)->AllReduceSum(grad_device_ptr, n);
#ifndef SD2_WORKER_COMM_NCCL_COMMUNICATOR_H_
#define SD2_WORKER_COMM_NCCL_COMMUNICATOR_H_

#include <mpi.h>

#include <memory>

#include "worker/comm/communicator.h"

namespace sd2::worker {

// Does not take ownership of `comm`. Fails (Unavailable) when NCCL or CUDA init fails.
StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(MPI_Comm comm, int cuda_device);

}  // namespace sd2::worker

#endif  // SD2_WORKER_COMM_NCCL_COMMUNICATOR_H_

// MPI backend of Communicator, over any communicator (MPI_COMM_WORLD or a group made by
// MPI_Comm_split). CPU buffers only. The caller owns MPI_Init/MPI_Finalize.
//
//   auto comm = sd2::worker::MakeMpiCommunicator(MPI_COMM_WORLD);
//   comm->AllReduceSum(grad.data(), grad.size());
#ifndef SD2_WORKER_COMM_MPI_COMMUNICATOR_H_
#define SD2_WORKER_COMM_MPI_COMMUNICATOR_H_

#include <mpi.h>

#include <memory>

#include "worker/comm/communicator.h"

namespace sd2::worker {

// Does not take ownership of `comm` (it is not freed).
std::unique_ptr<Communicator> MakeMpiCommunicator(MPI_Comm comm);

// A group of one process; collectives are identities. With `fail_after` >= 0, the
// (fail_after+1)-th collective and every one after it return UnavailableError (failure tests).
std::unique_ptr<Communicator> MakeLocalCommunicator(int fail_after = -1);

}  // namespace sd2::worker

#endif  // SD2_WORKER_COMM_MPI_COMMUNICATOR_H_

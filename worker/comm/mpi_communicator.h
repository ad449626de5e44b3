// MPI backend of Communicator, over any communicator (MPI_COMM_WORLD or a group made by
// MPI_Comm_split). CPU buffers only. The caller owns MPI_Init/MPI_Finalize.
//
// Every collective is started non-blocking (MPI_Iallreduce, ...) and polled against a deadline,
// so a hung or dead peer yields DeadlineExceeded after `timeout_s` instead of blocking forever
// (communicator.h: the communicator is broken afterwards).
//
//   auto comm = sd2::worker::MakeMpiCommunicator(MPI_COMM_WORLD);
//   comm->AllReduceSum(grad.data(), grad.size());
#ifndef SD2_WORKER_COMM_MPI_COMMUNICATOR_H_
#define SD2_WORKER_COMM_MPI_COMMUNICATOR_H_

#include <mpi.h>

#include <memory>

#include "worker/comm/communicator.h"

namespace sd2::worker {

// Does not take ownership of `comm` (it is not freed). timeout_s <= 0: no time-out.
std::unique_ptr<Communicator> MakeMpiCommunicator(MPI_Comm comm,
                                                  double timeout_s = kDefaultCollectiveTimeoutS);

// Waits for the collectives a timed-out MPI communicator left pending (tests only: a real group
// aborts instead). Returns false when `comm` is not an MPI communicator.
bool TEST_WaitPendingCollectives(Communicator* comm);

// A group of one process; collectives are identities. With `fail_after` >= 0, the
// (fail_after+1)-th collective and every one after it return UnavailableError (failure tests).
std::unique_ptr<Communicator> MakeLocalCommunicator(int fail_after = -1);

}  // namespace sd2::worker

#endif  // SD2_WORKER_COMM_MPI_COMMUNICATOR_H_

// The worker runtime: a group of ranks that pulls trials from the coordinator and runs them,
// and the local single-trial runner.
//
// RunGroup is called by every rank of a group with the group's communicator. Rank 0 speaks to
// the coordinator (ZeroMQ DEALER, coordinator/client.h): register, lease, metrics, scores,
// checkpoints, result; a separate heartbeat thread renews the lease and learns of cancels.
// Each decision (run this grant, wait, exit) reaches the other ranks by MPI broadcast, and all
// MPI calls stay on the calling thread. The method runs on every rank; callbacks report from
// rank 0. SIGTERM / SIGUSR1 mark the worker preempted: the method checkpoints and returns, the
// attempt is recorded `preempted`, and the worker exits.
//
//   sd2::worker::GroupOptions o;
//   o.coordinator = "tcp://127.0.0.1:5557";
//   auto comm = sd2::worker::MakeMpiCommunicator(MPI_COMM_WORLD);
//   sd2::Status s = sd2::worker::RunGroup(o, comm.get());
#ifndef SD2_WORKER_RUNTIME_RUNTIME_H_
#define SD2_WORKER_RUNTIME_RUNTIME_H_

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/protocol.h"
#include "common/status.h"
#include "worker/comm/communicator.h"

namespace sd2::worker {

struct GroupOptions {
  std::string coordinator;              // ZeroMQ endpoint
  std::string work_dir = "./sd2-work";  // trial dirs live in work_dir/<trial_key>/
  // When not empty, a trial whose config reads a path outside every one of these folders
  // (data.manifest, data.root, eval manifests and roots, hparams.pretrained) fails before it
  // runs. Empty (the default): reads are not restricted.
  std::vector<std::string> allow_read_roots;
  std::string group_id;         // default host:pid of rank 0
  std::string devices = "cpu";  // registered: "cpu" | "cuda"
  // This rank's device for the methods ("cpu", "cuda:N"; worker/runtime/devices.h decides). A
  // cuda group must set it; "" on a cpu group means "cpu".
  std::string device;
  // Rank 0: every rank's host and device, and the Slurm job, for the registration (and so for
  // the attempt records). Optional.
  std::vector<protocol::RankPlace> ranks;
  protocol::SlurmIds slurm;
  // The communicator the methods train with (TrialContext::comm): NCCL on a CUDA group built
  // with it, else null, meaning the group's `comm`. The runtime's own collectives (decisions,
  // failure votes) always use `comm`, whose buffers are on the host.
  Communicator* train_comm = nullptr;
  int max_trials = -1;             // exit after this many trials (-1: no limit)
  double idle_exit_s = -1;         // exit after this long without work (-1: never)
  bool exit_when_drained = false;  // exit when the coordinator has nothing queued or running
  double give_up_s = 60;           // a coordinator silent this long ends the group with an error
  double metrics_flush_s = 0.5;    // metrics are sent in batches at least this often
  size_t metrics_batch = 5000;
  size_t scores_batch = 10000;
};

// Runs until an exit condition; Ok on a clean exit. `comm` must take host buffers (MPI).
// InvalidArgument, before anything is sent, for devices = "cuda" without a `device`.
Status RunGroup(const GroupOptions& options, Communicator* comm);

// Runs one trial without a coordinator: writes out_dir/metrics.jsonl and
// out_dir/<eval_set>/scores.csv (sample,video,label,type,score); checkpoints in out_dir/work.
Status RunLocal(const nlohmann::json& config, const std::string& trial_key,
                const std::string& out_dir, Communicator* comm);

// SIGTERM and SIGUSR1 set the preemption flag.
void InstallPreemptionHandlers();
bool PreemptionRequested();

// sd2-worker's exit code after a preemption (SIGUSR1/SIGTERM): the attempt was checkpointed and
// recorded `preempted`; batch scripts requeue the job on it (cluster::kWorkerExitPreempted).
inline constexpr int kExitPreempted = 3;
// sd2-worker's exit code when the devices it was asked for are not there (--devices cuda and
// fewer GPUs than local ranks, no CUDA in the build, ...): nothing was registered or leased.
inline constexpr int kExitNoDevice = 4;
// Clears the flag (tests only: a real worker exits after a preemption).
void TEST_ResetPreemption();

// Registers every method this binary has (smoke, and the LibTorch ones when built).
void RegisterAllMethods();

}  // namespace sd2::worker

#endif  // SD2_WORKER_RUNTIME_RUNTIME_H_

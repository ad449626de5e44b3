// The built-in `smoke` method, for tests and cluster bring-up: checks AllReduce, AllGather and
// Broadcast across the group's ranks against known values (a mismatch fails the trial), runs
// `steps` steps over `duration_s` seconds emitting a "loss" metric per step, checkpoints its
// step counter in the trial's work dir (a new attempt resumes from it), and writes
// deterministic scores (seeded by the trial key) for each eval set of the config, or for one
// "smoke" set of 100 samples.
//
// Config hparams: duration_s (0.2), steps (10), checkpoint_every (5), fail_attempts (0: the
// first N attempts fail, for retry tests).
//
//   sd2::worker::RegisterSmokeMethod();
//   auto m = sd2::worker::MethodRegistry::Global().Create("smoke");
#ifndef SD2_WORKER_RUNTIME_SMOKE_METHOD_H_
#define SD2_WORKER_RUNTIME_SMOKE_METHOD_H_

#include <string>
#include <vector>

#include "worker/method.h"

namespace sd2::worker {

void RegisterSmokeMethod();

// The scores smoke writes for one eval set (exposed for tests).
std::vector<ScoreRow> SmokeScores(const std::string& trial_key, const std::string& eval_set, int n);

}  // namespace sd2::worker

#endif  // SD2_WORKER_RUNTIME_SMOKE_METHOD_H_

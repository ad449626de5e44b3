// Reads finished trials and their per-sample eval scores from an sd2 store (SQLite,
// storage/schema.sql version 1) and computes their metrics. Opens the database read-only with
// the SQLite C API, so it never blocks the coordinator (the only writer; WAL readers do not
// take write locks).
//
//   SD2_ASSIGN_OR_RETURN(std::vector<sd2::results::TrialResult> trials,
//                        sd2::results::ReadTrialResults("sd2.db"));
//   for (const auto& t : trials) std::cout << t.method << " " << t.evals.size() << "\n";
#ifndef SD2_RESULTS_STORE_READER_H_
#define SD2_RESULTS_STORE_READER_H_

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "results/metrics.h"
#include "storage/store.h"

namespace sd2::results {

// The newest succeeded attempt of one trial, with metrics per eval set.
struct TrialResult {
  int64_t trial_id = 0;
  std::string trial_key;
  std::string method;
  int64_t scale = 0;
  int64_t seed = 0;
  nlohmann::json config;  // trials.config_json (docs/trial_config.md)
  int64_t attempt_id = 0;
  double ended_at = 0;                   // attempts.ended_at (0 when NULL)
  std::map<std::string, Metrics> evals;  // eval set -> metrics from its stored scores
  std::vector<std::string> warnings;     // e.g. video ids that give no video-level metric
};

// Highest store schema version this reader understands: the store's own (one constant).
inline constexpr int kStoreSchemaVersion = storage::kSchemaVersion;

// Every trial with a succeeded attempt, ordered by trial id. NotFound when `db_path` does not
// exist, FailedPrecondition for a newer schema, DataLoss for unreadable rows (e.g. a config
// that is not JSON). Video ids that cannot be grouped (one video with two labels) drop only the
// video-level metric, with a warning in TrialResult::warnings.
StatusOr<std::vector<TrialResult>> ReadTrialResults(const std::string& db_path);

}  // namespace sd2::results

#endif  // SD2_RESULTS_STORE_READER_H_

// Turning a sweep file into a `submit` request, shared by `sd2ctl submit` and the mpirun
// sweep launch: loads and expands the sweep (sd2::sweeps) with --var, --scale-map and
// --override, and packs the expanded trials with the file's text.
//
//   SD2_ASSIGN_OR_RETURN(auto opts, sd2::coordinator::ParseExpandFlags(vars, "100000=300", ""));
//   SD2_ASSIGN_OR_RETURN(sd2::protocol::Submit req, sd2::coordinator::BuildSubmit(path, opts));
#ifndef SD2_COORDINATOR_SUBMIT_H_
#define SD2_COORDINATOR_SUBMIT_H_

#include <string>
#include <vector>

#include "common/protocol.h"
#include "common/status.h"
#include "sweeps/sweep.h"

namespace sd2::coordinator {

// vars: "NAME=VALUE" each; scale_map: "100000=300,1000000=3000"; override_json: a JSON object
// or "". Errors name the offending flag value.
StatusOr<sweeps::ExpandOptions> ParseExpandFlags(const std::vector<std::string>& vars,
                                                 const std::string& scale_map,
                                                 const std::string& override_json);

StatusOr<protocol::Submit> BuildSubmit(const std::string& sweep_path,
                                       const sweeps::ExpandOptions& options, bool force = false);

// The expanded trials of a sweep file (for --dry-run tables).
StatusOr<std::vector<sweeps::Trial>> ExpandFile(const std::string& sweep_path,
                                                const sweeps::ExpandOptions& options);

}  // namespace sd2::coordinator

#endif  // SD2_COORDINATOR_SUBMIT_H_

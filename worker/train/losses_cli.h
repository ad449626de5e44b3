// `sd2ctl losses FILE.safetensors` behind a torch-free function: reads f [B,D], u [5,D],
// vf [B,D], ve [B,D], y [B] (int64 type index), logit_scale and bias (scalars or [1]), optional
// alpha, and returns {"L_C":..,"L_S":..,"L_D":..,"total":..} computed by the training loss code
// (single rank, default variants).
//
//   SD2_ASSIGN_OR_RETURN(std::string json, sd2::worker::train::LossesJsonFromFile(path));
#ifndef SD2_WORKER_TRAIN_LOSSES_CLI_H_
#define SD2_WORKER_TRAIN_LOSSES_CLI_H_

#include <string>

#include "common/status.h"

namespace sd2::worker::train {

StatusOr<std::string> LossesJsonFromFile(const std::string& path);

}  // namespace sd2::worker::train

#endif  // SD2_WORKER_TRAIN_LOSSES_CLI_H_

// The paper's type text labels (Appendix E, Tables 9-13), embedded from
// worker/train/text_labels.toml. Index 0 of each type is the simple label used at test time.
//
//   SD2_ASSIGN_OR_RETURN(TypeLabels labels, PaperTypeLabels());
//   labels[1][0] == "a photo of a face swapping."   // type order REAL, FS, FR, EFS, FE
#ifndef SD2_WORKER_TRAIN_TEXT_LABELS_H_
#define SD2_WORKER_TRAIN_TEXT_LABELS_H_

#include <array>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::worker::train {

using TypeLabels = std::array<std::vector<std::string>, 5>;

StatusOr<TypeLabels> PaperTypeLabels();
// Parses a TOML text with arrays REAL, FS, FR, EFS, FE (each non-empty).
StatusOr<TypeLabels> ParseTypeLabels(const std::string& toml_text);

}  // namespace sd2::worker::train

#endif  // SD2_WORKER_TRAIN_TEXT_LABELS_H_

// The paper's reported numbers (data/paper/reported.toml), read at run time, and where to find
// them. Values are percentages as printed in the paper.
//
//   SD2_ASSIGN_OR_RETURN(std::string dir, sd2::results::LocatePaperData(flag_dir, argv[0]));
//   SD2_ASSIGN_OR_RETURN(sd2::results::PaperData paper,
//                        sd2::results::LoadPaperData(dir + "/reported.toml"));
//   const sd2::results::PaperTable* t3 = paper.Table(3);
#ifndef SD2_RESULTS_PAPER_DATA_H_
#define SD2_RESULTS_PAPER_DATA_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::results {

struct PaperRow {
  std::string method;                    // the paper's row name, e.g. "CLIP-SVD (Effort)"
  std::map<std::string, double> values;  // column -> value (percent)
  std::optional<double> summary;         // printed mAUC / mACC
  std::map<std::string, bool> switches;  // Table 5 only: L_C, CLAM, L_D_Face, L_D_Env
};

struct PaperTable {
  int number = 0;
  std::string caption;
  std::string metric;                // "AUC" or "ACC"
  std::vector<std::string> columns;  // in the paper's order (empty for Table 5)
  std::string summary_key;           // "mAUC" / "mACC" (empty for Table 6)
  std::vector<PaperRow> rows;        // in the paper's order

  const PaperRow* Row(const std::string& method) const;
};

struct PaperData {
  std::map<int, PaperTable> tables;  // 2..8
  // nullptr when the file had no such table.
  const PaperTable* Table(int number) const;
};

// Parses reported.toml; errors name the file (and line:col for TOML syntax errors).
StatusOr<PaperData> LoadPaperData(const std::string& reported_toml_path);
StatusOr<PaperData> ParsePaperData(const std::string& toml_text, const std::string& source_name);

// The directory holding reported.toml: `explicit_dir` when non-empty (it must contain it),
// else <dir of the executable>/../share/sd2, else SD2_SOURCE_DIR/data/paper (compiled in).
// `argv0` may be empty; /proc/self/exe is used first.
StatusOr<std::string> LocatePaperData(const std::string& explicit_dir, const std::string& argv0);

// Paper row name for one of our method ids (xception -> "Xception", clip_svd ->
// "CLIP-SVD (Effort)", sd2 -> "SD2", univfd -> "UnivFD"); empty when the paper has none.
std::string PaperMethodName(const std::string& method_id);
// Method ids of Tables 2, 3, 6, 7 and 8 in the paper's row order.
const std::vector<std::string>& PaperMethodOrder();

}  // namespace sd2::results

#endif  // SD2_RESULTS_PAPER_DATA_H_

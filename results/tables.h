// The paper's Tables 2-8 as layouts built from finished trials, with the paper's reported
// numbers beside ours. Values are percentages with the paper's meaning (AUC or ACC x 100).
//
//   SD2_ASSIGN_OR_RETURN(auto trials, sd2::results::ReadTrialResults(db));
//   SD2_ASSIGN_OR_RETURN(auto paper, sd2::results::LoadPaperData(dir + "/reported.toml"));
//   std::vector<sd2::results::ResultGroup> groups = sd2::results::GroupSeeds(trials);
//   sd2::results::Table t3 = sd2::results::BuildTable(3, groups, paper);
//
// Rules (docs in results/README.md):
// - Seeds: trials whose configs differ only in `seed` (and `probe.of`) form one group; a group's
//   metric is the plain mean over its seeds. Where several groups fit one row, the one with the
//   most seeds wins, then the newest; a note says so.
// - Tables 2/3/7/8: rows are the seven methods in the paper's order, each at its largest scale
//   (sd2 with every ablation switch on); columns are the paper's columns, and Tables 2/7 append
//   our eval sets that no paper table names. Table 4: linear-probe trials (row named by
//   config.probe.encoder_method) and univfd trials, ACC on the GenImage columns. Table 5: sd2
//   rows by ablation switch, mAUC over Table 3's seven cross-domain columns (as the paper's
//   87.79 = Table 3's SD2 mAUC shows). Table 6: mAUC over Table 3's columns by training scale;
//   columns are the distinct scales present, labelled by size (100K, 1M, 3.6M, 2K...); they
//   take the paper's 100K/1M/3M values when they are those scales (3M = 3,000,000-3,600,000)
//   or the same ratios of them (a demo's 2K/20K/60K stand for 100K/1M/3M), else no paper values.
// - Means are plain means of the row's present values; a mean over fewer than all columns is
//   marked partial. Missing cells stay empty (rendered "–"). The best value of each column is
//   marked (ties at two decimals all marked). The paper's value and delta appear where our
//   column name equals the paper's and our row is a paper row.
#ifndef SD2_RESULTS_TABLES_H_
#define SD2_RESULTS_TABLES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "results/paper_data.h"
#include "results/store_reader.h"

namespace sd2::results {

// Trials that differ only in their seed, with metrics averaged over the seeds.
struct ResultGroup {
  std::string method;         // config.method
  std::string probe_encoder;  // config.probe.encoder_method for probe trials, else ""
  bool is_probe = false;      // config has a "probe" object
  int64_t scale = 0;
  std::map<std::string, bool> ablation;  // clam, ld_face, ld_env (absent switches = true)
  int seeds = 0;
  double newest = 0;                  // latest attempts.ended_at among the seeds
  std::string config_key;             // canonical config minus seed (the grouping key)
  std::map<std::string, double> auc;  // eval set -> mean AUC over seeds (0..1), where defined
  std::map<std::string, double> acc;  // eval set -> mean ACC over seeds (0..1)
};

std::vector<ResultGroup> GroupSeeds(const std::vector<TrialResult>& trials);

struct Cell {
  std::optional<double> ours;   // percent
  std::optional<double> paper;  // percent
  bool best = false;
  bool partial = false;  // a mean over only some of the columns
  std::optional<double> Delta() const {
    if (ours && paper && !partial) return *ours - *paper;
    return std::nullopt;
  }
};

struct TableRow {
  std::string label;
  std::vector<std::string> switches;  // Table 5: "✓" or "–" per switch column
  std::vector<Cell> cells;            // one per Table::columns entry
  int seeds = 0;                      // seeds averaged (0: no data)
};

struct Table {
  int number = 0;
  std::string caption;                      // the paper's caption
  std::string metric;                       // "AUC" or "ACC"
  std::vector<std::string> switch_columns;  // Table 5 only
  std::vector<std::string> columns;         // value columns; the mean column (if any) is last
  bool has_mean = false;
  std::vector<double> column_scales;  // Table 6: training images per column
  std::vector<TableRow> rows;
  std::vector<std::string> notes;
};

// Short label of a training scale: 100000 -> "100K", 3000000 -> "3M", 2500 -> "2.5K".
std::string ScaleLabel(int64_t scale);

// Builds Table `number` (2..8). `paper` may lack the table (then no paper values appear).
Table BuildTable(int number, const std::vector<ResultGroup>& groups, const PaperData& paper);

}  // namespace sd2::results

#endif  // SD2_RESULTS_TABLES_H_

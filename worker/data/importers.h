// Importers that turn other tools' dataset listings into manifests (docs/data.md):
//  - DeepfakeBench's dataset JSON files
//    {dataset: {label: {split: {[compression]: {video: {"label": ..., "frames": [...]}}}}}},
//    with labels mapped to our types by a documented table that a TOML file can override, and
//    DF40's dataset names placed by data/df40_methods.toml (method, type, domain, known);
//  - GenImage folders <generator>/.../{train,val}/{ai,nature}/<images>.
//
//   SD2_ASSIGN_OR_RETURN(LabelMap map, LoadLabelMap("my_map.toml"));  // or DefaultLabelMap()
//   DeepfakeBenchOptions opt; opt.json_path = "dataset_json"; opt.root = "/data"; opt.map = map;
//   SD2_ASSIGN_OR_RETURN(std::vector<Record> recs, ImportDeepfakeBench(opt));
#ifndef SD2_WORKER_DATA_IMPORTERS_H_
#define SD2_WORKER_DATA_IMPORTERS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "worker/data/manifest.h"

namespace sd2::worker::data {

struct LabelMap {
  // DeepfakeBench label (matched case-insensitively, see LookUp) -> REAL/FS/FR/EFS/FE.
  std::map<std::string, std::string> labels;
  // DeepfakeBench dataset name -> our dataset name (unlisted names are kept).
  std::map<std::string, std::string> datasets;

  // The type for a label: the exact (lower-cased) entry; else the entry after stripping the
  // suffixes _fake/-fake/_ff/-ff/_cdf/-cdf; else REAL when the label ends in "real";
  // else NotFound.
  StatusOr<std::string> LookUp(const std::string& label) const;
};

// The default table (printed in docs/data.md).
LabelMap DefaultLabelMap();
// The default table overridden by a TOML file with [labels] and/or [datasets] tables of
// strings, e.g. `[labels]\n"FF-NT" = "FE"`. Errors name FILE:LINE:COL.
StatusOr<LabelMap> LoadLabelMap(const std::string& toml_path);

// DF40's methods as the paper splits them (data/df40_methods.toml, docs/data.md): which
// DeepfakeBench dataset names belong to which method, with its forgery type, whether it is a
// known or a test-only method, and each name's domain.
struct Df40Method {
  std::string name;  // e.g. "SimSwap"
  std::string type;  // FS, FR, EFS or FE
  bool known = true;
  std::vector<std::pair<std::string, std::string>> datasets;  // dataset name -> domain
};

struct Df40Table {
  std::string known_dataset = "DF40";      // manifest dataset of the known methods' rows
  std::string test_dataset = "DF40-Test";  // ... and of the test-only methods' rows
  std::vector<Df40Method> methods;
  std::string source;  // the file it was read from ("" = empty table)

  struct Place {
    const Df40Method* method;
    std::string domain;
  };
  // The method and domain of a DeepfakeBench dataset name (case-insensitive), if listed.
  std::optional<Place> Find(const std::string& dataset_name) const;
};

// Reads a methods table: top-level `known_dataset`, `test_dataset` (strings) and [[method]]
// tables with `name`, `type` (FS/FR/EFS/FE), `known` (boolean) and `datasets` (a table of
// dataset name -> domain). Unknown keys, wrong types, a bad type and a dataset name listed twice
// (case-insensitively) are InvalidArgument "FILE:LINE:COL: message"; a missing file NotFound.
StatusOr<Df40Table> LoadDf40Table(const std::string& toml_path);

// Where the shipped table is: <dir of the executable>/../share/sd2/df40_methods.toml, else
// SD2_SOURCE_DIR/data/df40_methods.toml (compiled in); NotFound naming both when neither exists.
StatusOr<std::string> LocateDf40Table();

// One --rebase OLD=NEW: frame paths starting with the folder OLD are moved under NEW.
struct Rebase {
  std::string from, to;
};
// Parses "OLD=NEW" (both non-empty; backslashes become '/', trailing '/' dropped).
StatusOr<Rebase> ParseRebase(const std::string& text);

struct DeepfakeBenchOptions {
  std::string json_path;            // one dataset JSON file, or a folder of them (*.json, sorted)
  std::string root;                 // absolute frame paths under it are made relative to it
  std::string compression = "c23";  // level to import where a split has levels; "" = all
  LabelMap map = DefaultLabelMap();
  Df40Table df40;               // places DF40 dataset names (empty: none is placed)
  std::vector<Rebase> rebases;  // applied before the root check; the longest `from` wins
};

// A dataset name of the input that the DF40 table does not list: its rows were imported under
// `dataset` without domain, method, method_type or known.
struct UnplacedDataset {
  std::string file, name, dataset;
  int64_t frames = 0;
};

struct DeepfakeBenchReport {
  std::vector<UnplacedDataset> unplaced;  // in input order
  std::vector<std::string> placed;        // dataset names the table placed, in input order
  std::vector<std::string> absent;        // table dataset names found in no input file
};

// Records in file, dataset, label, split, video and frame order; video =
// "<dataset name>/<label>/<video>". A dataset name the DF40 table lists gives rows with dataset =
// the table's known_dataset or test_dataset, subset = the dataset name, id = "<dataset
// name>/<path>" (DF40 repeats its real frames in every method's JSON), domain, method,
// method_type, known, and type REAL for real labels, else the method's type. Other names keep
// the previous behaviour (dataset renamed by the label map, subset = label, type from the label)
// and are listed in report->unplaced. Frame paths: backslashes become '/', then the rebases
// apply; an absolute path must then lie inside `root` (compared after lexical normalisation)
// and is stored relative to it; a relative one must not climb out with "..". A path outside is
// InvalidArgument naming the file, the entry and the path. Nothing is returned on error.
StatusOr<std::vector<Record>> ImportDeepfakeBench(const DeepfakeBenchOptions& options,
                                                  DeepfakeBenchReport* report = nullptr);

// GenImage: dataset "GenImage", subset = generator (folder names such as
// stable_diffusion_v_1_4 become the paper's "SD v1.4"), split train or test (GenImage's val),
// type REAL for nature/ and EFS for ai/. Paths are relative to `root`.
StatusOr<std::vector<Record>> ImportGenImage(const std::string& root);

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_IMPORTERS_H_

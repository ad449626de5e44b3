// Importers that turn other tools' dataset listings into manifests (docs/data.md):
//  - DeepfakeBench's dataset JSON files
//    {dataset: {label: {split: {[compression]: {video: {"label": ..., "frames": [...]}}}}}},
//    with labels mapped to our types by a documented table that a TOML file can override;
//  - GenImage folders <generator>/.../{train,val}/{ai,nature}/<images>.
//
//   SD2_ASSIGN_OR_RETURN(LabelMap map, LoadLabelMap("my_map.toml"));  // or DefaultLabelMap()
//   DeepfakeBenchOptions opt; opt.json_path = "dataset_json"; opt.root = "/data"; opt.map = map;
//   SD2_ASSIGN_OR_RETURN(std::vector<Record> recs, ImportDeepfakeBench(opt));
#ifndef SD2_WORKER_DATA_IMPORTERS_H_
#define SD2_WORKER_DATA_IMPORTERS_H_

#include <map>
#include <string>
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

struct DeepfakeBenchOptions {
  std::string json_path;            // one dataset JSON file, or a folder of them (*.json, sorted)
  std::string root;                 // absolute frame paths under it are made relative to it
  std::string compression = "c23";  // level to import where a split has levels; "" = all
  LabelMap map = DefaultLabelMap();
};

// Records in file, dataset, label, split, video and frame order; subset = DeepfakeBench label,
// video = "<dataset>/<label>/<video>".
StatusOr<std::vector<Record>> ImportDeepfakeBench(const DeepfakeBenchOptions& options);

// GenImage: dataset "GenImage", subset = generator (folder names such as
// stable_diffusion_v_1_4 become the paper's "SD v1.4"), split train or test (GenImage's val),
// type REAL for nature/ and EFS for ai/. Paths are relative to `root`.
StatusOr<std::vector<Record>> ImportGenImage(const std::string& root);

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_IMPORTERS_H_

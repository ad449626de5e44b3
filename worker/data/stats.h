// Manifest statistics laid out like the paper's Table 1, and a parallel decode check of every
// image a manifest lists.
//
//   std::vector<DatasetStats> rows = ComputeStats(records);
//   std::cout << RenderStats(rows);
//   auto bad = VerifyImages(records, root, /*threads=*/0, [](size_t done, size_t total) {...});
#ifndef SD2_WORKER_DATA_STATS_H_
#define SD2_WORKER_DATA_STATS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "worker/data/manifest.h"

namespace sd2::worker::data {

struct DatasetStats {
  std::string dataset;             // "Overall" for the last row
  std::vector<std::string> types;  // fake types present, in kTypeNames order
  int64_t real = 0, fake = 0, total = 0;
  std::map<std::string, int64_t> per_split;  // split -> images
  std::map<std::string, int64_t> per_type;   // type -> images
};

// One row per dataset in order of first appearance, then an "Overall" row.
std::vector<DatasetStats> ComputeStats(const std::vector<Record>& records);
// A Markdown table: dataset | forgery types | real | fake | total | one column per split.
std::string RenderStats(const std::vector<DatasetStats>& rows);

struct BadImage {
  std::string path;
  std::string reason;
};

// Decodes every record's image (root + path) on `threads` threads (0 = all cores); calls
// progress(done, total) from one thread now and then. Returns, in manifest order, the unreadable
// ones and the relative paths that resolve (through symlinks) outside the resolved root.
std::vector<BadImage> VerifyImages(const std::vector<Record>& records, const std::string& root,
                                   int threads,
                                   const std::function<void(size_t, size_t)>& progress = {});

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_STATS_H_

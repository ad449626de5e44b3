// The synthetic MMI-DD: procedural portraits in the five types (REAL, FS, FR, EFS, FE), each
// fake type leaving its own learnable trace, written as JPEGs plus a manifest. Its sources
// carry the paper's dataset names (Table 1's training sets with train/val/test splits, the
// cross-domain test sets made with unseen variants of each manipulation, and a GenImage-like
// set), so the paper's sweeps and tables run on it unchanged. docs/data.md describes every
// source and trace.
//
//   SynthOptions o; o.out_dir = "/tmp/mmidd"; o.images = 3000; o.seed = 1;
//   SD2_ASSIGN_OR_RETURN(SynthSummary s, Synthesize(o));  // writes images/ and manifest.jsonl
#ifndef SD2_WORKER_DATA_SYNTH_H_
#define SD2_WORKER_DATA_SYNTH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::worker::data {

struct SynthOptions {
  std::string out_dir;     // receives images/... and manifest.jsonl (+ .sha256)
  int64_t images = 30000;  // total number of images written (at least 200)
  uint64_t seed = 0;       // same seed and options -> byte-identical manifest and images
  int image_size = 64;     // base side in pixels (16..512); sources scale it by 0.75..1.5
  int threads = 0;         // 0 = all cores
};

struct SynthSummary {
  int64_t images = 0;
  std::string manifest;  // out_dir/manifest.jsonl
  std::string digest;    // its SHA-256
  double seconds = 0;
  std::map<std::string, int64_t> per_dataset;
};

StatusOr<SynthSummary> Synthesize(const SynthOptions& options);

// One named source of the synthetic set (exposed for docs and tests).
struct SynthSource {
  std::string dataset, subset;
  double weight;               // share of the images beyond the per-split minimums
  double mix[5];               // relative weights of REAL, FS, FR, EFS, FE
  int frames;                  // frames per video (1 = still images)
  double size_scale;           // side = image_size * size_scale (rounded to a multiple of 4)
  int quality_lo, quality_hi;  // JPEG quality range
  double strength;             // artifact strength
  bool test_only;              // cross-domain evaluation set
  int variant;                 // 0 = the training variants of the manipulations, 1 = unseen ones
  int generator;               // GenImage generator index, -1 for face sources
  bool train;                  // has train/val splits
};
const std::vector<SynthSource>& SynthSources();

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_SYNTH_H_

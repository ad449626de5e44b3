// The contract between worker/data (implements it) and the training methods (consume it).
// Torch-free: a Batch is a plain NCHW float buffer plus per-sample metadata; worker/train wraps
// it with torch::from_blob.
//
//   LoaderOptions opt; opt.manifest = "train.jsonl"; opt.scale = 100000; opt.batch_size = 64;
//   SD2_ASSIGN_OR_RETURN(auto loader, Loader::Open(opt));
//   Batch b;
//   while (true) { SD2_ASSIGN_OR_RETURN(bool more, loader->Next(&b)); if (!more) break; ... }
#ifndef SD2_WORKER_DATA_LOADER_H_
#define SD2_WORKER_DATA_LOADER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::worker::data {

// Type index order used everywhere: REAL=0, FS=1, FR=2, EFS=3, FE=4. label = type != REAL.
inline constexpr const char* kTypeNames[5] = {"REAL", "FS", "FR", "EFS", "FE"};

// Which manifest records a loader reads. Empty vectors match everything.
struct Filter {
  std::vector<std::string> datasets;
  std::vector<std::string> subsets;
  std::vector<std::string> splits;
  std::vector<std::string> types;
  std::vector<std::string> domains;       // Record::domain, e.g. "FF", "CDF"
  std::vector<std::string> method_types;  // Record::method_type: FS FR EFS FE
  std::optional<bool> known;              // set: only rows whose Record::known equals it
};

struct AugmentOptions {
  double p_hflip = 0.5;
  double p_rotate = 0.5;  // uniform in ±rotate_degrees
  double rotate_degrees = 10;
  double p_blur = 0.1;
  double p_resize = 0.3;  // isotropic down-then-up resize
  double p_color = 0.5;   // brightness/contrast in ±0.1
  double color_delta = 0.1;
  double p_jpeg = 0.3;  // JPEG re-compression at quality in [40, 100]
  int jpeg_quality_min = 40;
  int jpeg_quality_max = 100;
};

enum class Normalization { kClip, kHalf };  // CLIP mean/std, or mean = std = 0.5

struct LoaderOptions {
  std::string manifest;  // JSONL manifest (docs/data.md)
  std::string root;      // image paths are relative to it ("" = manifest's folder)
  Filter filter;
  int64_t scale = 0;  // nested training subset size; 0 = all; ignored by eval loaders
  uint64_t seed = 0;  // subset draw, shuffling and augmentation
  int rank = 0;
  int world = 1;        // per-rank sharding without overlap
  int batch_size = 32;  // per rank
  int image_size = 224;
  bool train = true;  // train: shuffle per epoch + augment; eval: in order, no aug
  AugmentOptions augment;
  Normalization norm = Normalization::kClip;
  int threads = 2;                 // decode/augment threads
  int prefetch = 4;                // batches prepared ahead
  double max_bad_fraction = 0.01;  // past this fraction of unreadable files Next() fails
  int64_t start_epoch = 0;         // resume position: the same batches as an uninterrupted run
  int64_t start_batch = 0;
  bool drop_last = true;  // train only; eval always keeps the tail
  int64_t epochs = 1;     // train: Next() returns false after this many epochs
  // With clamp_scale, a scale above the matching records trains on all of them (small sets,
  // e.g. GenImage's probe split); without it that is an InvalidArgument error.
  bool clamp_scale = false;
  bool allow_outside_root = false;  // accept absolute paths / ".." above the root
};

struct Batch {
  int64_t size = 0, channels = 3, height = 0, width = 0;
  std::vector<float> pixels;    // size*channels*height*width, NCHW, normalised
  std::vector<int> type_index;  // per sample, see kTypeNames
  std::vector<int> label;       // 1 = fake
  std::vector<std::string> sample_id, video_id, type, face, env, dataset;
  int64_t epoch = 0, index = 0;  // position of this batch (for checkpoints)
};

class Loader {
 public:
  virtual ~Loader() = default;
  static StatusOr<std::unique_ptr<Loader>> Open(const LoaderOptions& options);
  // Fills *batch; returns false at the end. Fails (DataLoss) when unreadable files exceed
  // max_bad_fraction, naming examples.
  virtual StatusOr<bool> Next(Batch* batch) = 0;
  virtual int64_t batches_per_epoch() const = 0;
  virtual int64_t num_samples() const = 0;  // this rank's samples per epoch
  virtual int64_t skipped() const = 0;      // unreadable files skipped so far
};

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_LOADER_H_

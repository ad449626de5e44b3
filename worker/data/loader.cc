// The Loader implementation (contract in loader.h; behaviour in docs/data.md).
#include "worker/data/loader.h"

#include <limits.h>
#include <stdlib.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/file_util.h"
#include "worker/data/augment.h"
#include "worker/data/image.h"
#include "worker/data/manifest.h"
#include "worker/data/random.h"
#include "worker/data/scales.h"

namespace sd2::worker::data {
namespace {

struct BuiltBatch {
  Batch batch;
  std::vector<std::string> bad;  // "path: reason"
};

class LoaderImpl : public Loader {
 public:
  LoaderImpl(LoaderOptions o, std::vector<Record> records, std::vector<size_t> selected,
             std::string root)
      : o_(std::move(o)),
        records_(std::move(records)),
        selected_(std::move(selected)),
        root_(std::move(root)) {
    // A symlink inside the root may point anywhere: files are checked by their resolved path
    // against the resolved root unless the user allowed paths outside it.
    if (!o_.allow_outside_root && !root_.empty()) {
      char buf[PATH_MAX];
      if (::realpath(root_.c_str(), buf)) real_root_ = std::string(buf) + "/";
    }
    const int64_t n = static_cast<int64_t>(selected_.size());
    const int64_t world = o_.world, rank = o_.rank;
    if (o_.train && o_.drop_last) {
      per_rank_ = n / world;
      batches_ = per_rank_ / o_.batch_size;
      num_samples_ = batches_ * o_.batch_size;
    } else {
      per_rank_ = n / world + (rank < n % world ? 1 : 0);
      batches_ = (per_rank_ + o_.batch_size - 1) / o_.batch_size;
      num_samples_ = per_rank_;
    }
    const int64_t epochs = o_.train ? o_.epochs : 1;
    const int64_t first = o_.train ? o_.start_epoch : 0;
    next_ = build_next_ = first * batches_ + o_.start_batch;
    end_ = epochs * batches_;
    for (int i = 0; i < o_.threads; ++i) workers_.emplace_back([this] { Work(); });
  }

  ~LoaderImpl() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  StatusOr<bool> Next(Batch* batch) override {
    if (!failed_.ok()) return failed_;
    if (next_ >= end_) return false;
    BuiltBatch built;
    if (workers_.empty()) {
      built = Build(next_);
      ++next_;
    } else {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return ready_.count(next_) > 0; });
      built = std::move(ready_[next_]);
      ready_.erase(next_);
      ++next_;
      lock.unlock();
      cv_.notify_all();
    }
    const int64_t epoch = built.batch.epoch;
    if (epoch != bad_epoch_) {
      bad_epoch_ = epoch;
      bad_in_epoch_ = 0;
    }
    bad_in_epoch_ += static_cast<int64_t>(built.bad.size());
    skipped_ += static_cast<int64_t>(built.bad.size());
    for (const std::string& b : built.bad) {
      if (examples_.size() < 5) examples_.push_back(b);
    }
    if (static_cast<double>(bad_in_epoch_) >
        o_.max_bad_fraction * static_cast<double>(std::max<int64_t>(num_samples_, 1))) {
      std::string msg = std::to_string(bad_in_epoch_) + " of this rank's " +
                        std::to_string(num_samples_) + " samples in epoch " +
                        std::to_string(epoch) + " are unreadable (max_bad_fraction " +
                        std::to_string(o_.max_bad_fraction) + "); for example:";
      for (const std::string& e : examples_) msg += "\n  " + e;
      failed_ = DataLossError(msg);
      return failed_;
    }
    *batch = std::move(built.batch);
    return true;
  }

  int64_t batches_per_epoch() const override { return batches_; }
  int64_t num_samples() const override { return num_samples_; }
  int64_t skipped() const override { return skipped_; }

 private:
  // The epoch's order of positions into selected_ (identity for eval).
  std::shared_ptr<const std::vector<size_t>> Order(int64_t epoch) {
    std::lock_guard<std::mutex> lock(order_mu_);
    auto it = orders_.find(epoch);
    if (it != orders_.end()) return it->second;
    auto order = std::make_shared<std::vector<size_t>>(selected_.size());
    for (size_t i = 0; i < order->size(); ++i) (*order)[i] = i;
    if (o_.train) {
      Rng rng(MixSeed(o_.seed, static_cast<uint64_t>(epoch), 0x5eedULL));
      for (size_t i = order->size(); i > 1; --i) std::swap((*order)[i - 1], (*order)[rng.Below(i)]);
    }
    if (orders_.size() >= 3) orders_.erase(orders_.begin());
    orders_[epoch] = order;
    return order;
  }

  BuiltBatch Build(int64_t global) {
    BuiltBatch out;
    Batch& b = out.batch;
    b.epoch = global / batches_;
    b.index = global % batches_;
    auto order = Order(b.epoch);
    const int64_t begin = b.index * o_.batch_size;
    const int64_t end = std::min<int64_t>(begin + o_.batch_size, per_rank_);
    const int s = o_.image_size;
    const size_t plane = static_cast<size_t>(3) * s * s;
    b.channels = 3;
    b.height = b.width = s;
    b.pixels.resize(static_cast<size_t>(end - begin) * plane);
    int64_t n = 0;
    for (int64_t k = begin; k < end; ++k) {
      const size_t pos = (*order)[static_cast<size_t>(k * o_.world + o_.rank)];
      const size_t rec_index = selected_[pos];
      const Record& r = records_[rec_index];
      const std::string path = root_.empty() || r.path.front() == '/' ? r.path : root_ + r.path;
      Status st = CheckInsideRoot(path);
      StatusOr<Image> img = st.ok() ? LoadImage(path, s) : StatusOr<Image>(st);
      st = img.status();
      if (st.ok()) {
        Image im = Resize(*img, s, s);
        if (o_.train) {
          Rng rng(MixSeed(o_.seed, static_cast<uint64_t>(b.epoch), rec_index, 0xa11ULL));
          st = Augment(o_.augment, &rng, &im);
        }
        if (st.ok()) Normalize(im, o_.norm, b.pixels.data() + n * plane);
      }
      if (!st.ok()) {
        out.bad.push_back(r.path + ": " + st.message());
        continue;
      }
      ++n;
      const int t = r.TypeIndex();
      b.type_index.push_back(t);
      b.label.push_back(t != 0 ? 1 : 0);
      b.sample_id.push_back(r.SampleId());
      b.video_id.push_back(r.video);
      b.type.push_back(r.type);
      b.face.push_back(r.face);
      b.env.push_back(r.env);
      b.dataset.push_back(r.dataset);
    }
    b.size = n;
    b.pixels.resize(static_cast<size_t>(n) * plane);
    return out;
  }

  void Work() {
    while (true) {
      int64_t g;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] {
          return stop_ || (build_next_ < end_ && build_next_ < next_ + o_.prefetch);
        });
        if (stop_) return;
        g = build_next_++;
      }
      BuiltBatch built = Build(g);
      {
        std::lock_guard<std::mutex> lock(mu_);
        ready_[g] = std::move(built);
      }
      cv_.notify_all();
    }
  }

  const LoaderOptions o_;
  const std::vector<Record> records_;
  const std::vector<size_t> selected_;  // record indices of the (filtered, scaled) set
  const std::string root_;              // "" or ending in '/'
  std::string real_root_;               // resolved root ending in '/', "" = no check

  Status CheckInsideRoot(const std::string& path) const {
    if (real_root_.empty()) return OkStatus();
    char buf[PATH_MAX];
    if (!::realpath(path.c_str(), buf)) return OkStatus();  // missing: LoadImage says so
    if (std::string_view(buf).substr(0, real_root_.size()) != real_root_) {
      return InvalidArgumentError("resolves to " + std::string(buf) +
                                  ", outside the data root (allow_outside_root is off)");
    }
    return OkStatus();
  }
  int64_t per_rank_ = 0, batches_ = 0, num_samples_ = 0;
  int64_t end_ = 0;

  // Consumer state (Next is called from one thread).
  int64_t skipped_ = 0, bad_epoch_ = -1, bad_in_epoch_ = 0;
  std::vector<std::string> examples_;
  Status failed_;

  std::mutex order_mu_;
  std::map<int64_t, std::shared_ptr<const std::vector<size_t>>> orders_;

  std::mutex mu_;
  std::condition_variable cv_;
  int64_t next_ = 0;        // next batch Next() returns (guarded by mu_ for workers)
  int64_t build_next_ = 0;  // next batch a worker builds
  bool stop_ = false;
  std::map<int64_t, BuiltBatch> ready_;
  std::vector<std::thread> workers_;
};

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ",") + x;
  return s.empty() ? "*" : s;
}

}  // namespace

StatusOr<std::unique_ptr<Loader>> Loader::Open(const LoaderOptions& o) {
  if (o.batch_size <= 0) return InvalidArgumentError("batch_size must be positive");
  if (o.world <= 0 || o.rank < 0 || o.rank >= o.world) {
    return InvalidArgumentError("rank " + std::to_string(o.rank) + " is outside world size " +
                                std::to_string(o.world));
  }
  if (o.image_size <= 0 || o.image_size > 4096) {
    return InvalidArgumentError("image_size must be in 1..4096");
  }
  if (o.threads < 0 || o.prefetch < 1) {
    return InvalidArgumentError("threads must be >= 0 and prefetch >= 1");
  }
  if (!(o.max_bad_fraction >= 0 && o.max_bad_fraction <= 1)) {
    return InvalidArgumentError("max_bad_fraction must be in [0, 1]");
  }
  if (o.train && o.epochs < 1) return InvalidArgumentError("epochs must be >= 1");
  if (o.start_epoch < 0 || o.start_batch < 0) {
    return InvalidArgumentError("start_epoch and start_batch must be >= 0");
  }
  if (o.scale < 0) return InvalidArgumentError("scale must be >= 0");
  ManifestReadOptions ro;
  ro.allow_outside_root = o.allow_outside_root;
  SD2_ASSIGN_OR_RETURN(std::vector<Record> records, ReadManifest(o.manifest, ro));
  std::vector<Record> kept;
  for (Record& r : records) {
    if (Matches(o.filter, r)) kept.push_back(std::move(r));
  }
  if (kept.empty()) {
    return InvalidArgumentError(
        "no record of " + o.manifest + " matches the filter (datasets=" + Join(o.filter.datasets) +
        " subsets=" + Join(o.filter.subsets) + " splits=" + Join(o.filter.splits) +
        " types=" + Join(o.filter.types) + " domains=" + Join(o.filter.domains) +
        " method_types=" + Join(o.filter.method_types) + " known=" +
        (o.filter.known.has_value() ? (*o.filter.known ? "true" : "false") : "any") + ")");
  }
  // The scale is a training-subset size: eval sets are always read whole.
  int64_t scale = o.train ? o.scale : 0;
  if (o.clamp_scale) scale = std::min<int64_t>(scale, static_cast<int64_t>(kept.size()));
  if (scale > static_cast<int64_t>(kept.size())) {
    return InvalidArgumentError("scale " + std::to_string(scale) + " exceeds the " +
                                std::to_string(kept.size()) + " records of " + o.manifest +
                                " that match the filter");
  }
  std::vector<size_t> selected = NestedSubset(kept, scale, o.seed);
  std::string root = o.root;
  if (root.empty()) {
    size_t slash = o.manifest.find_last_of('/');
    root = slash == std::string::npos ? "" : o.manifest.substr(0, slash);
  }
  if (!root.empty() && root.back() != '/') root += '/';
  auto impl = std::make_unique<LoaderImpl>(o, std::move(kept), std::move(selected), root);
  if (impl->batches_per_epoch() == 0) {
    return InvalidArgumentError("rank " + std::to_string(o.rank) + " gets no full batch of " +
                                std::to_string(o.batch_size) + " from " +
                                std::to_string(impl->num_samples()) +
                                " samples (lower batch_size or set drop_last = false)");
  }
  if (o.start_batch >= impl->batches_per_epoch()) {
    return InvalidArgumentError("start_batch " + std::to_string(o.start_batch) +
                                " is past the epoch's " +
                                std::to_string(impl->batches_per_epoch()) + " batches");
  }
  return std::unique_ptr<Loader>(std::move(impl));
}

}  // namespace sd2::worker::data

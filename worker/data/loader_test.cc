#include "worker/data/loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "worker/data/image.h"
#include "worker/data/manifest.h"
#include "worker/data/stats.h"
#include "worker/data/test_util.h"

namespace sd2::worker::data {
namespace {

using testing::TempDir;
using testing::WriteText;

// Writes `n` 24x24 images (PNG for even i, JPEG for odd), image i filled with grey level
// 5 * i (PNGs) so that eval pixels can be checked exactly.
std::string MakeDataset(const TempDir& dir, int n, std::vector<Record>* out = nullptr) {
  std::vector<Record> recs;
  for (int i = 0; i < n; ++i) {
    Image img(24, 24);
    for (int y = 0; y < 24; ++y) {
      for (int x = 0; x < 24; ++x) {
        uint8_t* p = img.At(x, y);
        p[0] = p[1] = p[2] = static_cast<uint8_t>(5 * i);
        if (i % 2) p[0] = static_cast<uint8_t>(x * 10);
      }
    }
    Record r;
    r.path = "img/" + std::to_string(i) + (i % 2 ? ".jpg" : ".png");
    r.dataset = i % 3 ? "A" : "B";
    r.split = "train";
    r.type = kTypeNames[i % 5];
    r.video = "vid" + std::to_string(i / 2);
    r.face = "face " + std::to_string(i);
    StatusOr<std::string> bytes = i % 2 ? EncodeJpeg(img, 90) : EncodePng(img);
    EXPECT_TRUE(bytes.ok());
    WriteText(dir.path() + "/" + r.path, *bytes);
    recs.push_back(r);
  }
  const std::string m = dir.path() + "/m.jsonl";
  EXPECT_TRUE(WriteManifest(m, recs).ok());
  if (out) *out = recs;
  return m;
}

LoaderOptions Base(const std::string& manifest) {
  LoaderOptions o;
  o.manifest = manifest;
  o.image_size = 16;
  o.batch_size = 4;
  o.threads = 2;
  o.seed = 11;
  return o;
}

std::vector<Batch> Drain(const LoaderOptions& o) {
  StatusOr<std::unique_ptr<Loader>> l = Loader::Open(o);
  EXPECT_TRUE(l.ok()) << l.status();
  std::vector<Batch> out;
  if (!l.ok()) return out;
  Batch b;
  while (true) {
    StatusOr<bool> more = (*l)->Next(&b);
    EXPECT_TRUE(more.ok()) << more.status();
    if (!more.ok() || !*more) break;
    out.push_back(b);
  }
  return out;
}

TEST(LoaderTest, EvalShardingHasNoOverlapAndNoLoss) {
  TempDir dir;
  const std::string m = MakeDataset(dir, 37);
  for (int world = 1; world <= 4; ++world) {
    std::multiset<std::string> seen;
    for (int rank = 0; rank < world; ++rank) {
      LoaderOptions o = Base(m);
      o.train = false;
      o.world = world;
      o.rank = rank;
      std::vector<std::string> order;
      for (const Batch& b : Drain(o)) {
        for (const std::string& id : b.sample_id) order.push_back(id);
      }
      // In manifest order within a rank.
      for (size_t i = 1; i < order.size(); ++i) {
        EXPECT_LT(std::stoi(order[i - 1].substr(4)), std::stoi(order[i].substr(4)));
      }
      seen.insert(order.begin(), order.end());
    }
    EXPECT_EQ(seen.size(), 37u) << "world " << world;
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 37u) << "world " << world;
  }
}

TEST(LoaderTest, TrainShardingPerEpoch) {
  TempDir dir;
  const std::string m = MakeDataset(dir, 37);
  for (int world = 1; world <= 4; ++world) {
    for (bool drop_last : {false, true}) {
      std::map<int64_t, std::multiset<std::string>> per_epoch;
      std::set<int64_t> batch_counts;
      for (int rank = 0; rank < world; ++rank) {
        LoaderOptions o = Base(m);
        o.world = world;
        o.rank = rank;
        o.epochs = 2;
        o.drop_last = drop_last;
        std::vector<Batch> batches = Drain(o);
        batch_counts.insert(static_cast<int64_t>(batches.size()));
        for (const Batch& b : batches) {
          per_epoch[b.epoch].insert(b.sample_id.begin(), b.sample_id.end());
        }
      }
      ASSERT_EQ(per_epoch.size(), 2u);
      for (const auto& [epoch, ids] : per_epoch) {
        // No sample twice within an epoch.
        EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
        if (!drop_last) {
          EXPECT_EQ(ids.size(), 37u) << "world " << world;
        } else {
          const size_t per_rank = (37 / world) / 4 * 4;
          EXPECT_EQ(ids.size(), per_rank * world);
        }
      }
      if (drop_last) {
        EXPECT_EQ(batch_counts.size(), 1u) << "ranks differ in batch count";
      }
    }
  }
}

TEST(LoaderTest, ShufflesDifferPerEpochAndResumeGivesSameBatches) {
  TempDir dir;
  const std::string m = MakeDataset(dir, 30);
  LoaderOptions o = Base(m);
  o.epochs = 3;
  o.augment.p_jpeg = 0.5;
  o.augment.p_blur = 0.5;
  std::vector<Batch> all = Drain(o);
  ASSERT_EQ(all.size(), 3u * 7);
  EXPECT_NE(all[0].sample_id, all[7].sample_id);
  o.start_epoch = 1;
  o.start_batch = 3;
  o.threads = 3;
  std::vector<Batch> resumed = Drain(o);
  ASSERT_EQ(resumed.size(), all.size() - 10);
  for (size_t i = 0; i < resumed.size(); ++i) {
    const Batch& a = all[i + 10];
    const Batch& b = resumed[i];
    EXPECT_EQ(a.epoch, b.epoch);
    EXPECT_EQ(a.index, b.index);
    EXPECT_EQ(a.sample_id, b.sample_id);
    EXPECT_EQ(a.pixels, b.pixels) << "batch " << i;
  }
  // Synchronous (threads = 0) gives the same batches as threaded.
  o.start_epoch = o.start_batch = 0;
  o.threads = 0;
  std::vector<Batch> sync = Drain(o);
  ASSERT_EQ(sync.size(), all.size());
  for (size_t i = 0; i < sync.size(); ++i) EXPECT_EQ(sync[i].pixels, all[i].pixels);
  // Another seed shuffles differently.
  o.seed = 12;
  EXPECT_NE(Drain(o)[0].sample_id, all[0].sample_id);
}

TEST(LoaderTest, EvalPixelsAndMetadata) {
  TempDir dir;
  std::vector<Record> recs;
  const std::string m = MakeDataset(dir, 10, &recs);
  LoaderOptions o = Base(m);
  o.train = false;
  o.norm = Normalization::kHalf;
  o.filter.types = {"REAL", "FS"};
  std::vector<Batch> batches = Drain(o);
  ASSERT_EQ(batches.size(), 1u);
  const Batch& b = batches[0];
  ASSERT_EQ(b.size, 4);  // records 0, 1, 5, 6
  EXPECT_EQ(b.sample_id,
            (std::vector<std::string>{"img/0.png", "img/1.jpg", "img/5.jpg", "img/6.png"}));
  EXPECT_EQ(b.label, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(b.type_index, (std::vector<int>{0, 1, 0, 1}));
  EXPECT_EQ(b.video_id[3], "vid3");
  EXPECT_EQ(b.face[2], "face 5");
  EXPECT_EQ(b.dataset[0], "B");
  ASSERT_EQ(b.pixels.size(), 4u * 3 * 16 * 16);
  // Record 6 is a flat PNG of grey 30: every value (30/255 - 0.5) / 0.5.
  const float want = (30 / 255.0f - 0.5f) / 0.5f;
  for (size_t i = 3 * 768; i < 4 * 768; ++i) ASSERT_NEAR(b.pixels[i], want, 1e-6);
}

TEST(LoaderTest, ScaleSelectsNestedSubset) {
  TempDir dir;
  const std::string m = MakeDataset(dir, 40);
  LoaderOptions o = Base(m);
  o.scale = 21;
  o.drop_last = false;
  StatusOr<std::unique_ptr<Loader>> l = Loader::Open(o);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_GE((*l)->num_samples(), 21);
  EXPECT_LE((*l)->num_samples(), 22);  // videos of two frames stay together
  o.scale = 41;
  EXPECT_EQ(Loader::Open(o).status().code(), StatusCode::kInvalidArgument);
  // clamp_scale: all 40 records instead of an error.
  o.clamp_scale = true;
  StatusOr<std::unique_ptr<Loader>> clamped = Loader::Open(o);
  ASSERT_TRUE(clamped.ok()) << clamped.status();
  EXPECT_EQ((*clamped)->num_samples(), 40);
  // Eval loaders ignore the scale: every matching record is read.
  o.clamp_scale = false;
  o.train = false;
  StatusOr<std::unique_ptr<Loader>> eval = Loader::Open(o);
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_EQ((*eval)->num_samples(), 40);
}

TEST(LoaderTest, SymlinksLeavingTheRootAreRefused) {
  TempDir dir;
  TempDir outside;
  std::vector<Record> recs;
  MakeDataset(dir, 10, &recs);
  StatusOr<std::string> jpg = EncodeJpeg(Image(24, 24), 90);
  ASSERT_TRUE(jpg.ok());
  WriteText(outside.path() + "/secret.jpg", *jpg);
  ASSERT_EQ(
      ::symlink((outside.path() + "/secret.jpg").c_str(), (dir.path() + "/img/link.jpg").c_str()),
      0);
  recs[2].path = "img/link.jpg";
  const std::string m = dir.path() + "/link.jsonl";
  ASSERT_TRUE(WriteManifest(m, recs).ok());
  LoaderOptions o = Base(m);
  o.train = false;
  o.max_bad_fraction = 0.5;
  for (bool allow : {false, true}) {
    o.allow_outside_root = allow;
    StatusOr<std::unique_ptr<Loader>> l = Loader::Open(o);
    ASSERT_TRUE(l.ok()) << l.status();
    Batch b;
    int64_t good = 0;
    while (true) {
      StatusOr<bool> more = (*l)->Next(&b);
      ASSERT_TRUE(more.ok()) << more.status();
      if (!*more) break;
      good += b.size;
    }
    EXPECT_EQ(good, allow ? 10 : 9);
    EXPECT_EQ((*l)->skipped(), allow ? 0 : 1);
  }
}

// data verify's check: unreadable files and symlinks out of the root are listed, one per
// record, in manifest order, and the others pass.
TEST(LoaderTest, VerifyImagesListsUnreadableAndOutsideFiles) {
  TempDir dir;
  TempDir outside;
  std::vector<Record> recs;
  MakeDataset(dir, 6, &recs);
  StatusOr<std::string> jpg = EncodeJpeg(Image(24, 24), 90);
  ASSERT_TRUE(jpg.ok());
  WriteText(outside.path() + "/secret.jpg", *jpg);
  ASSERT_EQ(
      ::symlink((outside.path() + "/secret.jpg").c_str(), (dir.path() + "/img/link.jpg").c_str()),
      0);
  recs[1].path = "img/link.jpg";
  recs[3].path = "img/missing.jpg";
  WriteText(dir.path() + "/img/broken.jpg", "not a jpeg");
  recs[4].path = "img/broken.jpg";
  std::vector<BadImage> bad = VerifyImages(recs, dir.path(), 2);
  ASSERT_EQ(bad.size(), 3u);
  EXPECT_EQ(bad[0].path, "img/link.jpg");
  EXPECT_NE(bad[0].reason.find("outside the root"), std::string::npos) << bad[0].reason;
  EXPECT_EQ(bad[1].path, "img/missing.jpg");
  EXPECT_EQ(bad[2].path, "img/broken.jpg");
  EXPECT_TRUE(VerifyImages({recs[0], recs[2], recs[5]}, dir.path() + "/", 1).empty());
}

TEST(LoaderTest, BadFilesAreSkippedCountedAndFailPastThreshold) {
  TempDir dir;
  std::vector<Record> recs;
  MakeDataset(dir, 20, &recs);
  // Truncate one JPEG, replace one PNG with garbage, point one record at a missing file.
  StatusOr<std::string> jpg = EncodeJpeg(Image(24, 24), 90);
  ASSERT_TRUE(jpg.ok());
  WriteText(dir.path() + "/img/3.jpg", jpg->substr(0, jpg->size() / 2));
  WriteText(dir.path() + "/img/4.png", "\x89PNG\r\n\x1a\ngarbage garbage garbage");
  recs[7].path = "img/missing.jpg";
  const std::string m = dir.path() + "/bad.jsonl";
  ASSERT_TRUE(WriteManifest(m, recs).ok());

  LoaderOptions o = Base(m);
  o.train = false;
  o.max_bad_fraction = 0.2;
  StatusOr<std::unique_ptr<Loader>> l = Loader::Open(o);
  ASSERT_TRUE(l.ok()) << l.status();
  Batch b;
  int64_t good = 0;
  std::set<std::string> ids;
  while (true) {
    StatusOr<bool> more = (*l)->Next(&b);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    good += b.size;
    ids.insert(b.sample_id.begin(), b.sample_id.end());
    EXPECT_EQ(b.pixels.size(), static_cast<size_t>(b.size) * 3 * 16 * 16);
  }
  EXPECT_EQ(good, 17);
  EXPECT_EQ((*l)->skipped(), 3);
  EXPECT_FALSE(ids.count("img/3.jpg") || ids.count("img/4.png") || ids.count("img/missing.jpg"));

  o.max_bad_fraction = 0.1;  // 3 of 20 is past 10%
  l = Loader::Open(o);
  ASSERT_TRUE(l.ok());
  Status failure;
  while (true) {
    StatusOr<bool> more = (*l)->Next(&b);
    if (!more.ok()) {
      failure = more.status();
      break;
    }
    ASSERT_TRUE(*more) << "finished without failing";
  }
  EXPECT_EQ(failure.code(), StatusCode::kDataLoss);
  EXPECT_NE(failure.message().find("img/3.jpg"), std::string::npos) << failure.message();
  EXPECT_NE(failure.message().find("img/4.png"), std::string::npos) << failure.message();
  EXPECT_NE(failure.message().find("img/missing.jpg"), std::string::npos) << failure.message();
  // The failure is sticky.
  EXPECT_EQ((*l)->Next(&b).status().code(), StatusCode::kDataLoss);
}

TEST(LoaderTest, OptionsAreValidated) {
  TempDir dir;
  const std::string m = MakeDataset(dir, 8);
  LoaderOptions o = Base(m);
  o.rank = 2;
  o.world = 2;
  EXPECT_EQ(Loader::Open(o).status().code(), StatusCode::kInvalidArgument);
  o = Base(m);
  o.batch_size = 0;
  EXPECT_EQ(Loader::Open(o).status().code(), StatusCode::kInvalidArgument);
  o = Base(m);
  o.filter.datasets = {"nope"};
  StatusOr<std::unique_ptr<Loader>> l = Loader::Open(o);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("datasets=nope"), std::string::npos);
  o = Base(m);
  o.batch_size = 16;  // 8 samples, drop_last: no full batch
  EXPECT_EQ(Loader::Open(o).status().code(), StatusCode::kInvalidArgument);
  o = Base(m);
  o.start_batch = 2;  // only 2 batches per epoch
  EXPECT_EQ(Loader::Open(o).status().code(), StatusCode::kInvalidArgument);
  o = Base(dir.path() + "/none.jsonl");
  EXPECT_EQ(Loader::Open(o).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace sd2::worker::data

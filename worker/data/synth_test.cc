#include "worker/data/synth.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "common/file_util.h"
#include "worker/data/image.h"
#include "worker/data/manifest.h"
#include "worker/data/test_util.h"

namespace sd2::worker::data {
namespace {

using testing::TempDir;

// Simple hand-made features of an image: the traces must show up in at least one of them.
std::vector<double> Features(const Image& img) {
  const int w = img.width, h = img.height;
  auto luma = [&](int x, int y) {
    const uint8_t* p = img.At(x, y);
    return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
  };
  double lap_all = 0, lap_in = 0, lap_top = 0, checker = 0, p4 = 0, rg_in = 0, rg_out = 0;
  int n_in = 0, n_out = 0, n = 0, n_top = 0;
  for (int y = 1; y < h - 1; ++y) {
    for (int x = 1; x < w - 1; ++x) {
      double l = std::fabs(4 * luma(x, y) - luma(x - 1, y) - luma(x + 1, y) - luma(x, y - 1) -
                           luma(x, y + 1));
      const bool inner = std::abs(x - w / 2) < w / 5 && std::abs(y - h / 2) < h / 5;
      lap_all += l;
      ++n;
      if (y < h * 2 / 5 && std::abs(x - w / 2) < w / 3) {
        lap_top += l;
        ++n_top;
      }
      const uint8_t* p = img.At(x, y);
      if (inner) {
        lap_in += l;
        rg_in += p[0] - p[1];
        ++n_in;
      } else if (std::abs(x - w / 2) < w / 3 && std::abs(y - h / 2) < h / 3) {
        rg_out += p[0] - p[1];
        ++n_out;
      }
      checker += ((x + y) % 2 ? -1 : 1) * luma(x, y);
      p4 += std::cos(3.14159265 * x / 2) * std::cos(3.14159265 * y / 2) * luma(x, y);
    }
  }
  return {lap_all / n,
          lap_in / n_in / (lap_all / n + 1e-9),
          std::fabs(checker) / n,
          std::fabs(p4) / n,
          rg_in / n_in - rg_out / std::max(1, n_out),
          lap_top / n_top / (lap_all / n + 1e-9)};
}

// max(AUC, 1 - AUC) of a feature separating positives from negatives.
double Separation(const std::vector<double>& pos, const std::vector<double>& neg) {
  double wins = 0;
  for (double p : pos) {
    for (double q : neg) wins += p > q ? 1 : p == q ? 0.5 : 0;
  }
  double auc = wins / (static_cast<double>(pos.size()) * neg.size());
  return std::max(auc, 1 - auc);
}

class SynthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    SynthOptions o;
    o.out_dir = dir_->path() + "/a";
    o.images = 2400;
    o.seed = 3;
    o.image_size = 48;
    o.threads = 2;
    StatusOr<SynthSummary> s = Synthesize(o);
    ASSERT_TRUE(s.ok()) << s.status();
    summary_ = new SynthSummary(*s);
  }
  static void TearDownTestSuite() {
    delete summary_;
    delete dir_;
  }
  static TempDir* dir_;
  static SynthSummary* summary_;
};
TempDir* SynthTest::dir_ = nullptr;
SynthSummary* SynthTest::summary_ = nullptr;

TEST_F(SynthTest, EverySourceAndSplitExists) {
  EXPECT_EQ(summary_->images, 2400);
  StatusOr<std::vector<Record>> recs = ReadManifest(summary_->manifest);
  ASSERT_TRUE(recs.ok()) << recs.status();
  ASSERT_EQ(recs->size(), 2400u);
  std::map<std::string, std::map<std::string, int>> count;  // set -> split -> n
  std::map<std::string, std::set<std::string>> test_types;  // set -> types in test
  std::map<std::string, std::set<std::string>> video_splits;
  for (const Record& r : *recs) {
    const std::string set = r.dataset + (r.subset.empty() ? "" : "/" + r.subset);
    count[set][r.split]++;
    if (r.split == "test") test_types[set].insert(r.type);
    video_splits[r.video].insert(r.split);
    EXPECT_FALSE(r.face.empty());
    EXPECT_FALSE(r.env.empty());
  }
  for (const auto& [v, splits] : video_splits) EXPECT_EQ(splits.size(), 1u) << v;
  for (const SynthSource& s : SynthSources()) {
    const std::string set = s.dataset + (s.subset.empty() ? "" : "/" + s.subset);
    ASSERT_TRUE(count.count(set)) << set;
    EXPECT_GE(count[set]["test"], s.mix[0] < 1 ? 40 : 8) << set;
    if (s.train) {
      EXPECT_GT(count[set]["train"], 0) << set;
      EXPECT_GT(count[set]["val"], 0) << set;
    } else {
      EXPECT_EQ(count[set].size(), 1u) << set;
    }
    if (s.mix[0] > 0 && s.mix[0] < 1) {
      EXPECT_TRUE(test_types[set].count("REAL")) << set;
      EXPECT_GE(test_types[set].size(), 2u) << set;
    }
  }
  EXPECT_TRUE(count.count("DF40/FF") && count.count("FF++ (c40)") &&
              count.count("GenImage/SD v1.4"));
  EXPECT_EQ(count["GenImage/BigGAN"].count("train"), 0u);
  // Every image decodes.
  for (size_t i = 0; i < recs->size(); i += 37) {
    StatusOr<Image> img = LoadImage(dir_->path() + "/a/" + (*recs)[i].path);
    ASSERT_TRUE(img.ok()) << img.status();
    EXPECT_GE(img->width, 32);
  }
}

TEST_F(SynthTest, SameSeedIsByteIdentical) {
  SynthOptions o;
  o.out_dir = dir_->path() + "/b";
  o.images = 2400;
  o.seed = 3;
  o.image_size = 48;
  o.threads = 1;  // a different thread count must not matter
  StatusOr<SynthSummary> s = Synthesize(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->digest, summary_->digest);
  StatusOr<std::vector<Record>> recs = ReadManifest(s->manifest);
  ASSERT_TRUE(recs.ok());
  for (size_t i = 0; i < recs->size(); i += 97) {
    EXPECT_EQ(*ReadFile(dir_->path() + "/a/" + (*recs)[i].path),
              *ReadFile(dir_->path() + "/b/" + (*recs)[i].path));
  }
  o.out_dir = dir_->path() + "/c";
  o.seed = 4;
  o.images = 1800;
  s = Synthesize(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NE(s->digest, summary_->digest);
}

TEST_F(SynthTest, BadOptions) {
  SynthOptions o;
  o.out_dir = dir_->path() + "/d";
  o.images = 100;
  EXPECT_EQ(Synthesize(o).status().code(), StatusCode::kInvalidArgument);
  o.images = 1000;  // below the evaluation sets' minimums
  EXPECT_EQ(Synthesize(o).status().code(), StatusCode::kInvalidArgument);
  o.images = 5000;
  o.image_size = 8;
  EXPECT_EQ(Synthesize(o).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SynthTest, TracesSeparateFromRealWithSimpleFeatures) {
  StatusOr<std::vector<Record>> recs = ReadManifest(summary_->manifest);
  ASSERT_TRUE(recs.ok());
  // set -> type -> feature vectors
  std::map<std::string, std::map<std::string, std::vector<std::vector<double>>>> feats;
  for (const Record& r : *recs) {
    if (r.dataset != "DF40" && r.dataset != "DF40-Test") continue;
    StatusOr<Image> img = LoadImage(dir_->path() + "/a/" + r.path);
    ASSERT_TRUE(img.ok());
    feats[r.dataset == "DF40" ? "DF40" : "DF40-Test"][r.type].push_back(Features(*img));
  }
  for (const std::string set : {"DF40", "DF40-Test"}) {
    for (const std::string type : {"FS", "FR", "EFS", "FE"}) {
      const auto& real = feats[set]["REAL"];
      const auto& fake = feats[set][type];
      ASSERT_GE(real.size(), 20u);
      ASSERT_GE(fake.size(), 10u) << set << " " << type;
      double best = 0;
      for (size_t k = 0; k < real[0].size(); ++k) {
        std::vector<double> p, q;
        for (const auto& f : fake) p.push_back(f[k]);
        for (const auto& f : real) q.push_back(f[k]);
        best = std::max(best, Separation(p, q));
      }
      std::cout << set << " REAL vs " << type << ": best single-feature AUC " << best << "\n";
      EXPECT_GE(best, set == "DF40" ? 0.75 : 0.65) << set << " " << type;
    }
  }
}

}  // namespace
}  // namespace sd2::worker::data

#include "worker/data/scales.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace sd2::worker::data {
namespace {

// Strata: (A, REAL) 400 images in videos of 4; (A, FS) 1200 in videos of 4;
// (B, EFS) 300 single images; (C, REAL) 100 videos of 5.
std::vector<Record> MakeRecords() {
  std::vector<Record> recs;
  auto add = [&](const std::string& ds, const std::string& type, int videos, int frames) {
    for (int v = 0; v < videos; ++v) {
      for (int f = 0; f < frames; ++f) {
        Record r;
        r.dataset = ds;
        r.type = type;
        r.split = "train";
        r.video = ds + type + std::to_string(v);
        r.path = r.video + "_" + std::to_string(f) + ".jpg";
        recs.push_back(r);
      }
    }
  };
  add("A", "REAL", 100, 4);
  add("A", "FS", 300, 4);
  add("B", "EFS", 300, 1);
  add("C", "REAL", 20, 5);
  // Interleave so that manifest order is not stratum order.
  std::vector<Record> mixed;
  for (size_t i = 0; i < recs.size(); i += 2) mixed.push_back(recs[i]);
  for (size_t i = 1; i < recs.size(); i += 2) mixed.push_back(recs[i]);
  return mixed;
}

TEST(ScalesTest, NestedAndDeterministic) {
  const std::vector<Record> recs = MakeRecords();
  std::vector<size_t> prev;
  for (int64_t s : {50, 200, 333, 800, 1500, 1999}) {
    std::vector<size_t> cur = NestedSubset(recs, s, 7);
    EXPECT_GE(static_cast<int64_t>(cur.size()), s);
    EXPECT_LT(static_cast<int64_t>(cur.size()), s + 5);  // at most one partial video
    EXPECT_TRUE(std::is_sorted(cur.begin(), cur.end()));
    EXPECT_TRUE(std::includes(cur.begin(), cur.end(), prev.begin(), prev.end())) << s;
    EXPECT_EQ(cur, NestedSubset(recs, s, 7));
    prev = cur;
  }
  EXPECT_NE(NestedSubset(recs, 200, 7), NestedSubset(recs, 200, 8));
  EXPECT_EQ(NestedSubset(recs, 0, 7).size(), recs.size());
  EXPECT_EQ(NestedSubset(recs, 100000, 7).size(), recs.size());
}

TEST(ScalesTest, StratifiedAndWholeVideos) {
  const std::vector<Record> recs = MakeRecords();
  std::map<std::string, int> video_size;
  for (const Record& r : recs) video_size[r.video]++;
  for (int64_t s : {100, 500, 1000}) {
    std::vector<size_t> idx = NestedSubset(recs, s, 3);
    std::map<std::string, int> per_stratum, per_video;
    for (size_t i : idx) {
      per_stratum[recs[i].dataset + "/" + recs[i].type]++;
      per_video[recs[i].video]++;
    }
    for (const auto& [v, n] : per_video) EXPECT_EQ(n, video_size[v]) << v << " split at " << s;
    const double n = static_cast<double>(idx.size());
    const std::map<std::string, std::pair<double, int>> expected = {{"A/REAL", {400.0 / 2000, 4}},
                                                                    {"A/FS", {1200.0 / 2000, 4}},
                                                                    {"B/EFS", {300.0 / 2000, 1}},
                                                                    {"C/REAL", {100.0 / 2000, 5}}};
    for (const auto& [k, e] : expected) {
      EXPECT_NEAR(per_stratum[k], e.first * n, e.second + 1) << k << " at scale " << s;
    }
  }
}

TEST(ScalesTest, ParseAndFormat) {
  EXPECT_EQ(*ParseScale("100K"), 100000);
  EXPECT_EQ(*ParseScale("1M"), 1000000);
  EXPECT_EQ(*ParseScale("3m"), 3000000);
  EXPECT_EQ(*ParseScale("2.5k"), 2500);
  EXPECT_EQ(*ParseScale("3000"), 3000);
  for (const char* bad : {"", "K", "1.5", "-3", "10X", "1..2K", "0"}) {
    StatusOr<int64_t> r = ParseScale(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_EQ(FormatScale(100000), "100K");
  EXPECT_EQ(FormatScale(3000000), "3M");
  EXPECT_EQ(FormatScale(2500), "2500");
}

}  // namespace
}  // namespace sd2::worker::data

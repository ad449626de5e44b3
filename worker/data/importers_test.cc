#include "worker/data/importers.h"

#include <gtest/gtest.h>

#include <map>

#include "worker/data/test_util.h"

namespace sd2::worker::data {
namespace {

using testing::TempDir;
using testing::WriteText;

// A small FaceForensics++-style file (with compression levels) and a Celeb-DF-style one
// (videos straight under the split), as DeepfakeBench writes them.
void WriteDeepfakeBench(const std::string& dir, const std::string& root) {
  WriteText(dir + "/FaceForensics++.json", R"({
  "FaceForensics++": {
    "FF-real": {
      "train": {"c23": {"000": {"label": "FF-real", "frames": [")" +
                                               root + R"(/ff/000/0.png", ")" + root +
                                               R"(/ff/000/1.png"]}},
                "c40": {"000": {"label": "FF-real", "frames": ["ff40/000/0.png"]}}},
      "test": {"c23": {"001": {"label": "FF-real", "frames": ["ff/001/0.png"]}}}
    },
    "FF-F2F": {
      "train": {"c23": {"000_003": {"label": "FF-F2F", "frames": ["ff\\f2f\\0.png", "ff/f2f/1.png", "ff/f2f/2.png"]}}}
    },
    "FF-DF": {
      "val": {"c23": {"002_006": {"label": "FF-DF", "frames": ["ff/df/0.png"]}}}
    }
  }
})");
  WriteText(dir + "/Celeb-DF-v2.json", R"({
  "Celeb-DF-v2": {
    "CelebDFv2_real": {"test": {"id0_0000": {"label": "CelebDFv2_real", "frames": ["cdf/r/0.png", "cdf/r/1.png"]}}},
    "CelebDFv2_fake": {"test": {"id0_id1_0000": {"label": "CelebDFv2_fake", "frames": ["cdf/f/0.png"]}}}
  }
})");
}

TEST(ImportersTest, DeepfakeBenchLayoutAndDefaultMap) {
  TempDir dir;
  const std::string root = "/data/dfb";
  WriteDeepfakeBench(dir.path() + "/json", root);
  DeepfakeBenchOptions o;
  o.json_path = dir.path() + "/json";
  o.root = root + "/";
  StatusOr<std::vector<Record>> recs = ImportDeepfakeBench(o);
  ASSERT_TRUE(recs.ok()) << recs.status();
  // Celeb-DF-v2.json sorts first: 3 frames; FF (c23 only): 2 + 1 + 3 + 1 frames.
  ASSERT_EQ(recs->size(), 10u);
  std::map<std::string, Record> by_path;
  for (const Record& r : *recs) by_path[r.path] = r;
  ASSERT_TRUE(by_path.count("ff/000/0.png"));  // root stripped
  EXPECT_EQ(by_path["ff/000/0.png"].type, "REAL");
  EXPECT_EQ(by_path["ff/000/0.png"].dataset, "FF++");
  EXPECT_EQ(by_path["ff/000/0.png"].subset, "FF-real");
  EXPECT_EQ(by_path["ff/000/0.png"].video, "FaceForensics++/FF-real/000");
  EXPECT_EQ(by_path["ff/000/1.png"].video, by_path["ff/000/0.png"].video);
  EXPECT_EQ(by_path["ff/f2f/0.png"].type, "FR");  // backslashes normalised
  EXPECT_EQ(by_path["ff/df/0.png"].type, "FS");
  EXPECT_EQ(by_path["ff/df/0.png"].split, "val");
  EXPECT_EQ(by_path["cdf/r/1.png"].type, "REAL");
  EXPECT_EQ(by_path["cdf/f/0.png"].type, "FS");
  EXPECT_EQ(by_path["cdf/f/0.png"].dataset, "CDF");
  EXPECT_EQ(by_path.count("ff40/000/0.png"), 0u);

  o.compression = "";  // every level
  recs = ImportDeepfakeBench(o);
  ASSERT_TRUE(recs.ok()) << recs.status();
  EXPECT_EQ(recs->size(), 11u);
}

TEST(ImportersTest, MapOverridesAndUnknownLabels) {
  TempDir dir;
  WriteDeepfakeBench(dir.path(), "/data");
  WriteText(dir.path() + "/map.toml",
            "[labels]\n\"FF-F2F\" = \"FE\"\n[datasets]\n\"Celeb-DF-v2\" = \"Celeb-DF\"\n");
  StatusOr<LabelMap> map = LoadLabelMap(dir.path() + "/map.toml");
  ASSERT_TRUE(map.ok()) << map.status();
  DeepfakeBenchOptions o;
  o.json_path = dir.path();
  o.root = "/data";
  o.map = *map;
  StatusOr<std::vector<Record>> recs = ImportDeepfakeBench(o);
  ASSERT_TRUE(recs.ok()) << recs.status();
  for (const Record& r : *recs) {
    if (r.subset == "FF-F2F") {
      EXPECT_EQ(r.type, "FE");
    }
    if (r.subset.rfind("CelebDF", 0) == 0) {
      EXPECT_EQ(r.dataset, "Celeb-DF");
    }
  }
  // Suffix stripping and the "...real" rule.
  LabelMap def = DefaultLabelMap();
  EXPECT_EQ(*def.LookUp("simswap_ff"), "FS");
  EXPECT_EQ(*def.LookUp("StyleGAN3_Fake"), "EFS");
  EXPECT_EQ(*def.LookUp("DFDC_Real"), "REAL");
  EXPECT_EQ(def.LookUp("mystery_fake").status().code(), StatusCode::kNotFound);

  WriteText(dir.path() + "/x/u.json",
            R"({"D": {"mystery": {"test": {"v": {"label": "mystery", "frames": ["a.png"]}}}}})");
  o.json_path = dir.path() + "/x/u.json";
  recs = ImportDeepfakeBench(o);
  ASSERT_FALSE(recs.ok());
  EXPECT_NE(recs.status().message().find("\"mystery\""), std::string::npos);
  EXPECT_NE(recs.status().message().find("--map"), std::string::npos);

  WriteText(dir.path() + "/bad.toml", "[labels]\n\"FF-DF\" = \"FAKE\"\n");
  StatusOr<LabelMap> bad = LoadLabelMap(dir.path() + "/bad.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind(dir.path() + "/bad.toml:2:", 0), 0u)
      << bad.status().message();
}

TEST(ImportersTest, BadInputGivesPreciseErrors) {
  TempDir dir;
  WriteText(dir.path() + "/a.json", "{\n  \"D\": {\n    \"x\": [1,\n}\n");
  DeepfakeBenchOptions o;
  o.json_path = dir.path() + "/a.json";
  StatusOr<std::vector<Record>> r = ImportDeepfakeBench(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind(o.json_path + ":4:1:", 0), 0u) << r.status().message();

  WriteText(
      dir.path() + "/b.json",
      R"({"D": {"D_real": {"test": {"v": {"label": "D_real", "frames": ["/elsewhere/a.png"]}}}}})");
  o.json_path = dir.path() + "/b.json";
  o.root = "/data";
  r = ImportDeepfakeBench(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not under --root /data"), std::string::npos)
      << r.status().message();

  WriteText(dir.path() + "/c.json", R"({"D": {"D_real": {"test": {"v": {"label": "D_real"}}}}})");
  o.json_path = dir.path() + "/c.json";
  r = ImportDeepfakeBench(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("D/D_real/test/v"), std::string::npos)
      << r.status().message();

  o.json_path = dir.path() + "/missing";
  EXPECT_EQ(ImportDeepfakeBench(o).status().code(), StatusCode::kNotFound);
}

TEST(ImportersTest, GenImageFolders) {
  TempDir dir;
  const std::string r = dir.path();
  for (const char* f : {"stable_diffusion_v_1_4/imagenet_ai/train/ai/1.png",
                        "stable_diffusion_v_1_4/imagenet_ai/train/nature/2.JPEG",
                        "stable_diffusion_v_1_4/imagenet_ai/val/ai/3.png",
                        "BigGAN/val/nature/4.jpg", "BigGAN/val/nature/notes.txt"}) {
    WriteText(r + "/" + f, "x");
  }
  StatusOr<std::vector<Record>> recs = ImportGenImage(r);
  ASSERT_TRUE(recs.ok()) << recs.status();
  ASSERT_EQ(recs->size(), 4u);
  EXPECT_EQ((*recs)[0].subset, "BigGAN");
  EXPECT_EQ((*recs)[0].split, "test");
  EXPECT_EQ((*recs)[0].type, "REAL");
  EXPECT_EQ((*recs)[1].subset, "SD v1.4");
  EXPECT_EQ((*recs)[1].path, "stable_diffusion_v_1_4/imagenet_ai/train/ai/1.png");
  EXPECT_EQ((*recs)[1].type, "EFS");
  EXPECT_EQ((*recs)[1].split, "train");
  EXPECT_EQ((*recs)[3].split, "test");
  EXPECT_EQ(ImportGenImage(r + "/nothing").status().code(), StatusCode::kNotFound);
}

TEST(ImportersTest, DeepNestingIsAnErrorWithItsPosition) {
  TempDir dir;
  // DeepfakeBench JSON: 100,000 nested arrays on line 2.
  WriteText(dir.path() + "/deep.json",
            "{\n  \"D\": " + std::string(100000, '[') + std::string(100000, ']') + "\n}\n");
  DeepfakeBenchOptions o;
  o.json_path = dir.path() + "/deep.json";
  StatusOr<std::vector<Record>> r = ImportDeepfakeBench(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  // Level 1 is the outer object: the 64th '[' (column 8 + 63) opens level 65.
  EXPECT_EQ(r.status().message(),
            o.json_path + ":2:71: JSON nests deeper than 64 levels (at byte 73)");
  // A label map (TOML) with a 100,000-part dotted key, which overflowed toml++'s stack.
  std::string key = "[labels]\nx";
  for (int i = 0; i < 100000; ++i) key += ".x";
  WriteText(dir.path() + "/map.toml", key + " = \"FS\"\n");
  StatusOr<LabelMap> map = LoadLabelMap(dir.path() + "/map.toml");
  ASSERT_FALSE(map.ok());
  EXPECT_EQ(map.status().message().rfind(dir.path() + "/map.toml:2:", 0), 0u)
      << map.status().message().substr(0, 200);
  EXPECT_NE(map.status().message().find("TOML nests deeper than 64 levels"), std::string::npos);
}

}  // namespace
}  // namespace sd2::worker::data

#include "worker/data/importers.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "worker/data/test_util.h"

namespace sd2::worker::data {
namespace {

using testing::Df40Json;
using testing::kDf40Names;
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
  EXPECT_EQ(r.status().message(), o.json_path +
                                      ": at D/D_real/test/v: frame path /elsewhere/a.png is "
                                      "outside --root /data (a JSON made on another machine? "
                                      "map its folders with --rebase OLD=NEW)");

  WriteText(dir.path() + "/c.json", R"({"D": {"D_real": {"test": {"v": {"label": "D_real"}}}}})");
  o.json_path = dir.path() + "/c.json";
  r = ImportDeepfakeBench(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("D/D_real/test/v"), std::string::npos)
      << r.status().message();

  o.json_path = dir.path() + "/missing";
  EXPECT_EQ(ImportDeepfakeBench(o).status().code(), StatusCode::kNotFound);
}

StatusOr<Df40Table> ShippedTable() {
  return LoadDf40Table(std::string(SD2_SOURCE_DIR) + "/data/df40_methods.toml");
}

TEST(ImportersTest, ShippedDf40TableMatchesThePaper) {
  StatusOr<Df40Table> t = ShippedTable();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->methods.size(), 40u);
  EXPECT_EQ(t->known_dataset, "DF40");
  EXPECT_EQ(t->test_dataset, "DF40-Test");
  std::map<std::string, int> known, test;                   // type -> methods
  std::map<std::string, std::set<std::string>> per_domain;  // known methods per domain
  size_t names = 0;
  for (const Df40Method& m : t->methods) {
    (m.known ? known : test)[m.type]++;
    names += m.datasets.size();
    for (const auto& [name, domain] : m.datasets) {
      if (m.known) per_domain[domain].insert(m.name);
    }
  }
  // Sec. 5.1: 9 / 12 / 10 / 1 known types; App. A.2: 1 / 1 / 2 / 4 test-only ones.
  EXPECT_EQ(known, (std::map<std::string, int>{{"FS", 9}, {"FR", 12}, {"EFS", 10}, {"FE", 1}}));
  EXPECT_EQ(test, (std::map<std::string, int>{{"FS", 1}, {"FR", 1}, {"EFS", 2}, {"FE", 4}}));
  EXPECT_EQ(per_domain["FF"].size(), 32u);
  EXPECT_EQ(per_domain["CDF"].size(), 32u);
  EXPECT_EQ(names, std::size(kDf40Names));
  for (const char* n : kDf40Names) EXPECT_TRUE(t->Find(n).has_value()) << n;
  // Case-insensitive.
  ASSERT_TRUE(t->Find("midjourney").has_value());
  EXPECT_EQ(t->Find("midjourney")->method->name, "MidJourney6");
  EXPECT_EQ(t->Find("DANET_CDF")->domain, "CDF");
  EXPECT_FALSE(t->Find("danet").has_value());
}

TEST(ImportersTest, Df40TableErrorsNamePositions) {
  TempDir dir;
  auto load_error = [&](const std::string& text) {
    WriteText(dir.path() + "/t.toml", text);
    StatusOr<Df40Table> t = LoadDf40Table(dir.path() + "/t.toml");
    return t.ok() ? std::string("ok") : t.status().message().substr(dir.path().size() + 1);
  };
  const std::string m = "[[method]]\nname = \"A\"\ntype = \"FS\"\nknown = true\n";
  EXPECT_EQ(load_error(m + "datasets = { a_ff = \"FF\" }\n"), "ok");
  EXPECT_EQ(load_error(m + "datasets = { a_ff = \"FF\" }\ncolour = 1\n"),
            "t.toml:6:1: unknown key \"colour\" in [[method]] (expected name, type, known, "
            "datasets)");
  EXPECT_EQ(load_error("[[method]]\nname = \"A\"\ntype = \"REAL\"\n"),
            "t.toml:3:8: unknown type \"REAL\" (expected FS, FR, EFS or FE)");
  EXPECT_EQ(load_error("[[method]]\nname = \"A\"\ntype = \"FS\"\nknown = \"yes\"\n"),
            "t.toml:4:9: \"known\" must be true or false");
  EXPECT_EQ(load_error(m), "t.toml:1:1: [[method]] \"A\" is missing \"datasets\"");
  EXPECT_EQ(load_error(m + "datasets = { a_ff = \"FF\", A_FF = \"CDF\" }\n"),
            "t.toml:1:1: dataset name \"a_ff\" of method \"A\" is already listed for \"A\" (names "
            "match case-insensitively)");
  EXPECT_EQ(load_error("known_dataset = 3\n"),
            "t.toml:1:17: \"known_dataset\" must be a "
            "non-empty string");
  EXPECT_EQ(load_error("methods = []\n"),
            "t.toml:1:1: unknown key \"methods\" (expected "
            "known_dataset, test_dataset or [[method]])");
  EXPECT_EQ(LoadDf40Table(dir.path() + "/none.toml").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(LocateDf40Table().ok());
}

TEST(ImportersTest, Df40DatasetsArePlacedAndOthersReported) {
  TempDir dir;
  const std::string root = dir.path() + "/data";
  for (const char* n : kDf40Names) {
    WriteText(dir.path() + "/json/" + n + ".json", Df40Json(n, root));
  }
  // Not DF40 methods, or misspelt: imported, and reported.
  WriteText(dir.path() + "/json/StyleGAN2_ffhq.json", Df40Json("StyleGAN2_ffhq", root));
  WriteDeepfakeBench(dir.path() + "/json", root);
  StatusOr<Df40Table> table = ShippedTable();
  ASSERT_TRUE(table.ok()) << table.status();
  DeepfakeBenchOptions o;
  o.json_path = dir.path() + "/json";
  o.root = root;
  o.df40 = *table;
  DeepfakeBenchReport report;
  StatusOr<std::vector<Record>> recs = ImportDeepfakeBench(o, &report);
  ASSERT_TRUE(recs.ok()) << recs.status();
  EXPECT_EQ(report.placed.size(), std::size(kDf40Names));
  EXPECT_TRUE(report.absent.empty());
  ASSERT_EQ(report.unplaced.size(), 3u);
  std::map<std::string, UnplacedDataset> unplaced;
  for (const UnplacedDataset& u : report.unplaced) unplaced[u.name] = u;
  EXPECT_EQ(unplaced["StyleGAN2_ffhq"].frames, 3);
  EXPECT_EQ(unplaced["StyleGAN2_ffhq"].dataset, "StyleGAN2_ffhq");
  EXPECT_EQ(unplaced["StyleGAN2_ffhq"].file, dir.path() + "/json/StyleGAN2_ffhq.json");
  EXPECT_EQ(unplaced["FaceForensics++"].frames, 7);
  EXPECT_EQ(unplaced["FaceForensics++"].dataset, "FF++");
  EXPECT_EQ(unplaced["Celeb-DF-v2"].frames, 3);

  std::map<std::string, const Record*> by_id;
  for (const Record& r : *recs) by_id[r.SampleId()] = &r;
  const Record* real = by_id.at("simswap_cdf/simswap_cdf/real/0.png");
  EXPECT_EQ(real->path, "simswap_cdf/real/0.png");
  EXPECT_EQ(real->dataset, "DF40");
  EXPECT_EQ(real->subset, "simswap_cdf");
  EXPECT_EQ(real->type, "REAL");
  EXPECT_EQ(real->domain, "CDF");
  EXPECT_EQ(real->method, "SimSwap");
  EXPECT_EQ(real->method_type, "FS");
  EXPECT_EQ(real->known, std::optional<bool>(true));
  EXPECT_EQ(real->video, "simswap_cdf/simswap_Real/r0");
  const Record* fake = by_id.at("MidJourney/MidJourney/fake/1.png");
  EXPECT_EQ(fake->dataset, "DF40-Test");
  EXPECT_EQ(fake->type, "EFS");
  EXPECT_EQ(fake->domain, "FFHQ");
  EXPECT_EQ(fake->method, "MidJourney6");
  EXPECT_EQ(fake->known, std::optional<bool>(false));
  const Record* bare_e4e = by_id.at("e4e/e4e/fake/0.png");
  EXPECT_EQ(bare_e4e->type, "FE");
  EXPECT_EQ(bare_e4e->domain, "CelebA");
  EXPECT_EQ(bare_e4e->known, std::optional<bool>(true));
  const Record* other =
      by_id.at("StyleGAN2_ffhq/fake/0.png");  // the label map's type, no placement
  EXPECT_EQ(other->type, "EFS");
  EXPECT_EQ(other->dataset, "StyleGAN2_ffhq");
  EXPECT_FALSE(other->known.has_value());
  EXPECT_TRUE(other->domain.empty());

  // Names of the table that no input has are listed too.
  o.json_path = dir.path() + "/json/heygen.json";
  ASSERT_TRUE(ImportDeepfakeBench(o, &report).ok());
  EXPECT_EQ(report.placed, std::vector<std::string>{"heygen"});
  EXPECT_EQ(report.absent.size(), std::size(kDf40Names) - 1);
  EXPECT_TRUE(report.unplaced.empty());
}

TEST(ImportersTest, FramePathsUnderTheRootAndRebased) {
  TempDir dir;
  auto import = [&](const std::string& frame, const std::string& root,
                    const std::vector<std::string>& rebases) -> StatusOr<std::string> {
    WriteText(dir.path() + "/j.json",
              R"({"D": {"D_real": {"test": {"v": {"label": "D_real", "frames": [)" +
                  nlohmann::json(frame).dump() + "]}}}}}");
    DeepfakeBenchOptions o;
    o.json_path = dir.path() + "/j.json";
    o.root = root;
    for (const std::string& r : rebases) {
      StatusOr<Rebase> rb = ParseRebase(r);
      if (!rb.ok()) return rb.status();
      o.rebases.push_back(*rb);
    }
    SD2_ASSIGN_OR_RETURN(std::vector<Record> recs, ImportDeepfakeBench(o));
    return recs.at(0).path;
  };
  auto ok = [](const StatusOr<std::string>& s) { return s.ok() ? *s : s.status().ToString(); };
  // Absolute paths inside the root, however the root is written.
  EXPECT_EQ(ok(import("/data/dfb/ff/0.png", "/data/dfb", {})), "ff/0.png");
  EXPECT_EQ(ok(import("/data/dfb/ff/0.png", "/data/dfb/", {})), "ff/0.png");
  EXPECT_EQ(ok(import("/data/dfb/./ff//0.png", "/data/x/../dfb", {})), "ff/0.png");
  EXPECT_EQ(ok(import("/data/dfb/ff/0.png", "/", {})), "data/dfb/ff/0.png");
  const std::string cwd = std::filesystem::current_path().generic_string();
  EXPECT_EQ(ok(import(cwd + "/rel/ff/0.png", "rel", {})), "ff/0.png");  // a relative root
  // Relative paths stay as they are (backslashes normalised) unless they climb out.
  EXPECT_EQ(ok(import("ff\\0.png", "/data", {})), "ff/0.png");
  // Outside: an error naming the file, the entry and the path.
  StatusOr<std::string> r = import("/data/dfb/../other/0.png", "/data/dfb", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind(dir.path() + "/j.json: at D/D_real/test/v: frame path "
                                                    "/data/dfb/../other/0.png is outside --root "
                                                    "/data/dfb",
                                       0),
            0u)
      << r.status().message();
  EXPECT_NE(ok(import("/data/dfbx/0.png", "/data/dfb", {})).find("outside --root /data/dfb"),
            std::string::npos);
  EXPECT_NE(ok(import("../0.png", "/data", {})).find("frame path ../0.png leaves the root"),
            std::string::npos);
  EXPECT_NE(ok(import("/data/0.png", "", {})).find("but no --root was given"), std::string::npos);
  EXPECT_NE(ok(import("D:\\DeepfakeBench\\ff\\0.png", "/data", {}))
                .find("frame path D:/DeepfakeBench/ff/0.png is outside --root /data"),
            std::string::npos);
  // --rebase maps another machine's folders; whole components only; the longest OLD wins.
  EXPECT_EQ(ok(import("D:\\DeepfakeBench\\ff\\0.png", "/data", {"D:\\DeepfakeBench=/data/dfb"})),
            "dfb/ff/0.png");
  EXPECT_EQ(
      ok(import("/home/me/df/ff/0.png", "/data", {"/home/me=/data/a", "/home/me/df/=/data/b"})),
      "b/ff/0.png");
  EXPECT_EQ(ok(import("/home/me/df/ff/0.png", "/data", {"/home/me/df=ds"})), "ds/ff/0.png");
  EXPECT_EQ(ok(import("/ff/0.png", "/data", {"/=/data/dfb/"})), "dfb/ff/0.png");
  EXPECT_NE(
      ok(import("/mnt/ff/0.png", "/data", {"/mnt=/"})).find("frame path /ff/0.png is outside"),
      std::string::npos);
  EXPECT_NE(ok(import("/home/me2/0.png", "/data", {"/home/me=/data"}))
                .find("frame path /home/me2/0.png is outside --root /data"),
            std::string::npos);
  // Rebased but still outside: named after rebasing.
  EXPECT_NE(ok(import("/home/me/0.png", "/data", {"/home/me=/srv"}))
                .find("frame path /srv/0.png is outside --root /data"),
            std::string::npos);
  EXPECT_NE(ok(import("/x.png", "/data", {"=/data"})).find("expected OLD=NEW"), std::string::npos);
  EXPECT_NE(ok(import("/x.png", "/data", {"/home"})).find("expected OLD=NEW"), std::string::npos);
  EXPECT_NE(ok(import("/x.png", "/data", {"/home="})).find("expected OLD=NEW"), std::string::npos);
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

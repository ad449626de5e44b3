// The paper's sweeps (sweeps/paper/*.toml) against manifests: every DF40 eval set selects the
// methods Sec. 5.1 and App. A.2 describe from a DeepfakeBench import, through the same path a
// trial takes (sweep -> trial config -> FilterFromJson -> Matches), and every eval set of the
// demo's synthetic MMI-DD has both classes where the paper's has.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "sweeps/sweep.h"
#include "worker/data/importers.h"
#include "worker/data/manifest.h"
#include "worker/data/synth.h"
#include "worker/data/test_util.h"

namespace sd2::worker::data {
namespace {

using testing::Df40Json;
using testing::kDf40Names;
using testing::TempDir;
using testing::WriteText;

const std::string kSource = SD2_SOURCE_DIR;

std::vector<std::string> PaperSweepFiles() {
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(kSource + "/sweeps/paper")) {
    if (e.path().extension() == ".toml") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// name -> filter object of every eval set of every trial of the file (the sets are shared by
// the trials of a sweep; probes bring their own).
std::map<std::string, nlohmann::json> EvalSets(const std::string& file, const std::string& data) {
  std::map<std::string, nlohmann::json> sets;
  StatusOr<sweeps::SweepSpec> spec = sweeps::LoadSweepFile(file);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return sets;
  sweeps::ExpandOptions o;
  o.vars["SD2_DATA"] = data;
  o.vars["SD2_CLIP"] = "/models/clip";  // placeholders: expansion does not open them
  o.vars["SD2_XCEPTION"] = "/models/xception.safetensors";
  StatusOr<std::vector<sweeps::Trial>> trials = sweeps::Expand(*spec, o);
  EXPECT_TRUE(trials.ok()) << trials.status();
  if (!trials.ok()) return sets;
  for (const sweeps::Trial& t : *trials) {
    for (const auto& e : t.config["eval"]) sets[e["name"].get<std::string>()] = e;
  }
  return sets;
}

struct Selected {
  std::set<std::string> methods, domains, subsets;
  int real = 0, fake = 0;
};

Selected Select(const nlohmann::json& eval, const std::vector<Record>& records) {
  Selected s;
  StatusOr<Filter> f = FilterFromJson(eval);
  EXPECT_TRUE(f.ok()) << f.status();
  if (!f.ok()) return s;
  for (const Record& r : records) {
    if (!Matches(*f, r)) continue;
    s.methods.insert(r.method);
    s.domains.insert(r.domain);
    s.subsets.insert(r.subset);
    (r.type == "REAL" ? s.real : s.fake)++;
  }
  return s;
}

const std::set<std::string> kKnownFs = {"FSGAN",      "FaceSwap",  "SimSwap",
                                        "InSwapper",  "BlendFace", "UniFace",
                                        "MobileSwap", "e4s",       "FaceDancer"};
const std::set<std::string> kKnownFr = {"FOMM",    "FS_vid2vid", "Wav2Lip", "MRAA",
                                        "OneShot", "PIRender",   "TPSM",    "LIA",
                                        "DaGAN",   "SadTalker",  "MCNet",   "HyperReenact"};
const std::set<std::string> kKnownEfs = {"VQGAN",    "StyleGAN2", "StyleGAN3", "StyleGAN-XL",
                                         "SD-2.1",   "DDPM",      "RDDM",      "PixArt-alpha",
                                         "DiT-XL/2", "SiT-XL/2"};
const std::set<std::string> kKnownFe = {"e4e"};

std::set<std::string> Union(std::initializer_list<std::set<std::string>> sets) {
  std::set<std::string> out;
  for (const auto& s : sets) out.insert(s.begin(), s.end());
  return out;
}

TEST(PaperEvalSetsTest, Df40SetsSelectThePapersMethods) {
  TempDir dir;
  const std::string root = dir.path() + "/data";
  for (const char* n : kDf40Names)
    WriteText(dir.path() + "/json/" + n + ".json", Df40Json(n, root));
  // Rows of other datasets must stay out of every DF40 set.
  WriteText(dir.path() + "/json/FaceForensics++.json",
            R"({"FaceForensics++": {"FF-real": {"test": {"000": {"label": "FF-real",
                "frames": ["ff/000/0.png"]}}}, "FF-DF": {"test": {"001": {"label": "FF-DF",
                "frames": ["ff/001/0.png"]}}}}})");
  StatusOr<Df40Table> table = LoadDf40Table(kSource + "/data/df40_methods.toml");
  ASSERT_TRUE(table.ok()) << table.status();
  DeepfakeBenchOptions o;
  o.json_path = dir.path() + "/json";
  o.root = root;
  o.df40 = *table;
  StatusOr<std::vector<Record>> recs = ImportDeepfakeBench(o);
  ASSERT_TRUE(recs.ok()) << recs.status();

  const std::set<std::string> known = Union({kKnownFs, kKnownFr, kKnownEfs, kKnownFe});
  ASSERT_EQ(known.size(), 32u);
  const std::map<std::string, std::set<std::string>> expected = {
      {"DF40-FF", known},
      {"DF40-CDF", known},
      {"DF40-FS", kKnownFs},
      {"DF40-FR", kKnownFr},
      {"DF40-EFS", kKnownEfs},
      {"DF40-FE", kKnownFe},
      {"DF40-Test-FS", {"DeepFaceLab"}},
      {"DF40-Test-FR", {"HeyGen"}},
      {"DF40-Test-EFS", {"MidJourney6", "WhichisReal"}},
      {"DF40-Test-FE", {"CollabDiff", "StarGAN", "StarGANv2", "StyleCLIP"}}};
  int files_with_df40 = 0;
  for (const std::string& file : PaperSweepFiles()) {
    const std::map<std::string, nlohmann::json> sets = EvalSets(file, dir.path());
    if (!sets.count("DF40-FF")) continue;
    ++files_with_df40;
    for (const auto& [name, methods] : expected) {
      SCOPED_TRACE(file + " " + name);
      ASSERT_TRUE(sets.count(name));
      const Selected s = Select(sets.at(name), *recs);
      EXPECT_EQ(s.methods, methods);
      // Each method with its real images.
      EXPECT_EQ(s.real, static_cast<int>(s.subsets.size()));
      EXPECT_EQ(s.fake, 2 * static_cast<int>(s.subsets.size()));
    }
    // By domain: one dataset name per known method, all of that domain.
    for (const std::string d : {"FF", "CDF"}) {
      const Selected s = Select(sets.at("DF40-" + d), *recs);
      EXPECT_EQ(s.domains, std::set<std::string>{d});
      EXPECT_EQ(s.subsets.size(), 32u);
    }
    // By type: both domains (FE: e4e_ff, e4e_cdf and the bare e4e).
    EXPECT_EQ(Select(sets.at("DF40-FS"), *recs).subsets.size(), 18u);
    EXPECT_EQ(Select(sets.at("DF40-FE"), *recs).domains,
              (std::set<std::string>{"CDF", "CelebA", "FF"}));
    EXPECT_EQ(Select(sets.at("DF40-Test-EFS"), *recs).domains, std::set<std::string>{"FFHQ"});
  }
  // Tables 2/3, 5 and 6, and Table 4 through its encoder trials (those of Tables 2/3).
  EXPECT_EQ(files_with_df40, 4);
}

TEST(PaperEvalSetsTest, SyntheticSetHasBothClassesWhereThePaperHas) {
  TempDir dir;
  SynthOptions so;
  so.out_dir = dir.path();
  so.images = 1800;
  so.seed = 5;
  so.image_size = 16;
  so.threads = 2;
  StatusOr<SynthSummary> s = Synthesize(so);
  ASSERT_TRUE(s.ok()) << s.status();
  StatusOr<std::vector<Record>> recs = ReadManifest(s->manifest);
  ASSERT_TRUE(recs.ok()) << recs.status();
  int sets_checked = 0;
  for (const std::string& file : PaperSweepFiles()) {
    for (const auto& [name, eval] : EvalSets(file, dir.path())) {
      SCOPED_TRACE(file + " " + name);
      const Selected sel = Select(eval, *recs);
      EXPECT_GT(sel.fake, 0);
      // TIMIT has fake images only (Table 7 reports its ACC alone); every other set has both.
      if (name.rfind("TIMIT", 0) != 0) {
        EXPECT_GT(sel.real, 0);
      }
      ++sets_checked;
    }
  }
  EXPECT_GE(sets_checked, 20 * 3 + 8);
  // The DF40 sets select by the new fields, not by subset names.
  const auto sets = EvalSets(kSource + "/sweeps/paper/table6_scaling.toml", dir.path());
  const Selected ff = Select(sets.at("DF40-FF"), *recs);
  EXPECT_EQ(ff.domains, std::set<std::string>{"FF"});
  EXPECT_EQ(ff.subsets, (std::set<std::string>{"FF", "FS", "FR", "EFS", "FE"}));
  EXPECT_EQ(Select(sets.at("DF40-Test-FE"), *recs).subsets, std::set<std::string>{"FE"});
}

}  // namespace
}  // namespace sd2::worker::data

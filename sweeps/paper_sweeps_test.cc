// The shipped sweep files: they validate and expand, and the paper's 3M trials are shared.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "sweeps/sweep.h"

namespace sd2::sweeps {
namespace {

using nlohmann::json;

const std::string kSweeps = std::string(SD2_SOURCE_DIR) + "/sweeps/";

constexpr const char* kClip = "/models/clip-vit-large-patch14";
constexpr const char* kXception = "/models/xception.safetensors";

// The paper's variables; `demo` adds what `sd2ctl demo` changes (cli/cmd_demo.cc): no weights
// (empty paths), random initialisation allowed, tiny models, small scales.
ExpandOptions Options(bool demo) {
  ExpandOptions o;
  o.vars["SD2_DATA"] = "/data/mmi-dd";
  o.vars["SD2_CLIP"] = kClip;
  o.vars["SD2_XCEPTION"] = kXception;
  if (demo) {
    o.vars["SD2_CLIP"] = "";
    o.vars["SD2_XCEPTION"] = "";
    o.allow_random_init = true;
    o.scale_map = {{100000, 300}, {1000000, 3000}, {3000000, 9000}};
    o.overrides = json::parse(R"({"model": "tiny", "hparams": {"steps": 40}})");
  }
  return o;
}

std::vector<Trial> Load(const std::string& rel, bool demo = false) {
  auto spec = LoadSweepFile(kSweeps + rel);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return {};
  auto trials = Expand(*spec, Options(demo));
  EXPECT_TRUE(trials.ok()) << trials.status();
  return trials.ok() ? *trials : std::vector<Trial>{};
}

// method/scale/seed/ablation → key, for trials with every SD2 switch on.
std::map<std::string, std::string> FullModelKeys(const std::vector<Trial>& trials) {
  std::map<std::string, std::string> out;
  for (const auto& t : trials) {
    if (t.method == "probe") continue;
    if (t.config.contains("ablation") &&
        t.config["ablation"] != json({{"clam", true}, {"ld_face", true}, {"ld_env", true}}))
      continue;
    out[t.method + "/" + std::to_string(t.scale) + "/" + std::to_string(t.seed)] = t.key;
  }
  return out;
}

std::set<std::string> EvalNames(const Trial& t) {
  std::set<std::string> out;
  for (const auto& e : t.config["eval"]) out.insert(e["name"].get<std::string>());
  return out;
}

const std::vector<std::string> kSevenMethods = {"xception",  "recce",    "spsl", "clip",
                                                "clip_lora", "clip_svd", "sd2"};

TEST(PaperSweepsTest, EveryShippedFileValidatesAndExpands) {
  size_t files = 0;
  for (const auto& dir : {kSweeps + "paper", kSweeps}) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().extension() != ".toml") continue;
      ++files;
      for (bool demo : {false, true}) {
        auto spec = LoadSweepFile(e.path().string());
        ASSERT_TRUE(spec.ok()) << spec.status();
        auto trials = Expand(*spec, Options(demo));
        ASSERT_TRUE(trials.ok()) << trials.status();
        EXPECT_FALSE(trials->empty()) << e.path();
        // Without SD2_DATA the files name the missing variable.
        EXPECT_NE(Expand(*spec).status().message().find("undefined variable ${SD2_DATA}"),
                  std::string::npos);
        // Each weight variable is required too, named at its position.
        for (const char* var : {"SD2_CLIP", "SD2_XCEPTION"}) {
          ExpandOptions without = Options(false);
          without.vars.erase(var);
          auto status = Expand(*spec, without).status();
          bool uses = spec->text.find(std::string("${") + var + "}") != std::string::npos ||
                      spec->text.find("encoder = \"table2_3") != std::string::npos;
          if (!uses) {
            EXPECT_TRUE(status.ok()) << e.path() << " " << var << ": " << status;
            continue;
          }
          EXPECT_NE(status.message().find(std::string("undefined variable ${") + var + "}"),
                    std::string::npos)
              << e.path() << ": " << status;
        }
        for (const Trial& t : *trials) {
          // Demo trials start from random weights by choice; the paper's never do.
          EXPECT_EQ(t.config.contains("allow_random_init"), demo && NeedsPretrained(t.method))
              << e.path() << " " << t.label;
          EXPECT_EQ(t.config["hparams"].contains("pretrained"), !demo && NeedsPretrained(t.method))
              << e.path() << " " << t.label;
        }
      }
    }
  }
  EXPECT_EQ(files, 5u);  // four paper files + ablation.toml
}

// The CNN baselines start from ImageNet Xception, the CLIP family, UnivFD and SD2 from CLIP
// ViT-L/14; probes read their encoders' weights (config.probe.of) and have no path of their own.
TEST(PaperSweepsTest, PretrainedWeightsForExactlyThePapersMethods) {
  const std::map<std::string, std::string> want = {
      {"xception", kXception}, {"recce", kXception}, {"spsl", kXception}, {"clip", kClip},
      {"clip_lora", kClip},    {"clip_svd", kClip},  {"sd2", kClip},      {"univfd", kClip}};
  std::set<std::string> seen;
  for (const char* file :
       {"paper/table2_3_intra_cross_3m.toml", "paper/table4_genimage_probe.toml",
        "paper/table5_ablation.toml", "paper/table6_scaling.toml", "ablation.toml"}) {
    auto trials = Load(file);
    ASSERT_FALSE(trials.empty()) << file;
    for (const Trial& t : trials) {
      seen.insert(t.method);
      const json& hp = t.config["hparams"];
      if (t.method == "probe") {
        EXPECT_FALSE(hp.contains("pretrained")) << file << " " << t.label;
        continue;
      }
      ASSERT_TRUE(want.count(t.method)) << t.method;
      EXPECT_EQ(hp.value("pretrained", ""), want.at(t.method)) << file << " " << t.label;
      EXPECT_FALSE(t.config.contains("allow_random_init")) << file << " " << t.label;
    }
  }
  EXPECT_EQ(seen.size(), want.size() + 1);  // every method of the paper, and probe
}

TEST(PaperSweepsTest, Table2And3HasTheSevenMethodsAndThePapersColumns) {
  auto trials = Load("paper/table2_3_intra_cross_3m.toml");
  ASSERT_EQ(trials.size(), 7u);
  std::set<std::string> expected = {// Table 2 (and 7) columns, from paper/reported.toml.
                                    "DF40-FF", "DF40-CDF", "DF40-FS", "DF40-FR", "DF40-EFS",
                                    "DF40-FE", "DFF", "DFFD", "DFDCP", "KoDF", "FF++ (c40)",
                                    // Table 7 only.
                                    "TIMIT (HQ)", "TIMIT (LQ)",
                                    // Table 3 (and 8) columns.
                                    "UADFV", "WildDeepFake", "DFDC", "DF40-Test-FS", "DF40-Test-FR",
                                    "DF40-Test-EFS", "DF40-Test-FE"};
  for (size_t i = 0; i < trials.size(); ++i) {
    EXPECT_EQ(trials[i].method, kSevenMethods[i]);
    EXPECT_EQ(trials[i].scale, 3000000);
    EXPECT_EQ(EvalNames(trials[i]), expected);
  }
  // DF40's sets select by domain, by the method's forgery type and by known vs test-only (Sec.
  // 5.1, App. A.2); worker/data's paper_eval_sets_test checks what they select.
  int df40_sets = 0;
  for (const auto& e : trials[0].config["eval"]) {
    if (e["name"] == "DF40-Test-EFS") {
      ++df40_sets;
      EXPECT_EQ(e, json::parse(R"({"name":"DF40-Test-EFS","split":"test","datasets":["DF40-Test"],
                                   "subsets":[],"types":[],"method_types":["EFS"],
                                   "known":false})"));
    }
    if (e["name"] == "DF40-CDF") {
      ++df40_sets;
      EXPECT_EQ(e, json::parse(R"({"name":"DF40-CDF","split":"test","datasets":["DF40"],
                                   "subsets":[],"types":[],"domains":["CDF"],"known":true})"));
    }
    if (e["name"] == "DF40-FR") {
      ++df40_sets;
      EXPECT_EQ(e, json::parse(R"({"name":"DF40-FR","split":"test","datasets":["DF40"],
                                   "subsets":[],"types":[],"method_types":["FR"],
                                   "known":true})"));
    }
    if (e["name"] == "UADFV") {  // the other sets' configs (and keys) do not change
      ++df40_sets;
      EXPECT_EQ(e, json::parse(R"({"name":"UADFV","split":"test","datasets":["UADFV"],
                                   "subsets":[],"types":[]})"));
    }
  }
  EXPECT_EQ(df40_sets, 4);
  const json& sd2 = trials[6].config["hparams"];
  EXPECT_EQ(sd2["optimizer"], "adamw");
  EXPECT_EQ(sd2["lr"].dump(), "5e-07");
  EXPECT_EQ(sd2["batch_size"], 512);
  EXPECT_EQ(trials[6].resources, json({{"ranks", 8}, {"gpus_per_rank", 1}}));
}

TEST(PaperSweepsTest, The3MTrialsAreSharedBetweenTables) {
  for (bool demo : {false, true}) {
    auto t23 = FullModelKeys(Load("paper/table2_3_intra_cross_3m.toml", demo));
    auto t6 = FullModelKeys(Load("paper/table6_scaling.toml", demo));
    auto t5 = FullModelKeys(Load("paper/table5_ablation.toml", demo));
    int64_t s3m = demo ? 9000 : 3000000;
    ASSERT_EQ(t23.size(), 7u);
    ASSERT_EQ(t6.size(), 21u);
    for (const auto& m : kSevenMethods) {
      std::string k = m + "/" + std::to_string(s3m) + "/0";
      ASSERT_TRUE(t23.count(k) && t6.count(k)) << k;
      EXPECT_EQ(t23.at(k), t6.at(k)) << k;
    }
    std::string sd2 = "sd2/" + std::to_string(s3m) + "/0";
    ASSERT_EQ(t5.size(), 1u);
    EXPECT_EQ(t5.at(sd2), t23.at(sd2));
  }
}

TEST(PaperSweepsTest, Table5HasThePapersFourRows) {
  auto trials = Load("paper/table5_ablation.toml");
  std::vector<json> rows;
  for (const auto& t : trials) rows.push_back(t.config["ablation"]);
  EXPECT_EQ(rows, (std::vector<json>{
                      {{"clam", true}, {"ld_face", true}, {"ld_env", true}},
                      {{"clam", true}, {"ld_face", true}, {"ld_env", false}},
                      {{"clam", true}, {"ld_face", false}, {"ld_env", false}},
                      {{"clam", false}, {"ld_face", false}, {"ld_env", false}},
                  }));
}

TEST(PaperSweepsTest, Table4ProbesTheTable2And3Encoders) {
  auto t4 = Load("paper/table4_genimage_probe.toml");
  auto t23 = FullModelKeys(Load("paper/table2_3_intra_cross_3m.toml"));
  std::set<std::string> probed;
  size_t univfd = 0;
  for (const auto& t : t4) {
    if (t.method == "univfd") ++univfd;
    if (t.method != "probe") continue;
    std::string enc = t.config["probe"]["encoder_method"];
    probed.insert(enc);
    EXPECT_EQ(t.depends_on, t23.at(enc + "/3000000/0"));
    EXPECT_EQ(t.config["probe"]["of"], t.depends_on);
    EXPECT_EQ(EvalNames(t), (std::set<std::string>{"Midjourney", "SD v1.4", "SD v1.5", "ADM",
                                                   "GLIDE", "Wukong", "VQDM", "BigGAN"}));
    EXPECT_EQ(t.config["data"]["train"]["subsets"], json::array({"SD v1.4"}));
  }
  EXPECT_EQ(probed, (std::set<std::string>{"sd2", "clip_svd", "clip"}));
  EXPECT_EQ(univfd, 1u);
  EXPECT_EQ(t4.size(), 7u);  // univfd + 3 encoders + 3 probes
}

TEST(PaperSweepsTest, AblationExampleCounts) {
  auto trials = Load("ablation.toml");
  EXPECT_EQ(trials.size(), 25u);
  EXPECT_EQ(trials.back().label, "clip_lora 100K seed0");
  EXPECT_EQ(trials.front().config["hparams"]["epochs"], 2);
}

}  // namespace
}  // namespace sd2::sweeps

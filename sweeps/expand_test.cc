// Expand: product order, excludes/includes, overrides, scale maps, variables, probes, keys.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "sweeps/sweep.h"

namespace sd2::sweeps {
namespace {

using nlohmann::json;

const std::string kGoodDir = std::string(SD2_SOURCE_DIR) + "/sweeps/testdata/good/";

std::string Base(const std::string& head, const std::string& extra = "") {
  return head + R"(
[data]
manifest = "${SD2_DATA}/manifest.jsonl"

[resources]
ranks = 2
gpus_per_rank = 1

[[eval]]
name = "UADFV"
datasets = ["UADFV"]

[[eval]]
name = "DFDC"
datasets = ["DFDC"]
)" + extra;
}

ExpandOptions DataVars() {
  ExpandOptions o;
  o.vars["SD2_DATA"] = "/data/mmi";
  return o;
}

std::vector<Trial> MustExpand(const std::string& text, const ExpandOptions& options = DataVars(),
                              const std::string& file = "t.toml") {
  auto spec = ParseSweep(text, file);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return {};
  auto trials = Expand(*spec, options);
  EXPECT_TRUE(trials.ok()) << trials.status();
  return trials.ok() ? *trials : std::vector<Trial>{};
}

std::vector<std::string> Labels(const std::vector<Trial>& trials) {
  std::vector<std::string> out;
  for (const auto& t : trials) out.push_back(t.label);
  return out;
}

std::map<std::string, std::string> KeysByLabel(const std::vector<Trial>& trials) {
  std::map<std::string, std::string> out;
  for (const auto& t : trials) out[t.label] = t.key;
  return out;
}

TEST(ExpandTest, ProductInFileOrderWithAblationsForSd2Only) {
  auto trials = MustExpand(Base(R"(name = "p"
methods = ["xception", "sd2"]
scales = ["100K", "1M"]
seeds = [0, 1]
[ablation]
clam = [true, false]
)"));
  EXPECT_EQ(Labels(trials), (std::vector<std::string>{
                                "xception 100K seed0", "xception 100K seed1", "xception 1M seed0",
                                "xception 1M seed1", "sd2 100K seed0", "sd2 100K seed0 clam=off",
                                "sd2 100K seed1", "sd2 100K seed1 clam=off", "sd2 1M seed0",
                                "sd2 1M seed0 clam=off", "sd2 1M seed1", "sd2 1M seed1 clam=off"}));
  for (const auto& t : trials) {
    EXPECT_EQ(t.key.size(), 16u);
    EXPECT_EQ(t.key, TrialKey(t.config));
    EXPECT_EQ(t.config["method"], t.method);
    EXPECT_EQ(t.config["scale"], t.scale);
    EXPECT_EQ(t.config["seed"], t.seed);
    EXPECT_EQ(t.resources, json({{"ranks", 2}, {"gpus_per_rank", 1}}));
    EXPECT_FALSE(t.config.contains("resources"));
    EXPECT_EQ(t.config.contains("ablation"), t.method == "sd2");
    EXPECT_EQ(t.config.contains("variant"), t.method == "sd2");
    EXPECT_EQ(t.config["model"], t.method == "sd2" ? "vit_l14" : "xception");
    EXPECT_EQ(t.config["data"]["manifest"], "/data/mmi/manifest.jsonl");
    EXPECT_EQ(t.config["data"]["root"], "/data/mmi");
    EXPECT_TRUE(t.depends_on.empty());
  }
  EXPECT_EQ(trials[5].config["ablation"],
            json({{"clam", false}, {"ld_face", true}, {"ld_env", true}}));
  // Eval sets sorted by name in the config.
  EXPECT_EQ(trials[0].config["eval"][0]["name"], "DFDC");
  EXPECT_EQ(trials[0].config["eval"][1]["name"], "UADFV");
  EXPECT_EQ(trials[0].config["eval"][1],
            json::parse(
                R"({"name":"UADFV","split":"test","datasets":["UADFV"],"subsets":[],"types":[]})"));
}

TEST(ExpandTest, ExcludesRemoveAndIncludesAppend) {
  auto trials = MustExpand(Base(R"(name = "x"
methods = ["clip", "sd2"]
scales = ["100K", "1M"]
[[exclude]]
method = "sd2"
scale = "1M"
[[exclude]]
scale = 100000
method = "clip"
[[include]]
method = "sd2"
scale = "3M"
seed = 4
ld_env = false
[[include]]
method = "smoke"
scale = 300
seed = 0
)"));
  EXPECT_EQ(Labels(trials),
            (std::vector<std::string>{"clip 1M seed0", "sd2 100K seed0", "sd2 3M seed4 ld_env=off",
                                      "smoke 300 seed0"}));
  EXPECT_EQ(trials[3].config["model"], "tiny");
  EXPECT_EQ(trials[3].config["hparams"]["optimizer"], "sgd");
}

TEST(ExpandTest, IncludeRepeatingAProductTrialIsAnError) {
  auto spec = ParseSweep(Base("name = \"d\"\nmethods = [\"clip\"]\nscales = [\"1M\"]\n"
                              "[[include]]\nmethod = \"clip\"\nscale = \"1M\"\nseed = 0\n"),
                         "d.toml");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message(),
            "d.toml:4:1: 'include[0]' repeats a trial already in the sweep");
}

TEST(ExpandTest, ScaleMapAndOverrides) {
  const std::string text =
      Base("name = \"o\"\nmethods = [\"sd2\", \"xception\"]\nscales = [\"100K\", \"3M\"]\n");
  auto plain = MustExpand(text);
  ExpandOptions o = DataVars();
  o.scale_map = {{100000, 300}, {3000000, 9000}};
  o.overrides = json::parse(R"({"model": "tiny", "hparams": {"steps": 40, "weight_decay": null}})");
  auto demo = MustExpand(text, o);
  ASSERT_EQ(demo.size(), 4u);
  ASSERT_EQ(plain.size(), 4u);
  EXPECT_EQ(Labels(demo), (std::vector<std::string>{"sd2 300 seed0", "sd2 9K seed0",
                                                    "xception 300 seed0", "xception 9K seed0"}));
  for (size_t i = 0; i < demo.size(); ++i) {
    EXPECT_EQ(demo[i].config["model"], "tiny");
    EXPECT_EQ(demo[i].config["hparams"]["steps"], 40);
    EXPECT_FALSE(demo[i].config["hparams"].contains("weight_decay"));
    // Deep merge keeps the other hyper-parameters.
    EXPECT_EQ(demo[i].config["hparams"]["lr"], plain[i].config["hparams"]["lr"]);
    EXPECT_NE(demo[i].key, plain[i].key);
    EXPECT_EQ(demo[i].key, TrialKey(demo[i].config));
  }
  EXPECT_EQ(demo[1].scale, 9000);
  EXPECT_EQ(demo[1].config["scale"], 9000);

  ExpandOptions bad = DataVars();
  bad.overrides = json::array();
  auto spec = ParseSweep(text, "o.toml");
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE(Expand(*spec, bad).ok());
  bad = DataVars();
  bad.scale_map = {{100000, 0}};
  EXPECT_FALSE(Expand(*spec, bad).ok());
}

TEST(ExpandTest, KeysAreStableAndTrackOnlyWhatIsTrained) {
  const std::string head =
      "name = \"k\"\nmethods = [\"clip\", \"sd2\"]\nscales = [\"1M\"]\npriority = 1\n";
  auto base = KeysByLabel(MustExpand(Base(head)));
  ASSERT_EQ(base.size(), 2u);
  // Same text, fresh parse: same keys.
  EXPECT_EQ(KeysByLabel(MustExpand(Base(head))), base);

  // Not trained: name, description, priority, resources, eval order, the file name.
  std::string cosmetic = Base(
      "name = \"other\"\ndescription = \"words\"\nmethods = [\"clip\", \"sd2\"]\n"
      "scales = [1000000]\npriority = 9\n");
  cosmetic.replace(cosmetic.find("ranks = 2"), 9, "ranks = 16");
  std::string uadfv = "[[eval]]\nname = \"UADFV\"\ndatasets = [\"UADFV\"]\n";
  size_t at = cosmetic.find(uadfv);
  ASSERT_NE(at, std::string::npos);
  cosmetic.erase(at, uadfv.size());
  cosmetic += "\n" + uadfv;
  EXPECT_EQ(KeysByLabel(MustExpand(cosmetic, DataVars(), "elsewhere/x.toml")), base);

  // Trained: each of these changes the key of the trials it touches, and only those.
  struct Change {
    std::string extra;
    bool clip_changes;
    bool sd2_changes;
  };
  for (const Change& c : std::vector<Change>{
           {"[hparams.sd2]\nlr = 1e-6\n", false, true},
           {"[hparams]\nepochs = 3\n", true, true},
           {"[hparams.clip]\nbatch_size = 64\n", true, false},
           {"[variant]\nlc_reduction = \"sum\"\n", false, true},
           {"[model]\nclip = \"vit_b16\"\n", true, false},
           {"[ablation]\nld_face = false\n", false, true},
           {"[[eval]]\nname = \"KoDF\"\ndatasets = [\"KoDF\"]\n", true, true},
           {"[data.train]\ndatasets = [\"DF40\"]\n", true, true},
       }) {
    std::string text = Base(head);
    // [data.train] must follow [data]; everything else can go at the end.
    if (c.extra.rfind("[data.train]", 0) == 0) {
      text.insert(text.find("[resources]"), c.extra + "\n");
    } else {
      text += c.extra;
    }
    auto keys = MustExpand(text);
    ASSERT_EQ(keys.size(), 2u) << c.extra;
    EXPECT_EQ(keys[0].key != base.at("clip 1M seed0"), c.clip_changes) << c.extra;
    EXPECT_EQ(keys[1].key != base.at("sd2 1M seed0"), c.sd2_changes) << c.extra;
  }
  // Scale, seed and the manifest are trained too.
  auto seeds = MustExpand(
      Base("name = \"k\"\nmethods = [\"clip\"]\nscales = [\"1M\", \"3M\"]\nseeds = [0, 1]\n"));
  std::set<std::string> distinct;
  for (const auto& t : seeds) distinct.insert(t.key);
  EXPECT_EQ(distinct.size(), 4u);
  ExpandOptions other_data;
  other_data.vars["SD2_DATA"] = "/data/other";
  EXPECT_NE(KeysByLabel(MustExpand(Base(head), other_data)), base);
}

TEST(ExpandTest, VariablesAndPaths) {
  std::string text = R"(name = "v"
methods = ["clip"]
scales = ["1M"]
[data]
manifest = "${ROOT}/${SET}/m.jsonl"
manifest_digest = "${DIGEST}"
[data.train]
datasets = ["${SET}"]
[[eval]]
name = "${SET}-test"
)";
  auto spec = ParseSweep(text, "v.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ExpandOptions o;
  o.vars = {{"ROOT", "/srv"}, {"SET", "DF40"}, {"DIGEST", std::string(64, 'a')}};
  auto trials = Expand(*spec, o);
  ASSERT_TRUE(trials.ok()) << trials.status();
  const json& data = (*trials)[0].config["data"];
  EXPECT_EQ(data["manifest"], "/srv/DF40/m.jsonl");
  EXPECT_EQ(data["root"], "/srv/DF40");
  EXPECT_EQ(data["manifest_digest"], std::string(64, 'a'));
  EXPECT_EQ(data["train"]["datasets"], json::array({"DF40"}));
  EXPECT_EQ((*trials)[0].config["eval"][0]["name"], "DF40-test");

  o.vars.erase("SET");
  auto missing = Expand(*spec, o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "v.toml:5:1: undefined variable ${SET}\n"
            "v.toml:8:13: undefined variable ${SET}\n"
            "v.toml:10:1: undefined variable ${SET}");
  o.vars["SET"] = "DF40";
  o.vars["DIGEST"] = "xyz";
  auto digest = Expand(*spec, o);
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().message(),
            "v.toml:6:1: 'data.manifest_digest' must be 64 lower-case hex digits (SHA-256), got "
            "\"xyz\"");

  // A relative manifest becomes absolute (against the working directory).
  auto rel = MustExpand(Base("name = \"r\"\nmethods = [\"clip\"]\nscales = [\"1M\"]\n"), [] {
    ExpandOptions r;
    r.vars["SD2_DATA"] = "rel/dir";
    return r;
  }());
  ASSERT_EQ(rel.size(), 1u);
  EXPECT_EQ(rel[0].config["data"]["manifest"],
            (std::filesystem::current_path() / "rel/dir/manifest.jsonl").string());
}

TEST(ExpandTest, ProbesIncludeTheirEncodersAndDependOnThem) {
  auto spec = LoadSweepFile(kGoodDir + "probe.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ExpandOptions o = DataVars();
  auto trials = Expand(*spec, o);
  ASSERT_TRUE(trials.ok()) << trials.status();
  EXPECT_EQ(Labels(*trials),
            (std::vector<std::string>{"univfd 3M seed0", "clip 3M seed0", "probe of clip 3M seed0",
                                      "sd2 3M seed0", "probe of sd2 3M seed0"}));
  auto enc_spec = LoadSweepFile(kGoodDir + "encoder.toml");
  ASSERT_TRUE(enc_spec.ok());
  auto encoders = KeysByLabel(*Expand(*enc_spec, o));
  const auto& t = *trials;
  EXPECT_EQ(t[1].key, encoders.at("clip 3M seed0"));
  EXPECT_EQ(t[3].key, encoders.at("sd2 3M seed0"));
  EXPECT_EQ(t[2].method, "probe");
  EXPECT_EQ(t[2].depends_on, t[1].key);
  EXPECT_EQ(t[4].depends_on, t[3].key);
  EXPECT_EQ(t[4].config["probe"]["of"], t[3].key);
  EXPECT_EQ(t[4].config["probe"]["encoder_method"], "sd2");
  EXPECT_EQ(t[4].config["probe"]["train"]["subsets"], json::array({"SD v1.4"}));
  EXPECT_EQ(t[4].config["data"]["train"]["datasets"], json::array({"GenImage"}));
  EXPECT_EQ(t[4].config["eval"][0]["name"], "ADM");
  EXPECT_EQ(t[4].config["model"], "vit_l14");
  EXPECT_EQ(t[4].config["hparams"], DefaultHparams("probe"));
  EXPECT_EQ(t[4].resources, json({{"ranks", 1}, {"gpus_per_rank", 0}}));
  // Encoder trials keep the encoder sweep's evals; probes use the probing file's.
  EXPECT_EQ(t[3].config["eval"][0]["name"], "UADFV");

  // With demo options the probe follows its encoder's new key and scale.
  o.scale_map = {{3000000, 9000}};
  o.overrides = {{"model", "tiny"}};
  auto demo = Expand(*spec, o);
  ASSERT_TRUE(demo.ok()) << demo.status();
  ASSERT_EQ(demo->size(), 5u);
  EXPECT_EQ((*demo)[4].depends_on, (*demo)[3].key);
  EXPECT_EQ((*demo)[4].scale, 9000);
  EXPECT_EQ((*demo)[4].config["model"], "tiny");
  EXPECT_NE((*demo)[3].key, t[3].key);
}

TEST(ExpandTest, DuplicateProbesAppearOnce) {
  std::string text = R"(name = "pp"
[[probe]]
encoder = "encoder.toml"
methods = ["sd2"]
[[probe]]
encoder = "encoder.toml"
methods = ["sd2"]
seeds = [1]
[data]
manifest = "/g/m.jsonl"
[[eval]]
name = "ADM"
)";
  auto spec = ParseSweep(text, kGoodDir + "inline_probe.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto trials = Expand(*spec, DataVars());
  ASSERT_TRUE(trials.ok()) << trials.status();
  // 4 sd2 encoders (2 scales x 2 seeds) and their 4 probes; the second entry adds nothing.
  EXPECT_EQ(trials->size(), 8u);
  std::set<std::string> keys;
  for (const auto& t : *trials) keys.insert(t.key);
  EXPECT_EQ(keys.size(), trials->size());
}

TEST(ExpandTest, ProbeEncoderErrorsNameBothFiles) {
  std::string text = R"(name = "pe"
[[probe]]
encoder = "missing.toml"
[data]
manifest = "/g/m.jsonl"
[[eval]]
name = "ADM"
)";
  auto spec = ParseSweep(text, kGoodDir + "pe.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto trials = Expand(*spec, DataVars());
  ASSERT_FALSE(trials.ok());
  EXPECT_EQ(trials.status().message(),
            kGoodDir + "pe.toml:3:1: cannot use probe encoder sweep 'missing.toml':\n" + kGoodDir +
                "missing.toml: cannot open: No such file or directory");
  // The encoder's own undefined variable is reported at its position in the encoder file.
  std::string literal = text;
  literal.replace(literal.find("missing.toml"), 12, "encoder.toml");
  auto enc_spec = ParseSweep(literal, kGoodDir + "pe.toml");
  ASSERT_TRUE(enc_spec.ok()) << enc_spec.status();
  auto no_vars = Expand(*enc_spec, ExpandOptions{});
  ASSERT_FALSE(no_vars.ok());
  EXPECT_EQ(no_vars.status().message(),
            kGoodDir + "pe.toml:3:1: cannot expand probe encoder sweep 'encoder.toml':\n" +
                kGoodDir + "encoder.toml:8:1: undefined variable ${SD2_DATA}");
}

TEST(FormatTrialTableTest, AlignedRowsAndCount) {
  auto trials = MustExpand(Base(
      "name = \"f\"\nmethods = [\"sd2\"]\nscales = [\"1M\"]\n[ablation]\nclam = [true, false]\n"));
  std::string table = FormatTrialTable(trials);
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = table.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(table.substr(start, nl - start));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(
      lines[0].rfind(
          "KEY               METHOD  SCALE  SEED  MODEL    RANKSxGPUS  PRIORITY  DEPENDS_ON  LABEL",
          0),
      0u)
      << lines[0];
  EXPECT_EQ(lines[1],
            trials[0].key +
                "  sd2     1M     0     vit_l14  2x1         0         -           sd2 1M seed0");
  EXPECT_EQ(lines[2].substr(0, 16), trials[1].key);
  EXPECT_EQ(lines[3], "2 trials");
  EXPECT_EQ(FormatTrialTable({}).substr(FormatTrialTable({}).find('\n') + 1), "0 trials\n");
  json j = TrialToJson(trials[1]);
  EXPECT_EQ(j["key"], trials[1].key);
  EXPECT_EQ(j["label"], "sd2 1M seed0 clam=off");
  EXPECT_EQ(j["config"], trials[1].config);
  EXPECT_EQ(j["resources"]["ranks"], 2);
}

}  // namespace
}  // namespace sd2::sweeps

namespace sd2::sweeps {
namespace {

TEST(ExpandTest, ResourceOverrideReplacesResourcesButNotKeys) {
  const std::string text = Base("name = \"r\"\nmethods = [\"xception\"]\nscales = [\"100K\"]\n");
  std::vector<Trial> plain = MustExpand(text);
  ExpandOptions o = DataVars();
  o.resources = {{"ranks", 1}, {"gpus_per_rank", 0}};
  std::vector<Trial> cpu = MustExpand(text, o);
  ASSERT_EQ(plain.size(), 1u);
  ASSERT_EQ(cpu.size(), 1u);
  EXPECT_EQ(plain[0].resources["ranks"], 2);
  EXPECT_EQ(cpu[0].resources["ranks"], 1);
  EXPECT_EQ(cpu[0].resources["gpus_per_rank"], 0);
  EXPECT_EQ(plain[0].key, cpu[0].key);

  auto spec = ParseSweep(text, "t.toml");
  ASSERT_TRUE(spec.ok());
  for (const nlohmann::json& bad : {nlohmann::json{{"ranks", 0}}, nlohmann::json{{"cores", 2}},
                                    nlohmann::json{{"gpus_per_rank", "one"}}}) {
    ExpandOptions b = DataVars();
    b.resources = bad;
    auto r = Expand(*spec, b);
    ASSERT_FALSE(r.ok()) << bad.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace sd2::sweeps

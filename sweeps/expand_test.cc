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

// The sweeps here have no pretrained weights: they opt into random initialisation (the
// AllowRandomInit tests below check what that changes).
ExpandOptions DataVars() {
  ExpandOptions o;
  o.vars["SD2_DATA"] = "/data/mmi";
  o.allow_random_init = true;
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
  ExpandOptions other_data = DataVars();
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
  o.allow_random_init = true;
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
            "v.toml:5:1: undefined variable ${SET} (define it with --var SET=VALUE or in the "
            "environment)\n"
            "v.toml:8:13: undefined variable ${SET} (define it with --var SET=VALUE or in the "
            "environment)\n"
            "v.toml:10:1: undefined variable ${SET} (define it with --var SET=VALUE or in the "
            "environment)");
  o.vars["SET"] = "DF40";
  o.vars["DIGEST"] = "xyz";
  auto digest = Expand(*spec, o);
  ASSERT_FALSE(digest.ok());
  EXPECT_EQ(digest.status().message(),
            "v.toml:6:1: 'data.manifest_digest' must be 64 lower-case hex digits (SHA-256), got "
            "\"xyz\"");

  // A relative manifest becomes absolute (against the working directory).
  auto rel = MustExpand(Base("name = \"r\"\nmethods = [\"clip\"]\nscales = [\"1M\"]\n"), [] {
    ExpandOptions r = DataVars();
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
                kGoodDir +
                "encoder.toml:10:1: undefined variable ${SD2_DATA} (define it with --var "
                "SD2_DATA=VALUE or in the environment)");
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

TEST(NeedsPretrainedTest, ThePapersSevenDetectorsAndUnivFd) {
  std::vector<std::string> needs;
  for (const auto& m : KnownMethods())
    if (NeedsPretrained(m)) needs.push_back(m);
  EXPECT_EQ(needs, (std::vector<std::string>{"xception", "recce", "spsl", "clip", "clip_lora",
                                             "clip_svd", "sd2", "univfd"}));
  EXPECT_FALSE(NeedsPretrained("smoke"));
  EXPECT_FALSE(NeedsPretrained("probe"));
}

// Expands with SD2_DATA only: no allow_random_init from the options.
StatusOr<std::vector<Trial>> ExpandStrict(const std::string& text,
                                          const ExpandOptions& extra = {}) {
  auto spec = ParseSweep(text, "r.toml");
  if (!spec.ok()) return spec.status();
  ExpandOptions o = extra;
  o.vars["SD2_DATA"] = "/data/mmi";
  return Expand(*spec, o);
}

TEST(ExpandTest, PretrainedMethodsWithoutWeightsAreRefused) {
  // One message per method (not per trial), at the method's first mention, naming the fix.
  auto r = ExpandStrict(Base(R"(name = "r"
methods = ["sd2", "xception", "smoke"]
scales = ["1M", "3M"]
[[include]]
method = "univfd"
scale = "1M"
seed = 0
)"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(
      r.status().message(),
      "r.toml:2:12: method 'sd2' starts from pretrained weights in the paper, but "
      "hparams.pretrained is empty or unset: set hparams.pretrained to a Hugging Face CLIP folder "
      "(openai/clip-vit-large-patch14), e.g. [hparams.sd2] pretrained = \"${SD2_CLIP}\", or set "
      "allow_random_init = true to train it from random weights\n"
      "r.toml:2:19: method 'xception' starts from pretrained weights in the paper, but "
      "hparams.pretrained is empty or unset: set hparams.pretrained to ImageNet Xception weights "
      "(a safetensors file from tools/convert_pth.py), e.g. [hparams.xception] pretrained = "
      "\"${SD2_XCEPTION}\", or set allow_random_init = true to train it from random weights\n"
      "r.toml:4:1: method 'univfd' starts from pretrained weights in the paper, but "
      "hparams.pretrained is empty or unset: set hparams.pretrained to a Hugging Face CLIP folder "
      "(openai/clip-vit-large-patch14), e.g. [hparams.univfd] pretrained = \"${SD2_CLIP}\", or "
      "set allow_random_init = true to train it from random weights");

  // Every such method is refused on its own; smoke never is.
  for (const auto& m : KnownMethods()) {
    auto one = ExpandStrict(Base("name = \"r\"\nmethods = [\"" + m + "\"]\nscales = [\"1M\"]\n"));
    EXPECT_EQ(one.ok(), !NeedsPretrained(m)) << m;
    if (!one.ok()) {
      EXPECT_NE(one.status().message().find("method '" + m + "' starts from pretrained"),
                std::string::npos)
          << one.status();
    }
  }

  // An empty value (e.g. --var SD2_CLIP=) is no weights; so is an override that removes them.
  const std::string with_var = Base("name = \"r\"\nmethods = [\"clip\"]\nscales = [\"1M\"]\n",
                                    "[hparams.clip]\npretrained = \"${SD2_CLIP}\"\n");
  ExpandOptions empty;
  empty.vars["SD2_CLIP"] = "";
  EXPECT_FALSE(ExpandStrict(with_var, empty).ok());
  ExpandOptions given;
  given.vars["SD2_CLIP"] = "/models/clip";
  auto ok = ExpandStrict(with_var, given);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)[0].config["hparams"]["pretrained"], "/models/clip");
  given.overrides = json::parse(R"({"hparams": {"pretrained": null}})");
  auto removed = ExpandStrict(with_var, given);
  ASSERT_FALSE(removed.ok());
  EXPECT_NE(removed.status().message().find("r.toml:2:12: method 'clip' starts from"),
            std::string::npos)
      << removed.status();
  // A probe's encoder sweep is checked by the same rules; the message names both files.
  auto spec = ParseSweep(R"(name = "p"
[[probe]]
encoder = "../bad/pretrained_missing.toml"
[data]
manifest = "/g/m.jsonl"
[[eval]]
name = "ADM"
)",
                         kGoodDir + "p.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto probe = Expand(*spec, DataVars());  // the option reaches the encoder sweep too
  EXPECT_TRUE(probe.ok()) << probe.status();
  auto strict = Expand(*spec, ExpandOptions{});
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().message().rfind(
                kGoodDir +
                    "p.toml:3:1: cannot expand probe encoder sweep '../bad/"
                    "pretrained_missing.toml':\n" +
                    std::string(SD2_SOURCE_DIR) +
                    "/sweeps/testdata/bad/pretrained_missing.toml:2:19: method 'clip' starts from "
                    "pretrained weights in the paper",
                0),
            0u)
      << strict.status();
}

TEST(ExpandTest, AllowRandomInitIsInTheKeyOnlyWhenUsed) {
  const std::string head = "name = \"a\"\nmethods = [\"clip\", \"smoke\"]\nscales = [\"1M\"]\n";
  const std::string weights = "[hparams.clip]\npretrained = \"/models/clip\"\n";
  // The reference: pretrained weights, no opt-in.
  auto base = ExpandStrict(Base(head, weights));
  ASSERT_TRUE(base.ok()) << base.status();
  ASSERT_EQ(base->size(), 2u);
  for (const auto& t : *base) EXPECT_FALSE(t.config.contains("allow_random_init")) << t.label;

  // `allow_random_init = false`, or true for trials that have weights anyway (and smoke, which
  // needs none), leaves every config and key as it was.
  for (const std::string flag : {"allow_random_init = false\n", "allow_random_init = true\n"}) {
    auto same = ExpandStrict(Base(flag + head, weights));
    ASSERT_TRUE(same.ok()) << same.status();
    EXPECT_EQ(KeysByLabel(*same), KeysByLabel(*base)) << flag;
  }

  // Without weights, the opt-in is recorded in the config and so in the key.
  auto random = ExpandStrict(Base("allow_random_init = true\n" + head));
  ASSERT_TRUE(random.ok()) << random.status();
  const Trial& clip = (*random)[0];
  EXPECT_EQ(clip.config["allow_random_init"], true);
  EXPECT_FALSE(clip.config["hparams"].contains("pretrained"));
  EXPECT_EQ(clip.key, TrialKey(clip.config));
  json without = clip.config;
  without.erase("allow_random_init");
  EXPECT_NE(clip.key, TrialKey(without));
  EXPECT_FALSE((*random)[1].config.contains("allow_random_init"));  // smoke
  EXPECT_EQ((*random)[1].key, KeysByLabel(*base).at("smoke 1M seed0"));

  // ExpandOptions::allow_random_init (the demo) and an override give the same trials.
  ExpandOptions by_option;
  by_option.allow_random_init = true;
  auto option = ExpandStrict(Base(head), by_option);
  ASSERT_TRUE(option.ok()) << option.status();
  EXPECT_EQ(KeysByLabel(*option), KeysByLabel(*random));
  ExpandOptions by_override;
  by_override.overrides = json::parse(R"({"allow_random_init": true})");
  auto over = ExpandStrict(Base(head), by_override);
  ASSERT_TRUE(over.ok()) << over.status();
  EXPECT_EQ(KeysByLabel(*over), KeysByLabel(*random));
  by_override.overrides = json::parse(R"({"allow_random_init": "yes"})");
  auto bad = ExpandStrict(Base("allow_random_init = true\n" + head), by_override);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "r.toml:3:12: 'allow_random_init' must be a boolean, got \"yes\" (overrides)\n"
            "r.toml:3:20: 'allow_random_init' must be a boolean, got \"yes\" (overrides)");

  // The key itself is typed.
  auto typed = ParseSweep(Base("allow_random_init = 1\n" + head), "r.toml");
  ASSERT_FALSE(typed.ok());
  EXPECT_EQ(typed.status().message(),
            "r.toml:1:1: 'allow_random_init' must be a boolean, got integer");
}

TEST(ExpandTest, PretrainedPathsTakeVariablesAndBecomeAbsolute) {
  // A global [hparams] value reaches every method that takes it; a per-method one wins.
  const std::string text = Base(
      "name = \"w\"\nmethods = [\"clip\", \"sd2\", \"xception\"]\n"
      "scales = [\"1M\"]\n",
      "[hparams]\npretrained = \"${W}/clip\"\n"
      "[hparams.xception]\npretrained = \"${X}\"\n");
  ExpandOptions o;
  o.vars = {{"W", "/models"}, {"X", "rel/xception.safetensors"}};
  auto trials = ExpandStrict(text, o);
  ASSERT_TRUE(trials.ok()) << trials.status();
  ASSERT_EQ(trials->size(), 3u);
  EXPECT_EQ((*trials)[0].config["hparams"]["pretrained"], "/models/clip");
  EXPECT_EQ((*trials)[1].config["hparams"]["pretrained"], "/models/clip");
  EXPECT_EQ((*trials)[2].config["hparams"]["pretrained"],
            (std::filesystem::current_path() / "rel/xception.safetensors").string());
  // The path is trained: another one changes the key.
  ExpandOptions other = o;
  other.vars["W"] = "/other";
  auto moved = ExpandStrict(text, other);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_NE((*moved)[0].key, (*trials)[0].key);
  EXPECT_EQ((*moved)[2].key, (*trials)[2].key);

  // An undefined variable is named once, at the key that uses it, even when the global value
  // reaches two methods.
  o.vars.erase("W");
  auto missing = ExpandStrict(text, o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "r.toml:20:1: undefined variable ${W} (define it with --var W=VALUE or in the "
            "environment)");
  // Bad ${...} syntax is a parse error.
  auto syntax = ParseSweep(Base("name = \"w\"\nmethods = [\"clip\"]\nscales = [\"1M\"]\n",
                                "[hparams.clip]\npretrained = \"${1W}\"\n"),
                           "s.toml");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().message(),
            "s.toml:20:1: 'hparams.clip.pretrained': bad variable name '${1W}' in \"${1W}\" (use "
            "letters, digits and _)");
}

}  // namespace
}  // namespace sd2::sweeps

// ParseSweep, ParseScale/FormatScale and TrialKey.
#include "sweeps/sweep.h"

#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace sd2::sweeps {
namespace {

using nlohmann::json;

std::string ReadFileForTest(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const char* kMinimal = R"(
name = "mini"
methods = ["sd2"]
scales = ["100K"]

[data]
manifest = "/data/manifest.jsonl"

[[eval]]
name = "UADFV"
datasets = ["UADFV"]
)";

TEST(ParseScaleTest, AcceptsSuffixesAndPlainCounts) {
  EXPECT_EQ(*ParseScale("100K"), 100000);
  EXPECT_EQ(*ParseScale("1M"), 1000000);
  EXPECT_EQ(*ParseScale("3M"), 3000000);
  EXPECT_EQ(*ParseScale("2.5K"), 2500);
  EXPECT_EQ(*ParseScale("1.25m"), 1250000);
  EXPECT_EQ(*ParseScale("300"), 300);
  EXPECT_EQ(*ParseScale("9k"), 9000);
}

TEST(ParseScaleTest, RejectsBadValues) {
  for (const char* bad : {"", "K", "-1", "0", "0K", "1.5", "2.0005K", "1e6", "3G", " 1M", "1..2K",
                          ".5K", "5.K", "1M1", "10000000000000"}) {
    auto v = ParseScale(bad);
    EXPECT_FALSE(v.ok()) << "'" << bad << "' parsed as " << (v.ok() ? *v : 0);
    if (!v.ok()) {
      EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
    }
  }
  EXPECT_EQ(ParseScale("1.5").status().message(), "scale \"1.5\" is not a whole number of images");
}

TEST(FormatScaleTest, RoundTrips) {
  EXPECT_EQ(FormatScale(3000000), "3M");
  EXPECT_EQ(FormatScale(100000), "100K");
  EXPECT_EQ(FormatScale(2500), "2.5K");
  EXPECT_EQ(FormatScale(1500000), "1.5M");
  EXPECT_EQ(FormatScale(300), "300");
  EXPECT_EQ(FormatScale(1234567), "1234567");
  for (int64_t v : {1, 300, 999, 1000, 2500, 9000, 100000, 1500000, 3000000, 1234567}) {
    EXPECT_EQ(*ParseScale(FormatScale(v)), v) << v;
  }
}

TEST(TrialKeyTest, GoldenKeyOfAFixedConfig) {
  // Golden value from Python: hashlib.sha256(json.dumps(c, sort_keys=True,
  // separators=(",", ":")).encode()).hexdigest()[:16] for the same object.
  json c = json::parse(R"({"method":"sd2","scale":100000,"seed":0,"model":"vit_l14",
    "hparams":{"lr":5e-7,"batch_size":512,"alpha":2.0},
    "ablation":{"clam":true,"ld_face":true,"ld_env":false},
    "data":{"manifest":"/data/m.jsonl","train":{"split":"train","datasets":[]}},
    "eval":[{"name":"UADFV","split":"test"}]})");
  EXPECT_EQ(TrialKey(c), "8756251a815f2716");
  EXPECT_EQ(TrialKey(c).size(), 16u);
}

TEST(TrialKeyTest, IgnoresNonSemanticFieldsAndKeyOrder) {
  json a = {{"method", "clip"}, {"seed", 1}, {"hparams", {{"lr", 2e-5}, {"epochs", 10}}}};
  json b = json::parse(R"({"hparams":{"epochs":10,"lr":2e-5},"seed":1,"method":"clip"})");
  EXPECT_EQ(TrialKey(a), TrialKey(b));
  json c = a;
  c["resources"] = {{"ranks", 8}};
  c["priority"] = 3;
  c["label"] = "x";
  c["sweep"] = "table6";
  EXPECT_EQ(TrialKey(a), TrialKey(c));
  json d = a;
  d["hparams"]["lr"] = 2.0000001e-5;
  EXPECT_NE(TrialKey(a), TrialKey(d));
}

TEST(ParseSweepTest, MinimalFileGetsDefaults) {
  auto spec = ParseSweep(kMinimal, "mini.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name, "mini");
  EXPECT_EQ(spec->path, "mini.toml");
  EXPECT_EQ(spec->priority, 0);
  EXPECT_EQ(spec->seeds, std::vector<int64_t>{0});
  EXPECT_EQ(spec->scales, std::vector<int64_t>{100000});
  EXPECT_EQ(spec->models.at("sd2"), "vit_l14");
  EXPECT_EQ(spec->ranks, 1);
  EXPECT_EQ(spec->gpus_per_rank, 0);
  EXPECT_EQ(spec->train.split.value, "train");
  ASSERT_EQ(spec->evals.size(), 1u);
  EXPECT_EQ(spec->evals[0].filter.split.value, "test");
  // The paper's SD2 settings (Sec. 5.1).
  const json& h = spec->hparams.at("sd2");
  EXPECT_EQ(h["optimizer"], "adamw");
  EXPECT_DOUBLE_EQ(h["lr"].get<double>(), 5e-7);
  EXPECT_EQ(h["batch_size"], 512);
  EXPECT_EQ(h["epochs"], 4);
  EXPECT_DOUBLE_EQ(h["alpha"].get<double>(), 2.0);
  EXPECT_EQ(h["lora_r"], 8);
  EXPECT_DOUBLE_EQ(h["lora_alpha"].get<double>(), 32.0);
  EXPECT_DOUBLE_EQ(h["lora_dropout"].get<double>(), 0.1);
  EXPECT_EQ(
      spec->variant,
      json({{"lc_reduction", "mean"}, {"ls_reduction", "sum"}, {"siglip_temperature", "shared"}}));
}

TEST(ParseSweepTest, HparamsPrecedenceAndIntegerForFloat) {
  std::string text = std::string(kMinimal) + R"(
[hparams.sd2]
lr = 1
[hparams]
epochs = 2
lr = 0.5
)";
  // methods must include clip for the table below; rebuild with two methods.
  text.replace(text.find("methods = [\"sd2\"]"), 17, "methods = [\"sd2\", \"clip\"]");
  auto spec = ParseSweep(text, "h.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  // Per-method beats global even though it comes first in the file; 1 becomes 1.0.
  EXPECT_TRUE(spec->hparams.at("sd2")["lr"].is_number_float());
  EXPECT_EQ(spec->hparams.at("sd2")["lr"].dump(), "1.0");
  EXPECT_EQ(spec->hparams.at("clip")["lr"].dump(), "0.5");
  EXPECT_EQ(spec->hparams.at("sd2")["epochs"], 2);
  EXPECT_EQ(spec->hparams.at("clip")["epochs"], 2);
}

TEST(ParseSweepTest, GlobalHparamOnlyReachesMethodsThatHaveIt) {
  std::string text = std::string(kMinimal) + "[hparams]\nalpha = 1.5\n";
  text.replace(text.find("methods = [\"sd2\"]"), 17, "methods = [\"sd2\", \"xception\"]");
  auto spec = ParseSweep(text, "a.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_DOUBLE_EQ(spec->hparams.at("sd2")["alpha"].get<double>(), 1.5);
  EXPECT_FALSE(spec->hparams.at("xception").contains("alpha"));

  std::string only_cnn = std::string(kMinimal) + "[hparams]\nalpha = 1.5\n";
  only_cnn.replace(only_cnn.find("methods = [\"sd2\"]"), 17, "methods = [\"xception\"]");
  auto bad = ParseSweep(only_cnn, "b.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "b.toml:13:1: 'hparams.alpha': no method of this sweep has hyper-parameter 'alpha'");
}

TEST(ParseSweepTest, ReportsEveryErrorSortedByPosition) {
  const char* text = R"(name = "x"
methods = ["sd2", "nope"]
scales = [-5]
seeds = [1.5]
colour = "red"

[data]
manifest = 3

[[eval]]
name = "e"
split = "dev"
)";
  auto spec = ParseSweep(text, "multi.toml");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().message(),
            "multi.toml:2:19: 'methods[1]': unknown method 'nope' (expected one of: xception, "
            "recce, spsl, clip, clip_lora, clip_svd, sd2, univfd, smoke)\n"
            "multi.toml:3:11: 'scales[0]' must be > 0, got -5\n"
            "multi.toml:4:10: 'seeds[0]' must be an integer, got float\n"
            "multi.toml:5:1: unknown key 'colour' (expected one of: name, description, priority, "
            "methods, scales, seeds, model, data, eval, ablation, hparams, variant, resources, "
            "exclude, include, probe, allow_random_init)\n"
            "multi.toml:8:1: 'data.manifest' must be a string, got integer\n"
            "multi.toml:12:1: 'eval[0].split': unknown split 'dev' (expected train, val or test)");
}

TEST(ParseSweepTest, Df40FilterKeys) {
  std::string text = std::string(kMinimal) + R"(
[[eval]]
name = "DF40-FF"
datasets = ["DF40"]
domains = ["FF"]
known = true

[[eval]]
name = "DF40-Test-FE"
method_types = ["FE"]
known = false
)";
  auto spec = ParseSweep(text, "df40.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->evals.size(), 3u);
  EXPECT_FALSE(spec->evals[0].filter.known.has_value());
  EXPECT_EQ(spec->evals[1].filter.domains.at(0).value, "FF");
  EXPECT_EQ(spec->evals[1].filter.known, std::optional<bool>(true));
  EXPECT_EQ(spec->evals[2].filter.method_types.at(0).value, "FE");
  EXPECT_EQ(spec->evals[2].filter.known, std::optional<bool>(false));

  const char* bad = R"(name = "x"
methods = ["sd2"]
scales = [1]
[data]
manifest = "m.jsonl"
[data.train]
known = 1
[[eval]]
name = "e"
method_types = ["REAL", "FS"]
domain = ["FF"]
)";
  auto err = ParseSweep(bad, "bad.toml");
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.status().message(),
            "bad.toml:7:1: 'data.train.known' must be a boolean, got integer\n"
            "bad.toml:10:17: 'eval[0].method_types': unknown method type 'REAL' (expected FS, FR, "
            "EFS or FE)\n"
            "bad.toml:11:1: unknown key 'domain' in 'eval[0]' (did you mean 'domains'?)");
}

TEST(ParseSweepTest, ModelTablePerMethod) {
  std::string text = std::string(kMinimal) + "[model]\nsd2 = \"vit_b16\"\nxception = \"tiny\"\n";
  text.replace(text.find("methods = [\"sd2\"]"), 17, "methods = [\"sd2\", \"xception\", \"clip\"]");
  auto spec = ParseSweep(text, "m.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->models.at("sd2"), "vit_b16");
  EXPECT_EQ(spec->models.at("xception"), "tiny");
  EXPECT_EQ(spec->models.at("clip"), "vit_l14");
}

TEST(ParseSweepTest, WrongTypesAtTopLevelDoNotCrash) {
  // Every top-level key with a value of the wrong kind: only messages, never a crash.
  for (const char* line :
       {"name = 1", "description = []", "priority = \"high\"", "methods = \"sd2\"",
        "scales = {a = 1}", "model = 3", "data = 1", "eval = \"x\"", "ablation = true",
        "hparams = []", "variant = 2", "resources = \"big\"", "exclude = {}", "include = 1",
        "probe = \"p\"", "eval = [1, 2]", "exclude = [1]", "probe = [true]",
        "priority = 2000000"}) {
    std::string text = std::string(line) + "\n";
    auto spec = ParseSweep(text, "t.toml");
    EXPECT_FALSE(spec.ok()) << line;
    EXPECT_EQ(spec.status().message().rfind("t.toml:", 0), 0u) << spec.status().message();
  }
}

}  // namespace
}  // namespace sd2::sweeps

namespace sd2::sweeps {
namespace {

// Every prefix and every one-line deletion of a shipped file parses to a spec or to positioned
// errors; nothing crashes or throws.
TEST(ParseSweepRobustnessTest, TruncatedAndDamagedFilesNeverCrash) {
  auto text = ReadFileForTest(std::string(SD2_SOURCE_DIR) + "/sweeps/paper/table5_ablation.toml");
  ASSERT_FALSE(text.empty());
  ExpandOptions options;
  options.vars["SD2_DATA"] = "/d";
  auto check = [&](const std::string& t) {
    auto spec = ParseSweep(t, "f.toml");
    if (!spec.ok()) {
      EXPECT_EQ(spec.status().message().rfind("f.toml:", 0), 0u) << spec.status().message();
      return;
    }
    auto trials = Expand(*spec, options);
    if (!trials.ok()) {
      EXPECT_EQ(trials.status().message().rfind("f.toml:", 0), 0u);
    }
  };
  for (size_t n = 0; n <= text.size(); n += 7) check(text.substr(0, n));
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    check(text.substr(0, start) + text.substr(std::min(end + 1, text.size())));
    start = end + 1;
  }
}

}  // namespace
}  // namespace sd2::sweeps

namespace sd2::sweeps {
namespace {

TEST(ParseSweepTest, TrainingLoopAndBaselineHparamsAreTyped) {
  std::string good = std::string(kMinimal) +
                     "[hparams]\nthreads = 1\ncheckpoint_every = 20\npretrained = \"/w/clip\"\n"
                     "label_sampling = \"simple\"\n[hparams.sd2]\nwarmup = 5\n";
  auto spec = ParseSweep(good, "good.toml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  auto trials = Expand(*spec);
  ASSERT_TRUE(trials.ok()) << trials.status();
  const json& h = (*trials)[0].config["hparams"];
  EXPECT_EQ(h["threads"], 1);
  EXPECT_EQ(h["pretrained"], "/w/clip");
  EXPECT_EQ(h["label_sampling"], "simple");
  EXPECT_EQ(h["warmup"], 5);

  auto bad_bool =
      ParseSweep(std::string(kMinimal) + "[hparams]\nrecce_recons = \"yes\"\n", "b.toml");
  ASSERT_FALSE(bad_bool.ok());
  EXPECT_NE(bad_bool.status().message().find("b.toml:"), std::string::npos);
  EXPECT_NE(bad_bool.status().message().find("a boolean"), std::string::npos);
  auto bad_choice =
      ParseSweep(std::string(kMinimal) + "[hparams]\nlabel_sampling = \"some\"\n", "c.toml");
  ASSERT_FALSE(bad_choice.ok());
  EXPECT_NE(bad_choice.status().message().find("unknown value \"some\""), std::string::npos);
  auto empty_path = ParseSweep(std::string(kMinimal) + "[hparams]\npretrained = \"\"\n", "d.toml");
  ASSERT_FALSE(empty_path.ok());
  EXPECT_NE(empty_path.status().message().find("must not be empty"), std::string::npos);
}

TEST(ParseSweepTest, DeepNestingIsAnErrorNotACrash) {
  // 100,000 parts of a dotted key or a table header (~200 KB) overflowed the stack inside
  // toml++; deep inline arrays and tables are refused before toml++'s own limit of 256.
  std::string dotted = "x";
  for (int i = 0; i < 100000; ++i) dotted += ".x";
  std::string header = "[" + dotted + "]\nk = 1\n";
  dotted += " = 1\n";
  const std::string deep_array =
      "x = " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  const std::string deep_tables = [] {
    std::string s = "x = ";
    for (int i = 0; i < 100; ++i) s += "{a = ";
    return s + "1" + std::string(100, '}') + "\n";
  }();
  const std::pair<std::string, std::string> cases[] = {
      {dotted + kMinimal, "deep.toml:1:128: "},
      {header + kMinimal, "deep.toml:1:129: "},
      {deep_array + kMinimal, "deep.toml:1:69: "},
      {deep_tables + kMinimal, "deep.toml:1:323: "},
  };
  for (const auto& [text, prefix] : cases) {
    auto s = ParseSweep(text, "deep.toml");
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.status().message().rfind(prefix, 0), 0u) << s.status().message().substr(0, 300);
    EXPECT_NE(s.status().message().find("TOML nests deeper than 64 levels"), std::string::npos);
  }
  EXPECT_TRUE(ParseSweep(kMinimal, "ok.toml").ok());
}

}  // namespace
}  // namespace sd2::sweeps

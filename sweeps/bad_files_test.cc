// Every malformed sweep file in sweeps/testdata/bad/ with its exact message.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "sweeps/sweep.h"

namespace sd2::sweeps {
namespace {

const std::string kBadDir = std::string(SD2_SOURCE_DIR) + "/sweeps/testdata/bad/";

// File name → expected message; "FILE" stands for the path the file was loaded from.
const std::map<std::string, std::string>& Expected() {
  static const std::map<std::string, std::string> kExpected = {
      {"ablation_wrong_type", "FILE:6:9: 'ablation.clam[0]' must be a boolean, got string"},
      {"ablation_without_sd2",
       "FILE:5:2: 'ablation' applies to sd2 trials, but this sweep has no sd2 method"},
      {"bad_var_syntax",
       "FILE:6:1: 'data.manifest': bad variable name '${1DATA}' in \"${1DATA}/manifest.jsonl\" "
       "(use letters, digits and _)"},
      {"data_unknown_key",
       "FILE:5:1: missing required key 'data.manifest'\n"
       "FILE:6:1: unknown key 'manifests' in 'data' (did you mean 'manifest'?)"},
      {"eval_bad_type",
       "FILE:14:18: 'eval[1].types': unknown type 'FAKE' (expected REAL, FS, FR, EFS or FE)"},
      {"eval_duplicate_name",
       "FILE:13:1: 'eval[1].name': duplicate eval set name \"UADFV\" (first at line 9)"},
      {"eval_missing", "FILE:1:1: missing required key 'eval' (at least one [[eval]] set)"},
      {"exclude_matches_nothing", "FILE:5:1: 'exclude[0]' matches no trial"},
      {"hparam_not_for_method",
       "FILE:6:1: unknown key 'alpha' in 'hparams.xception' (expected one of: batch_size, "
       "epochs, image_size, lr, optimizer, steps, weight_decay)"},
      {"hparams_method_not_in_sweep",
       "FILE:5:10: 'hparams.recce': method 'recce' has no trials in this sweep"},
      {"include_ablation_on_clip",
       "FILE:9:1: 'include[0].clam': ablation switches apply to sd2 only, not 'clip'"},
      {"include_missing_seed", "FILE:5:1: missing required key 'include[0].seed'"},
      {"lr_infinite", "FILE:6:1: 'hparams.clip.lr' must be a finite number, got inf"},
      {"lr_not_positive", "FILE:6:1: 'hparams.sd2.lr' must be > 0, got 0"},
      {"lr_wrong_type", "FILE:6:1: 'hparams.lr' must be a number, got string"},
      {"method_unknown",
       "FILE:2:19: 'methods[1]': unknown method 'xceptoin' (did you mean 'xception'?)"},
      {"methods_empty", "FILE:2:1: 'methods' must not be empty"},
      {"missing_name", "FILE:1:1: missing required key 'name'"},
      {"model_unknown",
       "FILE:4:1: 'model': model 'vit_h14' is not available for method 'sd2' (available: "
       "vit_l14, vit_b16, tiny)"},
      {"model_wrong_family",
       "FILE:4:1: 'model': model 'vit_b16' is not available for method 'xception' (available: "
       "xception, tiny)"},
      {"name_bad_chars",
       "FILE:1:1: 'name' must be 1-128 characters of letters, digits, '_', '-' or '.', got \"my "
       "sweep\""},
      {"pretrained_missing",
       "FILE:2:19: method 'clip' starts from pretrained weights in the paper, but "
       "hparams.pretrained is empty or unset: set hparams.pretrained to a Hugging Face CLIP "
       "folder (openai/clip-vit-large-patch14), e.g. [hparams.clip] pretrained = "
       "\"${SD2_CLIP}\", or set allow_random_init = true to train it from random weights"},
      {"pretrained_undefined_var",
       "FILE:6:1: undefined variable ${XCEPTION_WEIGHTS} (define it with --var "
       "XCEPTION_WEIGHTS=VALUE or in the environment)"},
      {"probe_selects_nothing",
       "FILE:3:1: probe selects no trial of encoder sweep '../good/encoder.toml'"},
      {"resources_zero_ranks", "FILE:6:1: 'resources.ranks' must be >= 1, got 0"},
      {"scale_bad_string",
       "FILE:3:19: 'scales[1]': bad scale \"3G\" (expected a positive count like 300, \"100K\", "
       "\"1M\")"},
      {"scale_duplicate", "FILE:3:17: 'scales[1]': duplicate scale 1M"},
      {"scale_zero", "FILE:3:11: 'scales[0]' must be > 0, got 0"},
      {"seed_negative", "FILE:4:13: 'seeds[1]' must be >= 0, got -1"},
      {"seeds_wrong_type", "FILE:4:1: 'seeds' must be an array, got string"},
      {"syntax_duplicate_key",
       "FILE:4:11: Error while parsing key-value pair: cannot redefine existing array 'methods'"},
      {"syntax_unterminated_string",
       "FILE:1:15: Error while parsing string: unescaped control characters other than TAB "
       "(U+0009) are explicitly prohibited"},
      {"undefined_var",
       "FILE:6:1: undefined variable ${DATA_DIR} (define it with --var DATA_DIR=VALUE or "
       "in the environment)"},
      {"unknown_top_key", "FILE:4:1: unknown key 'seed' (did you mean 'seeds'?)"},
      {"variant_bad_value",
       "FILE:6:1: 'variant.lc_reduction': unknown value \"avg\" (expected one of: mean, sum)"},
  };
  return kExpected;
}

std::string ReplaceAll(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
  return s;
}

// Parse and, when that succeeds, expand: some errors (undefined ${VAR}, probes) surface there.
Status Check(const std::string& path) {
  auto spec = LoadSweepFile(path);
  if (!spec.ok()) return spec.status();
  ExpandOptions options;
  options.vars["SD2_DATA"] = "/data";
  return Expand(*spec, options).status();
}

class BadSweepFileTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BadSweepFileTest, GivesExactPositionedMessage) {
  const std::string path = kBadDir + GetParam() + ".toml";
  Status s = Check(path);
  ASSERT_FALSE(s.ok()) << path << " was accepted";
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ExitCodeFor(s), kExitBadInput);
  EXPECT_EQ(s.message(), ReplaceAll(Expected().at(GetParam()), "FILE", path));
}

std::vector<std::string> Names() {
  std::vector<std::string> names;
  for (const auto& [name, msg] : Expected()) names.push_back(name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(AllBadFiles, BadSweepFileTest, ::testing::ValuesIn(Names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

TEST(BadSweepFilesTest, EveryFileHasAnExpectedMessage) {
  std::set<std::string> on_disk;
  for (const auto& e : std::filesystem::directory_iterator(kBadDir)) {
    if (e.path().extension() == ".toml") on_disk.insert(e.path().stem().string());
  }
  std::set<std::string> expected;
  for (const auto& [name, msg] : Expected()) expected.insert(name);
  EXPECT_EQ(on_disk, expected);
  EXPECT_GE(on_disk.size(), 15u);
}

TEST(BadSweepFilesTest, UnreadableFileIsBadInput) {
  auto spec = LoadSweepFile(kBadDir + "does_not_exist.toml");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(spec.status().message().find("does_not_exist.toml: cannot open"), std::string::npos)
      << spec.status().message();
}

}  // namespace
}  // namespace sd2::sweeps

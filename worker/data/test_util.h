// Test helpers for worker/data tests: a fresh temporary folder per test, removed afterwards.
//
//   TempDir dir;  std::string p = dir.path() + "/m.jsonl";
#ifndef SD2_WORKER_DATA_TEST_UTIL_H_
#define SD2_WORKER_DATA_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace sd2::worker::data::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sd2_data_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void WriteText(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// One DeepfakeBench JSON with one real and one fake video in the test split, frames given as
// absolute paths under `root`.
inline std::string Df40Json(const std::string& name, const std::string& root) {
  const std::string m = name.substr(0, name.find('_'));
  return R"({")" + name + R"(": {")" + m + R"(_Real": {"test": {"r0": {"label": ")" + m +
         R"(_Real", "frames": [")" + root + "/" + name + R"(/real/0.png"]}}}, ")" + m +
         R"(_Fake": {"test": {"f0": {"label": ")" + m + R"(_Fake", "frames": [")" + root + "/" +
         name + R"(/fake/0.png", ")" + root + "/" + name + R"(/fake/1.png"]}}}}})";
}

// Every dataset name DF40's DeepfakeBench code uses (df40.toml), written out here rather than
// taken from data/df40_methods.toml so that a slip in the table shows.
// clang-format off
inline const char* const kDf40Names[] = {
    "fsgan_ff", "fsgan_cdf", "faceswap_ff", "faceswap_cdf", "simswap_ff", "simswap_cdf",
    "inswap_ff", "inswap_cdf", "blendface_ff", "blendface_cdf", "uniface_ff", "uniface_cdf",
    "mobileswap_ff", "mobileswap_cdf", "e4s_ff", "e4s_cdf", "facedancer_ff", "facedancer_cdf",
    "deepfacelab", "fomm_ff", "fomm_cdf", "facevid2vid_ff", "facevid2vid_cdf", "wav2lip_ff",
    "wav2lip_cdf", "mraa_ff", "mraa_cdf", "one_shot_free_ff", "one_shot_free_cdf", "pirender_ff",
    "pirender_cdf", "tpsm_ff", "tpsm_cdf", "lia_ff", "lia_cdf", "danet_ff", "danet_cdf",
    "sadtalker_ff", "sadtalker_cdf", "mcnet_ff", "mcnet_cdf", "hyperreenact_ff", "hyperreenact_cdf",
    "heygen", "VQGAN_ff", "VQGAN_cdf", "StyleGAN2_ff", "StyleGAN2_cdf", "StyleGAN3_ff",
    "StyleGAN3_cdf", "StyleGANXL_ff", "StyleGANXL_cdf", "sd2.1_ff", "sd2.1_cdf", "ddim_ff",
    "ddim_cdf", "rddm_ff", "rddm_cdf", "PixArt_ff", "PixArt_cdf", "DiT_ff", "DiT_cdf", "SiT_ff",
    "SiT_cdf", "MidJourney", "whichisreal", "e4e", "e4e_ff", "e4e_cdf", "CollabDiff", "stargan",
    "starganv2", "styleclip",
};
// clang-format on

}  // namespace sd2::worker::data::testing

#endif  // SD2_WORKER_DATA_TEST_UTIL_H_

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

}  // namespace sd2::worker::data::testing

#endif  // SD2_WORKER_DATA_TEST_UTIL_H_

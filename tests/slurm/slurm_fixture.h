// Shared fixture of the end-to-end Slurm tests (label `slurm`): a single-node Slurm started in a
// fresh temporary folder (scripts/slurm/start.sh, stopped again in TearDown), the smoke sweep
// they submit, and a `sqlite3` query helper. A test skips when the built binaries it needs are
// not named by the environment (CTest sets SD2_WORKER_BIN, SD2_COORDINATOR_BIN) or Slurm is not
// installed (start.sh exits 77).
#ifndef SD2_TESTS_SLURM_SLURM_FIXTURE_H_
#define SD2_TESTS_SLURM_SLURM_FIXTURE_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "cluster/command_runner.h"

namespace sd2::cluster::testing {

// The smoke sweep; ${DIR} is the test's folder (its empty manifest lives there).
inline std::string SmokeSweep(const std::string& name) {
  return "name = \"" + name + R"("
methods = ["smoke"]
scales = [100]
seeds = [0]

[data]
manifest = "${DIR}/manifest.jsonl"

[[eval]]
name = "smoke-eval"
split = "test"
)";
}

class SlurmClusterTest : public ::testing::Test {
 protected:
  // Reads the binaries named by `env_vars` into binaries_ (skipping the test when one is not
  // set or missing), makes dir_ from `prefix`, and starts Slurm with its state under dir_/slurm.
  void StartSlurm(const std::string& prefix, const std::vector<std::string>& env_vars) {
    for (const std::string& var : env_vars) {
      const char* path = std::getenv(var.c_str());
      if (path == nullptr || !std::filesystem::exists(path)) {
        GTEST_SKIP() << var << " does not name a built binary (ctest sets it)";
      }
      binaries_.push_back(path);
    }
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    dir_ = mkdtemp(tmpl.data());
    const std::string slurm_dir = dir_ + "/slurm";
    setenv("SD2_SLURM_DIR", slurm_dir.c_str(), 1);
    setenv("SLURM_CONF", (slurm_dir + "/slurm.conf").c_str(), 1);
    auto r = runner_.Run({std::string(SD2_SOURCE_DIR) + "/scripts/slurm/start.sh"},
                         std::chrono::seconds(60));
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->exit_code == 77) GTEST_SKIP() << "Slurm is not installed: " << r->err;
    started_ = true;
    ASSERT_EQ(r->exit_code, 0) << r->out << r->err;
  }

  void StopSlurm() {
    if (started_) {
      auto r = runner_.Run({std::string(SD2_SOURCE_DIR) + "/scripts/slurm/stop.sh"},
                           std::chrono::seconds(60));
      EXPECT_TRUE(r.ok() && r->exit_code == 0);
      started_ = false;
    }
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // `sqlite3 DB SQL` -> its output without the final newlines ("<error>" on failure).
  std::string Query(const std::string& db, const std::string& sql) {
    auto r = runner_.Run({"sqlite3", db, sql});
    if (!r.ok() || r->exit_code != 0) return "<error>";
    std::string out = r->out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  SystemCommandRunner runner_;
  std::vector<std::string> binaries_;  // in the order of StartSlurm's env_vars
  std::string dir_;
  bool started_ = false;
};

}  // namespace sd2::cluster::testing

#endif  // SD2_TESTS_SLURM_SLURM_FIXTURE_H_

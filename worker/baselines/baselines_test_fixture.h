// Shared fixture of the baselines' training tests (baselines_train_test.cc, label unit, and
// baselines_learn_test.cc, label learn): a 20,000-image synthetic MMI-DD at 32 px, a runner for
// one trial config in-process, the Mann-Whitney AUC, and the pretrained tiny encoder stand-in.
#ifndef SD2_WORKER_BASELINES_BASELINES_TEST_FIXTURE_H_
#define SD2_WORKER_BASELINES_BASELINES_TEST_FIXTURE_H_

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "worker/baselines/baselines.h"
#include "worker/baselines/register.h"
#include "worker/baselines/svd_residual.h"
#include "worker/comm/mpi_communicator.h"
#include "worker/data/manifest.h"
#include "worker/data/synth.h"
#include "worker/models/clip.h"
#include "worker/models/export.h"
#include "worker/models/tokenizer.h"
#include "worker/train/methods.h"
#include "worker/train/text_labels.h"

namespace sd2::worker::baselines::testing_internal {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Mann-Whitney AUC (ties count one half).
inline double Auc(const std::vector<ScoreRow>& rows) {
  std::vector<double> pos, neg;
  for (const auto& r : rows) (r.label ? pos : neg).push_back(r.score);
  if (pos.empty() || neg.empty()) return 0;
  double wins = 0;
  for (double p : pos)
    for (double n : neg) wins += p > n ? 1.0 : (p == n ? 0.5 : 0.0);
  return wins / (static_cast<double>(pos.size()) * static_cast<double>(neg.size()));
}

struct RunResult {
  Status status;
  std::map<std::string, std::vector<ScoreRow>> scores;
  std::map<std::string, double> last_metric;
  json variant;
};

struct LearnCase {
  std::string method;
  int steps;
  double lr;
  json hparams = json::object();  // over the test's defaults
  double min_auc = 0.85;          // issue 7; SD²'s is 0.9 (issue 4)
};

class BaselinesTrainTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("sd2_baselines_train_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    data::SynthOptions o;
    o.out_dir = (root_ / "data").string();
    o.images = 20000;  // 2,130 DF40 training rows, 960 test rows
    o.image_size = 32;
    o.seed = 3;
    o.threads = 2;
    auto s = data::Synthesize(o);
    ASSERT_TRUE(s.ok()) << s.status();
    manifest_ = s->manifest;
    RegisterBaselineMethods();
    RegisterTorchMethods();
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static json Config(const std::string& method, const std::string& model, json hparams) {
    json h = {{"batch_size", 32}, {"image_size", 32}, {"loader_threads", 2}, {"threads", 2}};
    for (auto& [k, v] : hparams.items()) h[k] = v;
    return {{"method", method},
            {"model", model},
            {"scale", 0},
            {"seed", 1},
            {"hparams", h},
            {"data",
             {{"manifest", manifest_},
              {"root", (root_ / "data").string()},
              {"train", {{"split", "train"}, {"datasets", {"DF40"}}}}}},
            {"eval",
             json::array({{{"name", "in-domain"}, {"splits", {"test"}}, {"datasets", {"DF40"}}}})}};
  }

  // Runs `config` in root/<key>; `stop_after` > 0 preempts the run after that many steps.
  static RunResult Run(const json& config, const std::string& key, int stop_after = 0) {
    RunResult r;
    auto comm = MakeLocalCommunicator();
    TrialContext ctx;
    ctx.config = config;
    ctx.trial_key = key;
    ctx.work_dir = (root_ / "trials" / key).string();
    ctx.comm = comm.get();
    int steps_seen = 0;
    ctx.report_metric = [&](int64_t step, const std::string& name, double v) {
      r.last_metric[name] = v;
      steps_seen = std::max<int>(steps_seen, static_cast<int>(step));
    };
    ctx.report_scores = [&](const std::string& set, const std::vector<ScoreRow>& rows) {
      auto& all = r.scores[set];
      all.insert(all.end(), rows.begin(), rows.end());
    };
    ctx.report_variant = [&](const json& v) {
      if (!r.variant.is_object()) r.variant = json::object();
      if (v.is_object()) r.variant.update(v);
    };
    int polls = 0;
    ctx.preempted = [&]() { return stop_after > 0 && polls++ >= stop_after; };
    ctx.should_stop = [] { return false; };
    auto method = MethodRegistry::Global().Create(config["method"].get<std::string>());
    if (!method.ok()) {
      r.status = method.status();
      return r;
    }
    r.status = (*method)->Run(ctx);
    return r;
  }

  // Trains `method` (tiny) on DF40's training rows with `hparams` over the test defaults.
  static RunResult Learn(const std::string& method, const json& hparams, const std::string& key) {
    return Run(Config(method, "tiny", hparams), key);
  }

  // A tiny CLIP image tower trained by the `clip` method on every training source but DF40,
  // written as a Hugging Face folder; "" on failure (reported).
  static std::string PretrainTinyClip() {
    json cfg = Config("clip", "tiny",
                      {{"steps", 1000},
                       {"lr", 3e-4},
                       {"threads", 1},
                       {"loader_threads", 1},
                       {"augment", "flip"}});
    cfg["data"]["train"]["datasets"] = {"DFF",        "DFFD",       "DFDCP",      "KoDF",
                                        "FF++ (c40)", "TIMIT (LQ)", "TIMIT (HQ)", "CelebA",
                                        "CelebA-HQ",  "CelebV-HQ",  "FFHQ"};
    RunResult r = Run(cfg, "pretrain_clip");
    EXPECT_TRUE(r.status.ok()) << r.status;
    if (!r.status.ok()) return "";
    std::cout << "pretrained tiny clip (other sources): DF40 AUC " << Auc(r.scores["in-domain"])
              << "\n";
    const fs::path work = root_ / "trials" / "pretrain_clip";
    std::string checkpoint;
    for (const auto& e : fs::directory_iterator(work))
      if (e.path().filename().string().rfind("checkpoint-", 0) == 0)
        checkpoint = std::max(checkpoint, e.path().string());
    // A vocabulary for SD²'s text tower, learned from the type labels and the training
    // descriptions (what `sd2` does itself without `pretrained`).
    std::vector<std::string> texts;
    auto labels = train::PaperTypeLabels();
    EXPECT_TRUE(labels.ok());
    if (!labels.ok()) return "";
    for (const auto& l : *labels) texts.insert(texts.end(), l.begin(), l.end());
    auto recs = data::ReadManifest(manifest_);
    EXPECT_TRUE(recs.ok());
    if (!recs.ok()) return "";
    for (const auto& r : *recs) {
      if (texts.size() > 6000) break;
      texts.push_back(r.face);
      texts.push_back(r.env);
    }
    auto tok = models::LearnBpe(texts, 1000);
    EXPECT_TRUE(tok.ok());
    const std::string vocab = (root_ / "vocab").string();
    if (!tok.ok() || !tok->Save(vocab).ok()) return "";
    models::ExportClipOptions eo;
    eo.checkpoint = checkpoint;
    eo.model = "tiny";
    eo.out = (root_ / "pretrained_tiny_clip").string();
    eo.tokenizer = vocab;
    auto summary = models::ExportClip(eo);
    EXPECT_TRUE(summary.ok()) << summary.status();
    if (!summary.ok()) return "";
    std::cout << *summary << "\n";
    return eo.out;
  }

  // Trains each case (tiny, one thread, 32 px, flips only) on DF40's training rows and checks its
  // AUC on DF40's test rows (960 images).
  static void ExpectEachLearns(const std::vector<LearnCase>& cases, const json& extra_hparams,
                               const std::string& tag) {
    for (const LearnCase& c : cases) {
      SCOPED_TRACE(c.method);
      json hp = {{"steps", c.steps},
                 {"lr", c.lr},
                 {"threads", 1},
                 {"loader_threads", 1},
                 {"augment", "flip"}};
      hp.update(extra_hparams);
      hp.update(c.hparams);
      const auto start = std::chrono::steady_clock::now();
      RunResult r = Learn(c.method, hp, tag + c.method);
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ASSERT_TRUE(r.status.ok()) << r.status;
      ASSERT_EQ(r.scores.count("in-domain"), 1u);
      const double auc = Auc(r.scores["in-domain"]);
      std::cout << c.method << " (" << tag << "): in-domain AUC " << auc << " over "
                << r.scores["in-domain"].size() << " images after " << c.steps << " steps in "
                << secs << " s, final loss " << r.last_metric["train/loss"] << "\n";
      EXPECT_GE(auc, c.min_auc);
    }
  }

  static inline fs::path root_;
  static inline std::string manifest_;
};

}  // namespace sd2::worker::baselines::testing_internal

#endif  // SD2_WORKER_BASELINES_BASELINES_TEST_FIXTURE_H_

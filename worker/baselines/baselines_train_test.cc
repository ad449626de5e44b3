// Training tests of the baselines on the synthetic MMI-DD (worker/data/synth.h): an
// interrupted run resumed from its checkpoint scores exactly like an uninterrupted one; Effort's
// SVD split reproduces W and only the residual trains; the linear probe reads a trained encoder
// trial and only its head changes; bad configs give precise errors. The learning tests are in
// baselines_learn_test.cc.
#include "worker/baselines/baselines_test_fixture.h"

namespace sd2::worker::baselines::testing_internal {
namespace {

TEST_F(BaselinesTrainTest, ResumedRunScoresLikeAnUninterruptedOne) {
  for (const std::string method :
       {"xception", "recce", "spsl", "clip", "clip_lora", "clip_svd", "univfd"}) {
    SCOPED_TRACE(method);
    json cfg = Config(method, "tiny", {{"steps", 6}, {"lr", 1e-3}});
    cfg["eval"] = json::array({{{"name", "few"}, {"splits", {"val"}}, {"datasets", {"DF40"}}}});
    RunResult full = Run(cfg, "full_" + method);
    ASSERT_TRUE(full.status.ok()) << full.status;
    RunResult cut = Run(cfg, "cut_" + method, /*stop_after=*/3);
    ASSERT_EQ(cut.status.code(), StatusCode::kAborted) << cut.status;
    EXPECT_TRUE(cut.scores.empty());
    RunResult resumed = Run(cfg, "cut_" + method);
    ASSERT_TRUE(resumed.status.ok()) << resumed.status;
    const auto& a = full.scores["few"];
    const auto& b = resumed.scores["few"];
    ASSERT_EQ(a.size(), b.size());
    ASSERT_FALSE(a.empty());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i].sample_id, b[i].sample_id);
      EXPECT_NEAR(a[i].score, b[i].score, 1e-6) << a[i].sample_id;
    }
  }
}

TEST(SvdResidualTest, SplitReproducesWeightsAndOnlyResidualTrains) {
  auto cfg = models::NamedClipConfig("tiny");
  ASSERT_TRUE(cfg.ok());
  torch::manual_seed(0);
  models::ClipVisionTransformer tower(*cfg);
  std::map<std::string, torch::Tensor> before;
  for (auto& p : tower->named_parameters()) before[p.key()] = p.value().detach().clone();
  torch::Tensor x = torch::randn({2, 3, 32, 32});
  torch::Tensor y0 = tower->Forward(x).pooled.detach();
  for (auto& p : tower->parameters()) p.set_requires_grad(false);
  SvdResidual svd(*tower, /*rank=*/1, /*keep_bases=*/true);
  EXPECT_EQ(svd->size(), 3u * 4u);  // 3 layers x q, k, v, out
  svd->Apply();
  for (auto& item : tower->named_modules("", false)) {
    auto lin = std::dynamic_pointer_cast<models::LoraLinearImpl>(item.value());
    if (!lin || item.key().find("self_attn") == std::string::npos) continue;
    const double err = (lin->weight - before[item.key() + ".weight"]).abs().max().item<double>();
    EXPECT_LE(err, 1e-6) << item.key();
  }
  EXPECT_LE((tower->Forward(x).pooled - y0).abs().max().item<double>(), 1e-5);
  EXPECT_LE(svd->OrthogonalLoss().item<double>(), 1e-4);
  EXPECT_LE(svd->KeepSingularValueLoss().item<double>(), 1e-3);
  // One optimizer step: only the residual factors move.
  std::vector<torch::Tensor> trainable;
  for (auto& p : svd->parameters()) trainable.push_back(p);
  for (auto& p : tower->parameters()) EXPECT_FALSE(p.requires_grad());
  std::vector<torch::Tensor> factors_before;
  for (auto& p : trainable) factors_before.push_back(p.detach().clone());
  torch::optim::SGD opt(trainable, torch::optim::SGDOptions(0.1));
  tower->Forward(x).pooled.pow(2).sum().backward();
  opt.step();
  svd->Apply();
  for (auto& p : tower->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), before[p.key()]) ||
                p.key().find("self_attn") != std::string::npos)
        << p.key();
  }
  double moved = 0;
  for (size_t i = 0; i < trainable.size(); ++i) {
    moved = std::max(moved, (trainable[i] - factors_before[i]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 0.0);
}

TEST_F(BaselinesTrainTest, ProbeTrainsOnlyAHeadOnATrainedEncoder) {
  // Encoder: clip_svd, tiny; probe: SD v1.4 train split, every GenImage generator's test split.
  json enc = Config("clip_svd", "tiny", {{"steps", 4}, {"lr", 1e-3}});
  RunResult er = Run(enc, "enc_svd");
  ASSERT_TRUE(er.status.ok()) << er.status;
  json probe = Config("probe", "tiny", {{"steps", 40}, {"lr", 1e-2}, {"weight_decay", 0.0}});
  probe["probe"] = {
      {"of", "enc_svd"},
      {"encoder_method", "clip_svd"},
      {"train", {{"split", "train"}, {"datasets", {"GenImage"}}, {"subsets", {"SD v1.4"}}}}};
  probe["eval"] = json::array();
  for (const char* g : {"SD v1.4", "BigGAN"}) {
    probe["eval"].push_back({{"name", std::string("GenImage ") + g},
                             {"splits", {"test"}},
                             {"datasets", {"GenImage"}},
                             {"subsets", {g}}});
  }
  RunResult pr = Run(probe, "probe_svd");
  ASSERT_TRUE(pr.status.ok()) << pr.status;
  EXPECT_EQ(pr.variant["encoder_method"], "clip_svd");
  ASSERT_EQ(pr.scores.size(), 2u);
  for (auto& [set, rows] : pr.scores) EXPECT_FALSE(rows.empty()) << set;
  // The probe's checkpoint holds the head alone.
  auto ckpt = NewestCheckpointIn((root_ / "trials" / "probe_svd").string());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto tensors = models::ReadTensors(*ckpt);
  ASSERT_TRUE(tensors.ok());
  for (auto& [k, v] : *tensors) {
    if (k.rfind("param/", 0) == 0) {
      EXPECT_EQ(k.rfind("param/head.", 0), 0u) << k;
    }
  }
  // A missing encoder trial is a precise error.
  probe["probe"]["of"] = "no_such_trial";
  RunResult bad = Run(probe, "probe_missing");
  EXPECT_EQ(bad.status.code(), StatusCode::kNotFound);
  EXPECT_NE(bad.status.message().find("no_such_trial"), std::string::npos) << bad.status;
}

TEST_F(BaselinesTrainTest, BadConfigsGivePreciseErrors) {
  RunResult r = Run(Config("recce", "tiny", {{"middle_blocks", 1}}), "bad_recce");
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status.message().find("at least 2 middle blocks"), std::string::npos) << r.status;
  r = Run(Config("clip_svd", "tiny", {{"svd_rank", 64}}), "bad_svd");
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status.message().find("svd_rank"), std::string::npos) << r.status;
  r = Run(Config("clip", "no_such_model", {}), "bad_model");
  EXPECT_EQ(r.status.code(), StatusCode::kInvalidArgument);
  r = Run(Config("xception", "tiny", {{"pretrained", "/nonexistent/x.safetensors"}}), "bad_pre");
  EXPECT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find("/nonexistent/x.safetensors"), std::string::npos) << r.status;
}

}  // namespace
}  // namespace sd2::worker::baselines::testing_internal

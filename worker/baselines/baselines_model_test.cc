// Forward-match tests: every baseline network, on fixed random weights (float64, BatchNorm in
// eval mode with non-trivial running statistics), against the independent PyTorch reference
// bench/reference/baselines_reference.py run by the project venv's python (SD2_PYTHON).
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "worker/baselines/recce.h"
#include "worker/baselines/spsl.h"
#include "worker/baselines/xception.h"

namespace sd2::worker::baselines {
namespace {

namespace fs = std::filesystem;
constexpr double kTol = 1e-5;

bool ReferenceAvailable() {
  static const bool ok =
      std::system((std::string(SD2_PYTHON) + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
  return ok;
}

class ReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(ReferenceAvailable())
        << "the reference needs torch in SD2_PYTHON (" SD2_PYTHON "): run scripts/setup.sh";
    dir_ = fs::temp_directory_path() /
           ("sd2_baselines_model_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    torch::manual_seed(7);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Gives BatchNorm layers non-trivial affine parameters and running statistics.
  static void Randomize(torch::nn::Module& m) {
    torch::NoGradGuard no_grad;
    for (auto& p : m.named_parameters()) {
      if (p.key().find("bn") != std::string::npos || p.value().dim() == 1) {
        p.value().add_(torch::randn_like(p.value()) * 0.1);
      }
    }
    for (auto& b : m.named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) {
        b.value().copy_(torch::randn_like(b.value()) * 0.1);
      } else if (b.key().find("running_var") != std::string::npos) {
        b.value().copy_(torch::rand_like(b.value()) + 0.5);
      }
    }
  }

  // Runs the reference on `m`'s state and `input`; returns its output tensors.
  std::map<std::string, torch::Tensor> RunReference(const std::string& kind,
                                                    const nlohmann::json& config,
                                                    torch::nn::Module* m,
                                                    const torch::Tensor& input,
                                                    const torch::Tensor& labels = {}) {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
    dict.insert("kind", kind);
    dict.insert("config", config.dump());
    dict.insert("input", input);
    if (labels.defined()) dict.insert("labels", labels);
    if (m != nullptr) {
      for (auto& p : m->named_parameters()) dict.insert("state." + p.key(), p.value().detach());
      for (auto& b : m->named_buffers()) dict.insert("state." + b.key(), b.value());
    }
    const std::string in = (dir_ / "in.pt").string(), out = (dir_ / "out.pt").string();
    std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
    std::ofstream(in, std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    const std::string cmd =
        SD2_PYTHON " " SD2_SOURCE_DIR "/bench/reference/baselines_reference.py " + in + " " + out;
    EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::ifstream f(out, std::ios::binary);
    std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::map<std::string, torch::Tensor> result;
    if (data.empty()) return result;
    c10::IValue v = torch::pickle_load(data);
    for (const auto& e : v.toGenericDict()) {
      result[e.key().toStringRef()] = e.value().toTensor();
    }
    return result;
  }

  static void ExpectClose(const torch::Tensor& ours, const torch::Tensor& ref,
                          const std::string& what, double tol = kTol) {
    ASSERT_TRUE(ref.defined()) << what << " missing from the reference output";
    ASSERT_EQ(ours.sizes(), ref.sizes()) << what;
    const double diff =
        (ours.to(torch::kDouble) - ref.to(torch::kDouble)).abs().max().item<double>();
    const double scale = std::max(1.0, ref.abs().max().item<double>());
    EXPECT_LE(diff, tol * scale) << what << ": max |ours - reference| = " << diff;
  }

  static int64_t NumParams(torch::nn::Module& m) {
    int64_t n = 0;
    for (auto& p : m.parameters()) n += p.numel();
    return n;
  }

  fs::path dir_;
};

TEST_F(ReferenceTest, XceptionPublishedWidthMatchesReference) {
  XceptionOptions opt;  // width 1, 8 middle blocks: the published network
  Xception net(opt);
  Randomize(*net);
  net->to(torch::kDouble);
  net->eval();
  torch::Tensor x = torch::randn({2, 3, 64, 64}, torch::kDouble);
  auto ref = RunReference("xception", {{"width", 1.0}, {"middle_blocks", 8}}, net.get(), x);
  ExpectClose(net->forward(x), ref["logits"], "logits");
  EXPECT_EQ(NumParams(*net), ref["num_params"].item<int64_t>());
  // DeepfakeBench's Xception with a 2-way head: 20,811,050 parameters (ImageNet Xception's
  // 22,855,952 less its 1000-way fc plus a 2-way one).
  EXPECT_EQ(NumParams(*net), 22855952 - 2049000 + 4098);
}

TEST_F(ReferenceTest, XceptionTinyMatchesReference) {
  XceptionOptions opt;
  opt.width = 1.0 / 8;
  opt.middle_blocks = 2;
  Xception net(opt);
  Randomize(*net);
  net->to(torch::kDouble);
  net->eval();
  torch::Tensor x = torch::randn({4, 3, 48, 48}, torch::kDouble);
  auto ref = RunReference("xception", {{"width", opt.width}, {"middle_blocks", 2}}, net.get(), x);
  ExpectClose(net->forward(x), ref["logits"], "logits");
}

TEST_F(ReferenceTest, RecceMatchesReference) {
  for (int middle : {2, 8}) {
    SCOPED_TRACE("middle_blocks " + std::to_string(middle));
    RecceOptions opt;
    opt.encoder.width = 1.0 / 8;
    opt.encoder.middle_blocks = middle;
    Recce net(opt);
    Randomize(*net);
    net->to(torch::kDouble);
    net->eval();
    torch::Tensor x = torch::rand({3, 3, 64, 64}, torch::kDouble) * 2 - 1;
    torch::Tensor labels = torch::tensor({0, 1, 0}, torch::kLong);
    auto ref = RunReference("recce_loss", {{"width", opt.encoder.width}, {"middle_blocks", middle}},
                            net.get(), x, labels);
    RecceOutput out = net->Forward(x);
    ExpectClose(out.logits, ref["logits"], "logits");
    ExpectClose(out.recons, ref["recons"], "recons");
    ASSERT_EQ(out.corrs.size(), 3u);
    for (size_t i = 0; i < out.corrs.size(); ++i) {
      ExpectClose(out.corrs[i], ref["corr" + std::to_string(i)], "corr" + std::to_string(i));
    }
    std::vector<std::pair<std::string, double>> parts;
    RecceLossOptions lo;
    lo.recons = lo.metric = true;
    torch::Tensor loss = RecceLoss(out, x, labels, lo, &parts);
    ASSERT_EQ(parts.size(), 3u);
    for (const auto& [name, value] : parts) {
      ExpectClose(torch::tensor(value, torch::kDouble), ref[name], name);
    }
    const double total = ref["loss_ce"].item<double>() + 0.1 * ref["loss_recons"].item<double>() +
                         0.1 * ref["loss_metric"].item<double>();
    EXPECT_NEAR(loss.item<double>(), total, kTol);
  }
}

TEST_F(ReferenceTest, SpslMatchesReference) {
  SpslOptions opt;
  opt.encoder.width = 1.0 / 8;
  opt.encoder.middle_blocks = 2;
  Spsl net(opt);
  Randomize(*net);
  net->to(torch::kDouble);
  net->eval();
  torch::Tensor x = torch::randn({2, 3, 48, 48}, torch::kDouble);
  auto ref =
      RunReference("spsl", {{"width", opt.encoder.width}, {"middle_blocks", 2}}, net.get(), x);
  ExpectClose(net->forward(x), ref["logits"], "logits");
}

TEST_F(ReferenceTest, PhaseOnlyMatchesTorchFft) {
  // float32, odd and even sizes.
  for (auto shape : {std::vector<int64_t>{2, 3, 32, 32}, std::vector<int64_t>{1, 3, 17, 24}}) {
    torch::Tensor x = torch::rand(shape) * 2 - 1;
    auto ref = RunReference("phase", nlohmann::json::object(), nullptr, x);
    torch::Tensor ours = PhaseOnlyReconstruction(x);
    EXPECT_EQ(ours.scalar_type(), torch::kFloat);
    ExpectClose(ours, ref["phase"], "phase");
  }
}

TEST(SpslTest, PhaseChannelStartsAsMeanOfRgbFilters) {
  SpslOptions opt;
  opt.encoder.width = 1.0 / 16;
  opt.encoder.middle_blocks = 1;
  Spsl net(opt);
  torch::Tensor w = net->backbone()->conv1()->weight;
  ASSERT_EQ(w.size(1), 4);
  EXPECT_TRUE(torch::allclose(w.select(1, 3), w.narrow(1, 0, 3).mean(1)));
  EXPECT_FALSE(torch::allclose(w.select(1, 3), w.select(1, 0)));
}

TEST(SpslTest, PhaseOfConstantImageIsImpulse) {
  // A constant image has all its energy at DC with phase 0: the reconstruction is a unit
  // impulse at the origin.
  torch::Tensor x = torch::full({1, 3, 8, 8}, 0.3);
  torch::Tensor p = PhaseOnlyReconstruction(x);
  EXPECT_NEAR(p[0][0][0][0].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(p.abs().sum().item<double>(), 1.0, 1e-5);
}

TEST(RecceTest, RejectsFewerThanTwoMiddleBlocks) {
  RecceOptions opt;
  opt.encoder.width = 1.0 / 16;
  opt.encoder.middle_blocks = 1;
  try {
    Recce net(opt);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least 2 middle blocks"), std::string::npos);
  }
}

TEST(XceptionTest, WidthScalesChannels) {
  EXPECT_EQ(ScaledChannels(728, 1.0), 728);
  EXPECT_EQ(ScaledChannels(728, 1.0 / 16), 46);
  EXPECT_EQ(ScaledChannels(32, 0.001), 1);
  XceptionOptions opt;
  opt.width = 0.25;
  opt.middle_blocks = 1;
  Xception net(opt);
  EXPECT_EQ(net->feature_dim(), 512);
  EXPECT_EQ(net->forward(torch::randn({2, 3, 40, 40})).sizes(), (std::vector<int64_t>{2, 2}));
}

}  // namespace
}  // namespace sd2::worker::baselines

#include "worker/baselines/recce.h"

#include <string>
#include <utility>

namespace sd2::worker::baselines {

namespace nn = torch::nn;
namespace F = torch::nn::functional;

namespace {

nn::Conv2d Conv(int64_t in, int64_t out, int64_t k, int64_t padding = 0) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).padding(padding).bias(false));
}

nn::Linear LinearNoBias(int64_t in, int64_t out) {
  return nn::Linear(nn::LinearOptions(in, out).bias(false));
}

// Upsample x2 (nearest), separable conv, BN, ReLU.
nn::Sequential UpBlock(int64_t in, int64_t out) {
  return nn::Sequential(nn::Functional([](const torch::Tensor& x) {
                          return F::interpolate(x, F::InterpolateFuncOptions()
                                                       .scale_factor(std::vector<double>{2.0, 2.0})
                                                       .mode(torch::kNearest));
                        }),
                        SeparableConv2d(in, out, 3, 1, 1), nn::BatchNorm2d(out), nn::ReLU());
}

torch::Tensor Bilinear(const torch::Tensor& x, at::IntArrayRef size) {
  return F::interpolate(x, F::InterpolateFuncOptions()
                               .size(std::vector<int64_t>(size.begin(), size.end()))
                               .mode(torch::kBilinear)
                               .align_corners(true));
}

// (normalised pooled embedding) -> pairwise cosine mapped to [0, 1].
torch::Tensor Correlation(const torch::Tensor& x) {
  torch::Tensor e = F::normalize(x.mean({2, 3}), F::NormalizeFuncOptions().p(2).dim(1));
  return (torch::matmul(e, e.t()) + 1.0) / 2.0;
}

}  // namespace

GuidedAttentionImpl::GuidedAttentionImpl(int64_t depth, double drop_rate) {
  gated_ = register_module(
      "gated", nn::Sequential(Conv(3, 3, 3, 1), nn::ReLU(), Conv(3, 1, 1), nn::Sigmoid()));
  h_ = register_module("h",
                       nn::Sequential(Conv(depth, depth, 1), nn::BatchNorm2d(depth), nn::ReLU()));
  dropout_ = register_module("dropout", nn::Dropout(drop_rate));
}

torch::Tensor GuidedAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& recons,
                                           const torch::Tensor& embedding) {
  torch::Tensor residual =
      Bilinear(torch::abs(x - recons), embedding.sizes().slice(2));  // (N, 3, h, w)
  torch::Tensor gate = gated_->forward(residual);
  return gate * h_->forward(embedding) + dropout_->forward(embedding);
}

GraphReasoningImpl::GraphReasoningImpl(int64_t va_in, int64_t va_out, int64_t vb_in, int64_t vb_out,
                                       int64_t vc_in, int64_t vc_out, int64_t ratio_b,
                                       int64_t ratio_c, double drop_rate)
    : ratio_b_(ratio_b), ratio_c_(ratio_c) {
  TORCH_CHECK(vb_out == va_out && vc_out == va_out,
              "graph reasoning needs va_out == vb_out == vc_out");
  va_embedding_ = register_module(
      "va_embedding", nn::Sequential(Conv(va_in, va_out, 1), nn::ReLU(), Conv(va_out, va_out, 1)));
  va_gated_b_ =
      register_module("va_gated_b", nn::Sequential(Conv(va_in, va_out, 1), nn::Sigmoid()));
  va_gated_c_ =
      register_module("va_gated_c", nn::Sequential(Conv(va_in, va_out, 1), nn::Sigmoid()));
  vb_embedding_ = register_module(
      "vb_embedding",
      nn::Sequential(LinearNoBias(vb_in, vb_out), nn::ReLU(), LinearNoBias(vb_out, vb_out)));
  vc_embedding_ = register_module(
      "vc_embedding",
      nn::Sequential(LinearNoBias(vc_in, vc_out), nn::ReLU(), LinearNoBias(vc_out, vc_out)));
  reweight_ab_ =
      register_module("reweight_ab", nn::Sequential(LinearNoBias(va_out + vb_out, 1), nn::ReLU(),
                                                    nn::Softmax(nn::SoftmaxOptions(1))));
  reweight_ac_ =
      register_module("reweight_ac", nn::Sequential(LinearNoBias(va_out + vc_out, 1), nn::ReLU(),
                                                    nn::Softmax(nn::SoftmaxOptions(1))));
  reproject_ = register_module(
      "reproject", nn::Sequential(Conv(va_out + vb_out + vc_out, va_in, 3, 1), nn::ReLU(),
                                  Conv(va_in, va_in, 1), nn::Dropout(drop_rate)));
}

torch::Tensor GraphReasoningImpl::Aggregate(const torch::Tensor& emb_a, const torch::Tensor& child,
                                            int64_t ratio, nn::Sequential& embedding,
                                            nn::Sequential& reweight) {
  const int64_t n = child.size(0), c = child.size(1), p = emb_a.size(2);
  // (N, C*r*r, P) -> (N, r*r, P, C): the r x r children of every vertex.
  torch::Tensor v = F::unfold(child, F::UnfoldFuncOptions({ratio, ratio}).stride({ratio, ratio}))
                        .reshape({n, c, ratio * ratio, -1})
                        .permute({0, 2, 3, 1});
  TORCH_CHECK(v.size(2) == p, "graph reasoning: decoder feature is not ", ratio,
              "x the encoder feature's size");
  torch::Tensor emb_child = embedding->forward(v);  // (N, r*r, P, D)
  torch::Tensor root = emb_a.permute({0, 2, 1}).unsqueeze(1).expand(
      {n, ratio * ratio, p, emb_a.size(1)});                               // (N, r*r, P, A)
  torch::Tensor w = reweight->forward(torch::cat({root, emb_child}, -1));  // (N, r*r, P, 1)
  return (emb_child * w).sum(1).permute({0, 2, 1});                        // (N, D, P)
}

torch::Tensor GraphReasoningImpl::forward(const torch::Tensor& a, const torch::Tensor& b,
                                          const torch::Tensor& c) {
  const int64_t n = a.size(0);
  torch::Tensor emb_a = va_embedding_->forward(a).flatten(2);  // (N, A, P)
  torch::Tensor gate_b = (1 - va_gated_b_->forward(a)).flatten(2);
  torch::Tensor gate_c = (1 - va_gated_c_->forward(a)).flatten(2);
  torch::Tensor agg_b = Aggregate(emb_a, b, ratio_b_, vb_embedding_, reweight_ab_) * gate_b;
  torch::Tensor agg_c = Aggregate(emb_a, c, ratio_c_, vc_embedding_, reweight_ac_) * gate_c;
  torch::Tensor all = torch::sigmoid(torch::cat({agg_b, agg_c, emb_a}, 1));
  return reproject_->forward(all.reshape({n, -1, a.size(2), a.size(3)}));
}

RecceImpl::RecceImpl(const RecceOptions& options) : options_(options) {
  TORCH_CHECK(options.encoder.middle_blocks >= 2, "RECCE needs at least 2 middle blocks, got ",
              options.encoder.middle_blocks);
  XceptionOptions enc = options.encoder;
  enc.num_classes = 0;
  enc.in_channels = 3;
  encoder_ = register_module("encoder", Xception(enc));
  const double w = enc.width;
  auto ch = [w](int64_t c) { return ScaledChannels(c, w); };
  const int64_t depth = encoder_->middle_channels();
  dropout_ = register_module("dropout", nn::Dropout(options.drop_rate));
  fc_ = register_module("fc", nn::Linear(encoder_->feature_dim(), options.num_classes));
  attention_ = register_module("attention", GuidedAttention(depth, options.drop_rate));
  reasoning_ = register_module(
      "reasoning",
      GraphReasoning(depth, ch(256), ch(256), ch(256), ch(128), ch(256), 2, 4, options.drop_rate));
  decoder1_ = register_module("decoder1", UpBlock(depth, ch(256)));
  decoder2_ = register_module("decoder2", Block(ch(256), ch(256), 3, 1, true, true));
  decoder3_ = register_module("decoder3", UpBlock(ch(256), ch(128)));
  decoder4_ = register_module("decoder4", Block(ch(128), ch(128), 3, 1, true, true));
  decoder5_ = register_module("decoder5", UpBlock(ch(128), ch(64)));
  decoder6_ = register_module("decoder6", nn::Sequential(Conv(ch(64), 3, 1), nn::Tanh()));
}

RecceOutput RecceImpl::Forward(const torch::Tensor& x) {
  RecceOutput out;
  torch::Tensor input = x;
  if (is_training() && options_.noise_std > 0) {
    // White noise on a random half of the images, clipped to the normalised range.
    torch::Tensor pick = (torch::rand({x.size(0), 1, 1, 1}, x.options()) > 0.5).to(x.dtype());
    input = torch::clamp(x + torch::randn_like(x) * options_.noise_std * pick, -1.0, 1.0);
  }
  const int m = encoder_->num_middle();
  const int fuse_after = m / 2;  // middle blocks run before the graph fusion
  torch::Tensor emb = encoder_->middle(0)->forward(encoder_->Entry(encoder_->Stem(input)));
  out.corrs.push_back(Correlation(emb));
  torch::Tensor d2 = decoder2_->forward(decoder1_->forward(dropout_->forward(emb)));
  out.corrs.push_back(Correlation(d2));
  torch::Tensor d4 = decoder4_->forward(decoder3_->forward(d2));
  out.corrs.push_back(Correlation(d4));
  torch::Tensor pred = decoder6_->forward(decoder5_->forward(d4));
  out.recons = Bilinear(pred, x.sizes().slice(2));

  for (int i = 1; i < fuse_after; ++i) emb = encoder_->middle(i)->forward(emb);
  torch::Tensor fusion = reasoning_->forward(emb, d2, d4) + emb;
  emb = encoder_->middle(fuse_after)->forward(fusion);
  emb = attention_->forward(x, out.recons, emb);
  for (int i = fuse_after + 1; i < m; ++i) emb = encoder_->middle(i)->forward(emb);
  torch::Tensor pooled = encoder_->Pool(encoder_->Exit(emb));
  out.logits = fc_->forward(dropout_->forward(pooled));
  return out;
}

torch::Tensor RecceLoss(const RecceOutput& out, const torch::Tensor& x, const torch::Tensor& labels,
                        const RecceLossOptions& options,
                        std::vector<std::pair<std::string, double>>* parts) {
  torch::Tensor ce = F::cross_entropy(out.logits, labels);
  torch::Tensor loss = ce;
  if (parts) parts->push_back({"loss_ce", ce.item<double>()});
  if (options.recons) {
    torch::Tensor real = labels == 0;
    torch::Tensor l1 = torch::zeros({}, x.options());
    if (real.any().item<bool>()) {
      torch::Tensor idx = real.nonzero().squeeze(1);
      l1 = torch::abs(out.recons.index_select(0, idx) - x.index_select(0, idx)).mean();
    }
    loss = loss + options.recons_weight * l1;
    if (parts) parts->push_back({"loss_recons", l1.item<double>()});
  }
  if (options.metric) {
    const int64_t n = labels.size(0);
    torch::Tensor fake = labels.to(torch::kBool);
    torch::Tensor row = fake.unsqueeze(1).expand({n, n}), col = fake.unsqueeze(0).expand({n, n});
    torch::Tensor diff = torch::logical_xor(row, col).to(x.dtype());  // real-fake pairs
    torch::Tensor either = torch::logical_or(torch::logical_or(row, col),
                                             torch::eye(n, labels.options()).to(torch::kBool));
    torch::Tensor same = 1.0 - either.to(x.dtype());  // distinct real-real pairs
    torch::Tensor ml = torch::zeros({}, x.options());
    constexpr double kEps = 1e-6;
    for (const torch::Tensor& corr : out.corrs) {
      torch::Tensor d = (corr * diff).sum() / (diff.sum() + kEps);
      torch::Tensor s = (corr * same).sum() / (same.sum() + kEps);
      ml = ml + torch::relu(1.0 - s + d);
    }
    loss = loss + options.metric_weight * ml;
    if (parts) parts->push_back({"loss_metric", ml.item<double>()});
  }
  return loss;
}

}  // namespace sd2::worker::baselines

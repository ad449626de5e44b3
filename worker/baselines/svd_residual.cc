#include "worker/baselines/svd_residual.h"

#include <algorithm>

namespace sd2::worker::baselines {

namespace {

bool IsAttentionProjection(const std::string& name) {
  if (name.find("self_attn.") == std::string::npos) return false;
  for (const char* s : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
    const std::string suffix = std::string(".") + s;
    if (name.size() >= suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace

SvdResidualImpl::SvdResidualImpl(torch::nn::Module& root, int64_t rank, bool keep_bases) {
  TORCH_CHECK(rank >= 1, "svd rank must be >= 1, got ", rank);
  torch::NoGradGuard no_grad;
  for (const auto& item : root.named_modules("", /*include_self=*/false)) {
    if (!IsAttentionProjection(item.key())) continue;
    auto linear = std::dynamic_pointer_cast<models::LoraLinearImpl>(item.value());
    if (!linear) continue;
    Part p;
    p.name = item.key();
    p.linear = models::LoraLinear(linear);
    torch::Tensor w = linear->weight.to(torch::kDouble);
    const int64_t k = std::min(w.size(0), w.size(1));
    TORCH_CHECK(rank < k, "svd rank ", rank, " must be below the projection rank ", k);
    auto [u, s, vh] = torch::linalg_svd(w, /*full_matrices=*/false);
    torch::Tensor ur = u.narrow(1, k - rank, rank), sr = s.narrow(0, k - rank, rank),
                  vr = vh.narrow(0, k - rank, rank);
    torch::Tensor residual = torch::matmul(ur * sr, vr);
    p.norm0_sq = w.pow(2).sum().item<double>();
    std::string key = p.name;
    std::replace(key.begin(), key.end(), '.', '_');
    const auto dtype = linear->weight.scalar_type();
    p.u = register_parameter(key + "_U_residual", ur.to(dtype));
    p.s = register_parameter(key + "_S_residual", sr.to(dtype));
    p.v = register_parameter(key + "_V_residual", vr.to(dtype));
    if (keep_bases) {
      p.u_main = register_buffer(key + "_U_main", u.narrow(1, 0, k - rank).to(dtype));
      p.v_main = register_buffer(key + "_V_main", vh.narrow(0, 0, k - rank).to(dtype));
    }
    // The registered weight becomes the frozen principal part.
    linear->weight.copy_((w - residual).to(dtype));
    linear->weight.set_requires_grad(false);
    p.main = linear->weight;
    if (linear->bias.defined()) linear->bias.set_requires_grad(false);
    parts_.push_back(std::move(p));
  }
  TORCH_CHECK(!parts_.empty(), "no attention projections to split");
}

void SvdResidualImpl::Apply() {
  for (Part& p : parts_) p.linear->weight = p.main + torch::matmul(p.u * p.s, p.v);
}

torch::Tensor SvdResidualImpl::OrthogonalLoss() {
  torch::Tensor total = torch::zeros({}, parts_.front().u.options());
  for (Part& p : parts_) {
    TORCH_CHECK(p.u_main.defined(), "the orthogonality term needs keep_bases");
    torch::Tensor u = torch::cat({p.u_main, p.u}, 1), v = torch::cat({p.v_main, p.v}, 0);
    torch::Tensor uu = torch::matmul(u.t(), u), vv = torch::matmul(v, v.t());
    total = total + 0.5 * (uu - torch::eye(uu.size(0), uu.options())).norm() +
            0.5 * (vv - torch::eye(vv.size(0), vv.options())).norm();
  }
  return total / static_cast<double>(parts_.size());
}

torch::Tensor SvdResidualImpl::KeepSingularValueLoss() {
  torch::Tensor total = torch::zeros({}, parts_.front().u.options());
  for (Part& p : parts_) {
    torch::Tensor w = p.main + torch::matmul(p.u * p.s, p.v);
    total = total + torch::abs(w.pow(2).sum() - p.norm0_sq);
  }
  return total / static_cast<double>(parts_.size());
}

std::vector<std::string> SvdResidualImpl::names() const {
  std::vector<std::string> out;
  for (const Part& p : parts_) out.push_back(p.name);
  return out;
}

}  // namespace sd2::worker::baselines

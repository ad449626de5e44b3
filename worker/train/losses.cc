#include "worker/train/losses.h"

namespace sd2::worker::train {
namespace {

torch::Tensor Normalize(const torch::Tensor& x) { return x / x.norm(2, -1, true).clamp_min(1e-12); }

torch::Tensor SigLip(const torch::Tensor& fn, const torch::Tensor& vn, const torch::Tensor& z,
                     const torch::Tensor& tau, const torch::Tensor& bias) {
  torch::Tensor logits = tau * torch::matmul(fn, vn.t()) + bias;
  return -torch::log_sigmoid(z * logits).sum() / fn.size(0);
}

torch::Device StageDevice(const Communicator* comm, const torch::Tensor& t) {
  return comm->device_buffers() && t.is_cuda() ? t.device() : torch::Device(torch::kCPU);
}

class GatherFunction : public torch::autograd::Function<GatherFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor local,
                               int64_t comm_ptr) {
    auto* comm = reinterpret_cast<Communicator*>(comm_ptr);
    ctx->saved_data["comm"] = comm_ptr;
    ctx->saved_data["rows"] = local.size(0);
    // Device communicators (NCCL) gather on the GPU; MPI gathers host copies.
    const torch::Device stage = StageDevice(comm, local);
    torch::Tensor in = local.detach().to(stage, torch::kFloat32).contiguous();
    torch::Tensor out = torch::empty({comm->size() * local.size(0), local.size(1)}, in.options());
    Status s = comm->AllGather(in.data_ptr<float>(), size_t(in.numel()), out.data_ptr<float>());
    TORCH_CHECK(s.ok(), "gather of text embeddings failed: ", s.ToString());
    return out.to(local.device(), local.scalar_type());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    int64_t rows = ctx->saved_data["rows"].toInt();
    torch::Tensor g =
        grads[0].to(StageDevice(comm, grads[0]), torch::kFloat32).contiguous().clone();
    Status s = comm->AllReduceSum(g.data_ptr<float>(), size_t(g.numel()));
    TORCH_CHECK(s.ok(), "all-reduce of text-embedding gradients failed: ", s.ToString());
    torch::Tensor mine =
        g.narrow(0, comm->rank() * rows, rows).to(grads[0].device(), grads[0].scalar_type());
    return {mine, torch::Tensor()};
  }
};

}  // namespace

Status ValidateLossOptions(const LossOptions& o) {
  if (o.lc_reduction != "mean" && o.lc_reduction != "sum")
    return InvalidArgumentError("lc_reduction must be 'mean' or 'sum', got '" + o.lc_reduction +
                                "'");
  if (o.ls_reduction != "mean" && o.ls_reduction != "sum")
    return InvalidArgumentError("ls_reduction must be 'sum' or 'mean', got '" + o.ls_reduction +
                                "'");
  return OkStatus();
}

Sd2Losses ComputeSd2Losses(const torch::Tensor& f, const torch::Tensor& u, const torch::Tensor& vf,
                           const torch::Tensor& ve, const torch::Tensor& y,
                           const torch::Tensor& logit_scale,
                           const torch::Tensor& siglip_logit_scale, const torch::Tensor& bias,
                           int64_t offset, const LossOptions& o) {
  Sd2Losses out;
  torch::Tensor fn = Normalize(f.to(torch::kFloat32));
  torch::Tensor un = Normalize(u.to(torch::kFloat32));
  torch::Tensor tau = logit_scale.exp();
  torch::Tensor logits = tau * torch::matmul(fn, un.t());  // [B, 5]
  torch::Tensor ce = -torch::log_softmax(logits, 1).gather(1, y.view({-1, 1})).squeeze(1);
  out.l_c = o.lc_reduction == "sum" ? ce.sum() : ce.mean();
  torch::Tensor sim = torch::matmul(un, un.t()) - torch::eye(u.size(0), un.options());
  out.l_s = o.ls_reduction == "mean" ? sim.pow(2).mean() : sim.pow(2).sum();
  const int64_t b = f.size(0);
  out.l_d = torch::zeros({}, fn.options());
  if (o.ld_face || o.ld_env) {
    const int64_t n_all = o.ld_face ? vf.size(0) : ve.size(0);
    torch::Tensor z = -torch::ones({b, n_all}, fn.options());
    z.narrow(1, offset, b).add_(2 * torch::eye(b, fn.options()));
    torch::Tensor tau_d = siglip_logit_scale.exp();
    if (o.ld_face)
      out.l_d = out.l_d + SigLip(fn, Normalize(vf.to(torch::kFloat32)), z, tau_d, bias);
    if (o.ld_env) out.l_d = out.l_d + SigLip(fn, Normalize(ve.to(torch::kFloat32)), z, tau_d, bias);
  }
  out.total = o.alpha * out.l_c + out.l_s + out.l_d;
  return out;
}

StatusOr<torch::Tensor> GatherWithGrad(const torch::Tensor& local, Communicator* comm) {
  if (local.dim() != 2) return InvalidArgumentError("GatherWithGrad needs a [B, D] tensor");
  if (comm->size() == 1) return local;
  try {
    return GatherFunction::apply(local, reinterpret_cast<int64_t>(comm));
  } catch (const c10::Error& e) {
    return UnavailableError(e.what_without_backtrace());
  }
}

}  // namespace sd2::worker::train

#include "worker/train/losses_cli.h"

#include <nlohmann/json.hpp>

#include "worker/models/clip.h"
#include "worker/train/losses.h"

namespace sd2::worker::train {

StatusOr<std::string> LossesJsonFromFile(const std::string& path) {
  SD2_ASSIGN_OR_RETURN(auto t, models::ReadTensors(path));
  for (const char* name : {"f", "u", "vf", "ve", "y", "logit_scale", "bias"})
    if (!t.count(name)) return InvalidArgumentError(path + ": tensor '" + name + "' is missing");
  const torch::Tensor &f = t["f"], &u = t["u"], &vf = t["vf"], &ve = t["ve"];
  torch::Tensor y = t["y"];
  auto shape = [](const torch::Tensor& x) {
    std::ostringstream os;
    os << x.sizes();
    return os.str();
  };
  if (f.dim() != 2 || f.size(0) == 0)
    return InvalidArgumentError(path + ": f must be [B, D] with B > 0, got " + shape(f));
  const int64_t b = f.size(0), d = f.size(1);
  if (u.dim() != 2 || u.size(0) != 5 || u.size(1) != d)
    return InvalidArgumentError(path + ": u must be [5, " + std::to_string(d) + "], got " +
                                shape(u));
  for (const auto* v : {&vf, &ve})
    if (v->dim() != 2 || v->size(0) != b || v->size(1) != d)
      return InvalidArgumentError(path + ": vf and ve must be [" + std::to_string(b) + ", " +
                                  std::to_string(d) + "], got " + shape(*v));
  if (y.scalar_type() != torch::kInt64 || y.dim() != 1 || y.size(0) != b)
    return InvalidArgumentError(path + ": y must be int64 [" + std::to_string(b) + "], got " +
                                shape(y));
  if (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() > 4)
    return InvalidArgumentError(path + ": y holds type indices outside 0..4");
  for (const char* name : {"logit_scale", "bias", "alpha"}) {
    if (t.count(name) && t[name].numel() != 1)
      return InvalidArgumentError(path + ": " + name + " must be a scalar, got " + shape(t[name]));
  }
  LossOptions o;
  if (t.count("alpha")) o.alpha = t["alpha"].item<double>();
  torch::Tensor ls = t["logit_scale"].reshape({}), bias = t["bias"].reshape({});
  Sd2Losses l = ComputeSd2Losses(f, u, vf, ve, y, ls, ls, bias, 0, o);
  nlohmann::json j = {{"L_C", l.l_c.item<double>()},
                      {"L_S", l.l_s.item<double>()},
                      {"L_D", l.l_d.item<double>()},
                      {"total", l.total.item<double>()}};
  return j.dump();
}

}  // namespace sd2::worker::train

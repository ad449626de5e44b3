#include "worker/method.h"

namespace sd2::worker {

MethodRegistry& MethodRegistry::Global() {
  static MethodRegistry registry;
  return registry;
}

void MethodRegistry::Register(const std::string& name, MethodFactory factory) {
  for (auto& [n, f] : factories_) {
    if (n == name) {
      f = std::move(factory);
      return;
    }
  }
  factories_.emplace_back(name, std::move(factory));
}

StatusOr<std::unique_ptr<Method>> MethodRegistry::Create(const std::string& name) const {
  for (const auto& [n, f] : factories_) {
    if (n == name) return f();
  }
  std::string known;
  for (const auto& [n, f] : factories_) known += (known.empty() ? "" : ", ") + n;
  return NotFoundError("unknown method '" + name + "' (this worker has: " + known + ")");
}

std::vector<std::string> MethodRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& [n, f] : factories_) names.push_back(n);
  return names;
}

}  // namespace sd2::worker

#include "worker/train/methods.h"

#include <memory>

#include "worker/method.h"
#include "worker/train/sd2_method.h"

namespace sd2::worker {

void RegisterTorchMethods() {
  static bool done = false;
  if (done) return;
  done = true;
  MethodRegistry::Global().Register("sd2", [] { return std::make_unique<train::Sd2Method>(); });
}

}  // namespace sd2::worker

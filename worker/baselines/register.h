// Registers the baseline methods into MethodRegistry::Global(): "xception", "recce", "spsl",
// "clip", "clip_lora", "clip_svd", "univfd" and the GenImage linear "probe" (Table 4).
// Torch-free header; the worker binary's main calls it once, beside RegisterTorchMethods().
//
//   sd2::worker::RegisterBaselineMethods();
//   auto m = sd2::worker::MethodRegistry::Global().Create("xception");
#ifndef SD2_WORKER_BASELINES_REGISTER_H_
#define SD2_WORKER_BASELINES_REGISTER_H_

#include <string>
#include <vector>

namespace sd2::worker {

void RegisterBaselineMethods();
// The names RegisterBaselineMethods() registers.
std::vector<std::string> BaselineMethodNames();

}  // namespace sd2::worker

#endif  // SD2_WORKER_BASELINES_REGISTER_H_

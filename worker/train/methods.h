// Registers the LibTorch methods of worker/train ("sd2") into MethodRegistry::Global().
// Torch-free header; the worker binary's main calls it once.
//
//   sd2::worker::RegisterTorchMethods();
//   auto m = sd2::worker::MethodRegistry::Global().Create("sd2");
#ifndef SD2_WORKER_TRAIN_METHODS_H_
#define SD2_WORKER_TRAIN_METHODS_H_

namespace sd2::worker {

void RegisterTorchMethods();

}  // namespace sd2::worker

#endif  // SD2_WORKER_TRAIN_METHODS_H_

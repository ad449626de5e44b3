// The number of CUDA devices this process sees, from LibTorch's CUDA runtime. The header is
// torch-free so the worker runtime (worker/runtime/devices.cc) can call it; it is compiled only
// in LibTorch builds (worker/runtime/CMakeLists.txt adds cuda_devices.cc next to the runtime).
//
//   int n = sd2::worker::CudaDeviceCount();   // 0 on a machine without a GPU or CUDA build
#ifndef SD2_WORKER_TRAIN_CUDA_DEVICES_H_
#define SD2_WORKER_TRAIN_CUDA_DEVICES_H_

namespace sd2::worker {

// torch::cuda::device_count(): the devices CUDA_VISIBLE_DEVICES leaves visible (ordinals
// 0..n-1); 0 when LibTorch has no CUDA or the machine no GPU.
int CudaDeviceCount();

}  // namespace sd2::worker

#endif  // SD2_WORKER_TRAIN_CUDA_DEVICES_H_

#include "worker/train/cuda_devices.h"

#include <torch/cuda.h>

namespace sd2::worker {

int CudaDeviceCount() {
  if (!torch::cuda::is_available()) return 0;
  return static_cast<int>(torch::cuda::device_count());
}

}  // namespace sd2::worker

// libFuzzer entry point; SD2_FUZZ_TARGET names one function of fuzz/targets.h.
#include "fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return sd2::fuzz::SD2_FUZZ_TARGET(data, size);
}

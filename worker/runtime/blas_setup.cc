#include "worker/runtime/blas_setup.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace sd2::worker {

std::string BetterBlasCoretype(const std::string& chosen_core, bool avx512f, bool avx2_fma) {
  if (chosen_core != "Prescott") return "";
  if (avx512f) return "SkylakeX";
  if (avx2_fma) return "Haswell";
  return "";
}

void ReexecForBlasKernelsIfNeeded(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;
  const char* off = std::getenv("SD2_NO_BLAS_REEXEC");
  if (off != nullptr && std::strcmp(off, "1") == 0) return;
  auto* corename = reinterpret_cast<char* (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (corename == nullptr) return;  // not OpenBLAS
  const char* chosen = corename();
  __builtin_cpu_init();
  const std::string want =
      BetterBlasCoretype(chosen != nullptr ? chosen : "", __builtin_cpu_supports("avx512f"),
                         __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  if (want.empty()) return;
  ::setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
  ::execv("/proc/self/exe", argv);
  // exec failed: go on with the kernels OpenBLAS chose.
}

}  // namespace sd2::worker

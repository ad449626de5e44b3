// OpenBLAS (the BLAS of Debian's LibTorch) picks its GEMM kernels from the CPU's family and model
// when it is loaded. On CPUs it does not know — virtual machines that report a generic "Intel
// Xeon Processor" — it falls back to its Prescott (SSE3) kernels even where AVX2 or AVX-512 is
// there: training steps of the tiny models take 1.7x as long (measured on this project's 2-core
// VM). The choice cannot change once the library is loaded, so sd2-worker re-executes itself
// once, first thing in main, with OPENBLAS_CORETYPE naming the kernels the CPU can run.
//
//   int main(int argc, char** argv) {
//     sd2::worker::ReexecForBlasKernelsIfNeeded(argv);  // returns unless it exec()s
#ifndef SD2_WORKER_RUNTIME_BLAS_SETUP_H_
#define SD2_WORKER_RUNTIME_BLAS_SETUP_H_

#include <string>

namespace sd2::worker {

// The OPENBLAS_CORETYPE for a CPU with these features, given the core OpenBLAS chose: "SkylakeX"
// (AVX-512F) or "Haswell" (AVX2 + FMA) when OpenBLAS fell back to "Prescott", else "" (keep).
std::string BetterBlasCoretype(const std::string& chosen_core, bool avx512f, bool avx2_fma);

// When OpenBLAS is loaded, OPENBLAS_CORETYPE is unset and BetterBlasCoretype names a core: sets
// it and execv()s /proc/self/exe with the same arguments (on exec failure, returns and runs on
// with the slow kernels). SD2_NO_BLAS_REEXEC=1 turns it off.
void ReexecForBlasKernelsIfNeeded(char** argv);

}  // namespace sd2::worker

#endif  // SD2_WORKER_RUNTIME_BLAS_SETUP_H_

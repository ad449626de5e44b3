// bench_auc DIR: times sd2::results::RocAuc (one thread) on the data that bench/auc_ref.py wrote
// into DIR (labels.u8: one byte per sample; scores.f64: little-endian doubles) and prints
// "<auc> <best seconds>". Timed: everything from the in-memory vectors to the AUC (validation,
// the radix sort and the count), best of --repeats runs.
//
//   bench_auc /tmp/bench-auc --repeats 3
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "results/metrics.h"

namespace {

template <typename T>
bool ReadRaw(const std::string& path, std::vector<T>* out) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return false;
  const std::streamsize bytes = in.tellg();
  in.seekg(0);
  out->resize(static_cast<size_t>(bytes) / sizeof(T));
  return static_cast<bool>(in.read(reinterpret_cast<char*>(out->data()), bytes));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help")) {
    std::cerr << "usage: bench_auc DIR [--repeats N]\n";
    return argc < 2 ? 2 : 0;
  }
  const std::string dir = argv[1];
  int repeats = 3;
  if (argc >= 4 && !std::strcmp(argv[2], "--repeats")) repeats = std::max(1, std::atoi(argv[3]));
  std::vector<uint8_t> raw_labels;
  std::vector<double> scores;
  if (!ReadRaw(dir + "/labels.u8", &raw_labels) || !ReadRaw(dir + "/scores.f64", &scores)) {
    std::cerr << "bench_auc: cannot read " << dir << "/labels.u8 and scores.f64\n";
    return 1;
  }
  std::vector<int> labels(raw_labels.begin(), raw_labels.end());
  double best = 1e300, auc = 0;
  for (int r = 0; r < repeats; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    sd2::StatusOr<double> v = sd2::results::RocAuc(labels, scores);
    auto t1 = std::chrono::steady_clock::now();
    if (!v.ok()) {
      std::cerr << "bench_auc: " << v.status() << "\n";
      return 1;
    }
    auc = *v;
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  std::printf("%.17g %.6f\n", auc, best);
  return 0;
}

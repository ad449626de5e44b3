// The C++ side of `bench/run loader` (bench/loader.sh): decode + augment + normalise, one
// thread, with every augmentation applied (flip, rotate 7 degrees, Gaussian blur sigma 1,
// isotropic resize 0.7, brightness +0.05 / contrast +0.1, JPEG quality 75), CLIP normalisation.
//
//   loader_bench make DIR N        writes N 512x512 JPEG test images DIR/img_<i>.jpg
//   loader_bench run DIR N SIZE R  best-of-R seconds for the N images at SIZE; prints
//                                  "seconds=<s> mean=<mean normalised value of the central half>"
//   loader_bench stages DIR N SIZE R  CPU ms per image of each stage (decode, resize, ...)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "worker/data/augment.h"
#include "worker/data/image.h"
#include "worker/data/random.h"

namespace wd = sd2::worker::data;

static int Make(const std::string& dir, int n) {
  for (int i = 0; i < n; ++i) {
    wd::Image img(512, 512);
    wd::Rng rng(static_cast<uint64_t>(i));
    const double fx = rng.Uniform(0.01, 0.05), fy = rng.Uniform(0.01, 0.05);
    for (int y = 0; y < 512; ++y) {
      for (int x = 0; x < 512; ++x) {
        uint8_t* p = img.At(x, y);
        double base = 128 + 60 * std::sin(x * fx + i) * std::cos(y * fy);
        p[0] = static_cast<uint8_t>(std::clamp(base + 20 * rng.Normal(), 0.0, 255.0));
        p[1] = static_cast<uint8_t>(std::clamp(255 - base + 10 * rng.Normal(), 0.0, 255.0));
        p[2] = static_cast<uint8_t>((x ^ y) & 255);
      }
    }
    auto jpg = wd::EncodeJpeg(img, 90);
    if (!jpg.ok()) return 1;
    const std::string path = dir + "/img_" + std::to_string(i) + ".jpg";
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return 1;
    std::fwrite(jpg->data(), 1, jpg->size(), f);
    std::fclose(f);
  }
  return 0;
}

static int Run(const std::string& dir, int n, int size, int repeats) {
  std::vector<float> out(static_cast<size_t>(3) * size * size);
  double best = 1e30, mean = 0;
  for (int r = 0; r < repeats; ++r) {
    const std::clock_t t0 = std::clock();
    double sum = 0;
    for (int i = 0; i < n; ++i) {
      auto img = wd::LoadImage(dir + "/img_" + std::to_string(i) + ".jpg", size);
      if (!img.ok()) {
        std::fprintf(stderr, "%s\n", img.status().ToString().c_str());
        return 1;
      }
      wd::Image im = wd::Resize(*img, size, size);
      wd::HFlip(&im);
      im = wd::Rotate(im, 7.0);
      im = wd::GaussianBlur(im, 1.0);
      im = wd::IsotropicResize(im, 0.7);
      wd::BrightnessContrast(&im, 0.05, 0.1);
      auto j = wd::JpegRecompress(im, 75);
      if (!j.ok()) return 1;
      wd::Normalize(*j, wd::Normalization::kClip, out.data());
      // Mean over the central half (rotation borders differ between libraries), in double
      // with four independent partial sums (as numpy's pairwise sum is not one serial chain).
      for (int c = 0; c < 3; ++c) {
        for (int y = size / 4; y < size * 3 / 4; ++y) {
          const float* row = out.data() + (static_cast<size_t>(c) * size + y) * size;
          double part[4] = {0, 0, 0, 0};
          int x = size / 4;
          for (; x + 4 <= size * 3 / 4; x += 4) {
            for (int k = 0; k < 4; ++k) part[k] += row[x + k];
          }
          for (; x < size * 3 / 4; ++x) part[0] += row[x];
          sum += (part[0] + part[1]) + (part[2] + part[3]);
        }
      }
    }
    // CPU time of this (single-threaded) process: per-core cost, robust to a busy machine.
    best = std::min(best, static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC);
    mean =
        sum / (static_cast<double>(n) * 3 * (size * 3 / 4 - size / 4) * (size * 3 / 4 - size / 4));
  }
  std::printf("seconds=%.4f mean=%.5f\n", best, mean);
  return 0;
}

static double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Profiling aid: CPU time per pipeline stage (best of `repeats` passes over the N images).
static int Stages(const std::string& dir, int n, int size, int repeats) {
  constexpr int kStages = 9;
  const char* names[kStages] = {"decode",    "resize", "hflip", "rotate",   "blur",
                                "isoresize", "color",  "jpeg",  "normalize"};
  double best[kStages];
  std::fill(best, best + kStages, 1e30);
  std::vector<float> out(static_cast<size_t>(3) * size * size);
  for (int r = 0; r < repeats; ++r) {
    double t[kStages] = {};
    for (int i = 0; i < n; ++i) {
      double t0 = CpuSeconds();
      int stage = 0;
      auto lap = [&] {
        const double t1 = CpuSeconds();
        t[stage++] += t1 - t0;
        t0 = t1;
      };
      auto img = wd::LoadImage(dir + "/img_" + std::to_string(i) + ".jpg", size);
      if (!img.ok()) return 1;
      lap();
      wd::Image im = wd::Resize(*img, size, size);
      lap();
      wd::HFlip(&im);
      lap();
      im = wd::Rotate(im, 7.0);
      lap();
      im = wd::GaussianBlur(im, 1.0);
      lap();
      im = wd::IsotropicResize(im, 0.7);
      lap();
      wd::BrightnessContrast(&im, 0.05, 0.1);
      lap();
      auto j = wd::JpegRecompress(im, 75);
      if (!j.ok()) return 1;
      lap();
      wd::Normalize(*j, wd::Normalization::kClip, out.data());
      lap();
    }
    for (int k = 0; k < kStages; ++k) best[k] = std::min(best[k], t[k]);
  }
  double total = 0;
  for (double v : best) total += v;
  for (int k = 0; k < kStages; ++k) {
    std::printf("%-10s %7.3f ms/img %5.1f%%\n", names[k], 1e3 * best[k] / n, 100 * best[k] / total);
  }
  std::printf("%-10s %7.3f ms/img\n", "total", 1e3 * total / n);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "make") return Make(argv[2], std::atoi(argv[3]));
  if (argc == 6 && std::string(argv[1]) == "run") {
    return Run(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]));
  }
  if (argc == 6 && std::string(argv[1]) == "stages") {
    return Stages(argv[2], std::atoi(argv[3]), std::atoi(argv[4]), std::atoi(argv[5]));
  }
  std::fprintf(stderr,
               "usage: loader_bench make DIR N | loader_bench run|stages DIR N SIZE REPEATS\n");
  return 2;
}

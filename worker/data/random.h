// Deterministic, platform-independent randomness for the data pipeline: every random choice is
// a pure function of its inputs (seed, epoch, sample, ...), so resumed and re-run loaders see
// the same numbers on every machine. (std:: distributions differ between standard libraries.)
//
//   Rng rng(MixSeed(seed, epoch, sample_index));
//   if (rng.Uniform() < 0.5) Flip(&img);
//   int q = rng.UniformInt(40, 100);
#ifndef SD2_WORKER_DATA_RANDOM_H_
#define SD2_WORKER_DATA_RANDOM_H_

#include <cmath>
#include <cstdint>
#include <string_view>

namespace sd2::worker::data {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Combines values into one well-mixed 64-bit seed.
inline uint64_t MixSeed(uint64_t a) { return SplitMix64(a); }
template <typename... Rest>
inline uint64_t MixSeed(uint64_t a, uint64_t b, Rest... rest) {
  return MixSeed(SplitMix64(a) ^ (b + 0x632be59bd9b4e019ULL + (a << 6) + (a >> 2)), rest...);
}

// FNV-1a of the bytes, then mixed with `seed`.
inline uint64_t HashString(std::string_view s, uint64_t seed = 0) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return MixSeed(seed, h);
}

// xoshiro256** seeded through SplitMix64. Not thread-safe; one per task.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& v : s_) v = seed = SplitMix64(seed);
  }
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  // Uniform integer in [lo, hi] (inclusive).
  int UniformInt(int lo, int hi) {
    return lo + static_cast<int>(Next() % static_cast<uint64_t>(hi - lo + 1));
  }
  // Index in [0, n).
  uint64_t Below(uint64_t n) { return Next() % n; }
  bool Bernoulli(double p) { return Uniform() < p; }
  // Standard normal (Box-Muller).
  double Normal() {
    double u1 = Uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * Uniform());
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_RANDOM_H_

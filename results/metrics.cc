#include "results/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <unordered_map>

namespace sd2::results {
namespace {

// Maps a finite double to a uint64 whose unsigned order is the double's order. -0.0 becomes
// +0.0 first, so that the two compare equal as they do in numpy.
inline uint64_t SortKey(double v) {
  if (v == 0) v = 0;
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits & 0x8000000000000000ULL) ? ~bits : (bits | 0x8000000000000000ULL);
}

inline double FromSortKey(uint64_t key) {
  uint64_t bits = (key & 0x8000000000000000ULL) ? (key & ~0x8000000000000000ULL) : ~key;
  double v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

constexpr int kRadixBits = 16;
constexpr int kRadixPasses = 4;
constexpr size_t kRadixBuckets = size_t{1} << kRadixBits;
// Below this many samples std::sort beats clearing the radix histograms.
constexpr size_t kRadixMinSize = size_t{1} << 16;

// Adds `k`'s digits to the per-pass histograms.
inline void CountDigits(uint64_t k, size_t* counts) {
  for (int p = 0; p < kRadixPasses; ++p) {
    ++counts[p * kRadixBuckets + ((k >> (p * kRadixBits)) & (kRadixBuckets - 1))];
  }
}

// LSD radix sort of keys[0, n) with 16-bit digits (4 passes over 64 bits), given the digit
// histograms; passes whose digit is the same for every key are skipped (common for
// probabilities, whose top bits rarely vary). `tmp` has room for n keys.
void RadixSort(uint64_t* keys, size_t n, size_t* counts, uint64_t* tmp) {
  if (n < 2) return;
  uint64_t* src = keys;
  uint64_t* dst = tmp;
  for (int p = 0; p < kRadixPasses; ++p) {
    size_t* c = &counts[p * kRadixBuckets];
    bool trivial = false;
    for (size_t b = 0; b < kRadixBuckets; ++b) trivial = trivial || c[b] == n;
    if (trivial) continue;
    size_t sum = 0;
    for (size_t b = 0; b < kRadixBuckets; ++b) {
      size_t t = c[b];
      c[b] = sum;
      sum += t;
    }
    const int shift = p * kRadixBits;
    for (size_t i = 0; i < n; ++i) {
      uint64_t k = src[i];
      dst[c[(k >> shift) & (kRadixBuckets - 1)]++] = k;
    }
    std::swap(src, dst);
  }
  if (src != keys) std::memcpy(keys, src, n * sizeof(uint64_t));
}

// Sorted keys of the positives and of the negatives, in one buffer: positives in [0, pos),
// negatives in [pos, size). Input must be valid (ValidateScores).
struct SplitKeys {
  std::vector<uint64_t> keys;
  size_t pos = 0;
  const uint64_t* pos_begin() const { return keys.data(); }
  const uint64_t* neg_begin() const { return keys.data() + pos; }
  size_t num_pos() const { return pos; }
  size_t num_neg() const { return keys.size() - pos; }
};

SplitKeys SortSplit(const std::vector<int>& labels, const std::vector<double>& scores) {
  const size_t n = labels.size();
  SplitKeys s;
  s.keys.resize(n);
  if (n < kRadixMinSize) {
    size_t front = 0, back = n;
    for (size_t i = 0; i < n; ++i) s.keys[labels[i] == 1 ? front++ : --back] = SortKey(scores[i]);
    s.pos = front;
    std::sort(s.keys.begin(), s.keys.begin() + static_cast<std::ptrdiff_t>(front));
    std::sort(s.keys.begin() + static_cast<std::ptrdiff_t>(front), s.keys.end());
    return s;
  }
  // One pass: keys of positives fill the buffer from the front, negatives from the back, and the
  // digit histograms of both classes are counted on the way.
  std::vector<size_t> counts(2 * kRadixPasses * kRadixBuckets, 0);
  size_t* pos_counts = counts.data();
  size_t* neg_counts = counts.data() + kRadixPasses * kRadixBuckets;
  size_t front = 0, back = n;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t k = SortKey(scores[i]);
    if (labels[i] == 1) {
      s.keys[front++] = k;
      CountDigits(k, pos_counts);
    } else {
      s.keys[--back] = k;
      CountDigits(k, neg_counts);
    }
  }
  s.pos = front;
  std::vector<uint64_t> tmp(std::max(s.num_pos(), s.num_neg()));
  RadixSort(s.keys.data(), s.num_pos(), pos_counts, tmp.data());
  RadixSort(s.keys.data() + s.pos, s.num_neg(), neg_counts, tmp.data());
  return s;
}

Status RequireBothClasses(int64_t pos, int64_t neg, const char* metric) {
  if (pos == 0 || neg == 0) {
    return InvalidArgumentError(std::string(metric) + " is undefined: only one class present (" +
                                std::to_string(pos) + " fake, " + std::to_string(neg) +
                                " real samples)");
  }
  return OkStatus();
}

}  // namespace

Status ValidateScores(const std::vector<int>& labels, const std::vector<double>& scores) {
  if (labels.size() != scores.size()) {
    return InvalidArgumentError("labels and scores differ in length (" +
                                std::to_string(labels.size()) + " vs " +
                                std::to_string(scores.size()) + ")");
  }
  if (labels.empty()) return InvalidArgumentError("no samples");
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] != 0 && labels[i] != 1) {
      return InvalidArgumentError("sample " + std::to_string(i) + ": label " +
                                  std::to_string(labels[i]) + " is not 0 (real) or 1 (fake)");
    }
    if (!std::isfinite(scores[i])) {
      return InvalidArgumentError("sample " + std::to_string(i) + ": score is not finite");
    }
  }
  return OkStatus();
}

StatusOr<ClfCurve> BinaryClfCurve(const std::vector<int>& labels,
                                  const std::vector<double>& scores) {
  SD2_RETURN_IF_ERROR(ValidateScores(labels, scores));
  SplitKeys s = SortSplit(labels, scores);
  const uint64_t* pos = s.pos_begin();
  const uint64_t* neg = s.neg_begin();
  ClfCurve curve;
  // Walk both ascending arrays from their ends: descending scores.
  size_t i = s.num_pos(), j = s.num_neg();
  int64_t tp = 0, fp = 0;
  while (i > 0 || j > 0) {
    uint64_t key = 0;
    if (i > 0) key = pos[i - 1];
    if (j > 0 && (i == 0 || neg[j - 1] > key)) key = neg[j - 1];
    while (i > 0 && pos[i - 1] == key) --i, ++tp;
    while (j > 0 && neg[j - 1] == key) --j, ++fp;
    curve.thresholds.push_back(FromSortKey(key));
    curve.tps.push_back(tp);
    curve.fps.push_back(fp);
  }
  return curve;
}

StatusOr<double> RocAuc(const std::vector<int>& labels, const std::vector<double>& scores) {
  SD2_RETURN_IF_ERROR(ValidateScores(labels, scores));
  SplitKeys s = SortSplit(labels, scores);
  SD2_RETURN_IF_ERROR(RequireBothClasses(s.num_pos(), s.num_neg(), "AUC"));
  const uint64_t* pos = s.pos_begin();
  const uint64_t* neg = s.neg_begin();
  // Mann-Whitney U with ties counted half equals the trapezoidal ROC AUC. Twice U is an
  // integer: sum over positives of 2 * #(negatives below) + #(negatives equal).
  unsigned __int128 twice_u = 0;
  size_t j = 0;
  const size_t np = s.num_pos(), nn = s.num_neg();
  size_t i = 0;
  while (i < np) {
    const uint64_t key = pos[i];
    size_t run = 1;
    while (i + run < np && pos[i + run] == key) ++run;
    while (j < nn && neg[j] < key) ++j;
    size_t eq = 0;
    while (j + eq < nn && neg[j + eq] == key) ++eq;
    twice_u += static_cast<unsigned __int128>(run) * (2 * j + eq);
    i += run;
  }
  const long double denom = 2.0L * static_cast<long double>(np) * static_cast<long double>(nn);
  return static_cast<double>(static_cast<long double>(twice_u) / denom);
}

StatusOr<double> Accuracy(const std::vector<int>& labels, const std::vector<double>& scores) {
  SD2_RETURN_IF_ERROR(ValidateScores(labels, scores));
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += ((scores[i] > 0.5) == (labels[i] == 1));
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

StatusOr<double> Eer(const std::vector<int>& labels, const std::vector<double>& scores) {
  SD2_ASSIGN_OR_RETURN(ClfCurve c, BinaryClfCurve(labels, scores));
  const size_t m = c.tps.size();
  SD2_RETURN_IF_ERROR(RequireBothClasses(c.tps.back(), c.fps.back(), "EER"));
  // roc_curve(drop_intermediate=True): keep the ends and every point where the second
  // difference of fps or tps is non-zero, then prepend (0, 0).
  std::vector<int64_t> tps{0}, fps{0};
  for (size_t k = 0; k < m; ++k) {
    bool keep = k == 0 || k + 1 == m || m <= 2;
    if (!keep) {
      keep = (c.fps[k + 1] - 2 * c.fps[k] + c.fps[k - 1]) != 0 ||
             (c.tps[k + 1] - 2 * c.tps[k] + c.tps[k - 1]) != 0;
    }
    if (keep) {
      tps.push_back(c.tps[k]);
      fps.push_back(c.fps[k]);
    }
  }
  const double p = static_cast<double>(tps.back()), n = static_cast<double>(fps.back());
  double best = 0, best_gap = 0;
  for (size_t k = 0; k < tps.size(); ++k) {
    const double fpr = static_cast<double>(fps[k]) / n;
    const double fnr = 1.0 - static_cast<double>(tps[k]) / p;
    const double gap = std::fabs(fnr - fpr);
    if (k == 0 || gap < best_gap) {
      best_gap = gap;
      best = fpr;
    }
  }
  return best;
}

StatusOr<double> AveragePrecision(const std::vector<int>& labels,
                                  const std::vector<double>& scores) {
  SD2_ASSIGN_OR_RETURN(ClfCurve c, BinaryClfCurve(labels, scores));
  SD2_RETURN_IF_ERROR(RequireBothClasses(c.tps.back(), c.fps.back(), "AP"));
  const double p = static_cast<double>(c.tps.back());
  double ap = 0, prev_recall = 0;
  for (size_t k = 0; k < c.tps.size(); ++k) {
    const double recall = static_cast<double>(c.tps[k]) / p;
    const double precision =
        static_cast<double>(c.tps[k]) / static_cast<double>(c.tps[k] + c.fps[k]);
    ap += (recall - prev_recall) * precision;
    prev_recall = recall;
  }
  return ap;
}

namespace {

struct VideoScores {
  std::vector<int> labels;
  std::vector<double> scores;
};

StatusOr<VideoScores> GroupByVideo(const std::vector<int>& labels,
                                   const std::vector<double>& scores,
                                   const std::vector<std::string>& videos) {
  if (videos.size() != labels.size()) {
    return InvalidArgumentError("video ids and labels differ in length (" +
                                std::to_string(videos.size()) + " vs " +
                                std::to_string(labels.size()) + ")");
  }
  struct Acc {
    double sum = 0;
    int64_t count = 0;
    int label = 0;
    size_t first = 0;
  };
  std::unordered_map<std::string, size_t> index;
  std::vector<Acc> acc;
  for (size_t i = 0; i < videos.size(); ++i) {
    if (videos[i].empty()) {
      return InvalidArgumentError("sample " + std::to_string(i) + " has no video id");
    }
    auto [it, inserted] = index.emplace(videos[i], acc.size());
    if (inserted) acc.push_back({0, 0, labels[i], i});
    Acc& a = acc[it->second];
    if (a.label != labels[i]) {
      return InvalidArgumentError("video '" + videos[i] + "' has frames labelled " +
                                  std::to_string(a.label) + " (sample " + std::to_string(a.first) +
                                  ") and " + std::to_string(labels[i]) + " (sample " +
                                  std::to_string(i) + ")");
    }
    a.sum += scores[i];
    ++a.count;
  }
  VideoScores v;
  v.labels.reserve(acc.size());
  v.scores.reserve(acc.size());
  for (const Acc& a : acc) {
    v.labels.push_back(a.label);
    v.scores.push_back(a.sum / static_cast<double>(a.count));
  }
  return v;
}

}  // namespace

StatusOr<double> VideoAuc(const std::vector<int>& labels, const std::vector<double>& scores,
                          const std::vector<std::string>& videos) {
  SD2_RETURN_IF_ERROR(ValidateScores(labels, scores));
  SD2_ASSIGN_OR_RETURN(VideoScores v, GroupByVideo(labels, scores, videos));
  auto auc = RocAuc(v.labels, v.scores);
  if (!auc.ok()) return auc.status().WithPrefix("video-level");
  return auc;
}

StatusOr<Metrics> ComputeMetrics(const std::vector<int>& labels, const std::vector<double>& scores,
                                 const std::vector<std::string>& videos) {
  SD2_RETURN_IF_ERROR(ValidateScores(labels, scores));
  Metrics m;
  m.n = static_cast<int64_t>(labels.size());
  for (int l : labels) m.positives += l;
  SD2_ASSIGN_OR_RETURN(m.acc, Accuracy(labels, scores));
  if (m.positives > 0 && m.positives < m.n) {
    SD2_ASSIGN_OR_RETURN(m.auc, RocAuc(labels, scores));
    SD2_ASSIGN_OR_RETURN(m.eer, Eer(labels, scores));
    SD2_ASSIGN_OR_RETURN(m.ap, AveragePrecision(labels, scores));
  }
  if (!videos.empty()) {
    SD2_ASSIGN_OR_RETURN(VideoScores v, GroupByVideo(labels, scores, videos));
    int64_t vp = 0;
    for (int l : v.labels) vp += l;
    if (vp > 0 && vp < static_cast<int64_t>(v.labels.size())) {
      SD2_ASSIGN_OR_RETURN(m.video_auc, RocAuc(v.labels, v.scores));
    }
  }
  return m;
}

}  // namespace sd2::results

// Binary detection metrics from per-sample scores, computed exactly as scikit-learn and
// DeepfakeBench compute them. Label 1 = fake (the positive class); the score is a probability of
// fake. All functions are O(n log n) (a radix sort on the scores' bits), single-threaded, and
// return errors instead of NaN: single-class input has no AUC/EER/AP, and NaN or infinite scores
// are rejected.
//
//   std::vector<int> labels = {0, 0, 1, 1};
//   std::vector<double> scores = {0.1, 0.4, 0.35, 0.8};
//   sd2::StatusOr<double> auc = sd2::results::RocAuc(labels, scores);   // 0.75
//   sd2::StatusOr<sd2::results::Metrics> m = sd2::results::ComputeMetrics(labels, scores, {});
#ifndef SD2_RESULTS_METRICS_H_
#define SD2_RESULTS_METRICS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace sd2::results {

// One point of the ROC / precision-recall curve per distinct score, in descending score order:
// tps/fps are the numbers of positives/negatives with score >= threshold (scikit-learn's
// _binary_clf_curve).
struct ClfCurve {
  std::vector<double> thresholds;
  std::vector<int64_t> tps;
  std::vector<int64_t> fps;
};

// Checks equal sizes, non-empty input, labels in {0,1} and finite scores.
Status ValidateScores(const std::vector<int>& labels, const std::vector<double>& scores);

// scikit-learn's _binary_clf_curve (no sample weights).
StatusOr<ClfCurve> BinaryClfCurve(const std::vector<int>& labels,
                                  const std::vector<double>& scores);

// roc_auc_score: the area under the ROC curve, ties counted half (trapezoid over distinct
// thresholds). InvalidArgument when only one class is present.
StatusOr<double> RocAuc(const std::vector<int>& labels, const std::vector<double>& scores);

// Fraction of samples whose prediction (fake when score > 0.5) equals the label. Defined for
// single-class input; InvalidArgument on empty input.
StatusOr<double> Accuracy(const std::vector<int>& labels, const std::vector<double>& scores);

// DeepfakeBench's EER: fpr, tpr = roc_curve(y, s) (drop_intermediate=True), fnr = 1 - tpr,
// EER = fpr[nanargmin(|fnr - fpr|)].
StatusOr<double> Eer(const std::vector<int>& labels, const std::vector<double>& scores);

// average_precision_score: sum over distinct thresholds of (R_n - R_{n-1}) * P_n.
StatusOr<double> AveragePrecision(const std::vector<int>& labels,
                                  const std::vector<double>& scores);

// Video-level AUC: each video's score is the mean of its frames' scores, its label the frames'
// label (frames of one video with different labels are an error). Frames with an empty video id
// are an error.
StatusOr<double> VideoAuc(const std::vector<int>& labels, const std::vector<double>& scores,
                          const std::vector<std::string>& videos);

// Everything `sd2ctl metrics` and the tables need. auc/eer/ap are empty when the input holds
// one class only (e.g. TIMIT, fake-only); video_auc is empty without video ids or when the
// videos hold one class only.
struct Metrics {
  int64_t n = 0;
  int64_t positives = 0;
  std::optional<double> auc;
  double acc = 0;
  std::optional<double> eer;
  std::optional<double> ap;
  std::optional<double> video_auc;
};

// `videos` may be empty (no video-level metric) or have one id per sample.
StatusOr<Metrics> ComputeMetrics(const std::vector<int>& labels, const std::vector<double>& scores,
                                 const std::vector<std::string>& videos);

}  // namespace sd2::results

#endif  // SD2_RESULTS_METRICS_H_

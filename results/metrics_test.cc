// Metrics against scikit-learn golden values (results/testdata/metrics_golden.json, made by
// make_metrics_golden.py with Debian's python3-sklearn) and against brute-force definitions.
#include "results/metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

namespace sd2::results {
namespace {

nlohmann::json LoadGolden() {
  std::ifstream in(std::string(SD2_SOURCE_DIR) + "/results/testdata/metrics_golden.json");
  EXPECT_TRUE(in.good());
  return nlohmann::json::parse(in);
}

TEST(MetricsTest, MatchesScikitLearnGoldenValues) {
  nlohmann::json golden = LoadGolden();
  ASSERT_GE(golden["cases"].size(), 10u);
  for (const auto& c : golden["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto labels = c["labels"].get<std::vector<int>>();
    auto scores = c["scores"].get<std::vector<double>>();
    std::vector<std::string> videos;
    if (c.contains("videos")) videos = c["videos"].get<std::vector<std::string>>();
    StatusOr<Metrics> m = ComputeMetrics(labels, scores, videos);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->n, static_cast<int64_t>(labels.size()));
    EXPECT_NEAR(m->acc, c["acc"].get<double>(), 1e-12);
    if (c.contains("auc")) {
      ASSERT_TRUE(m->auc && m->eer && m->ap);
      EXPECT_NEAR(*m->auc, c["auc"].get<double>(), 1e-12);
      EXPECT_NEAR(*m->eer, c["eer"].get<double>(), 1e-12);
      EXPECT_NEAR(*m->ap, c["ap"].get<double>(), 1e-12);
      EXPECT_NEAR(*RocAuc(labels, scores), c["auc"].get<double>(), 1e-12);
    } else {
      EXPECT_FALSE(m->auc || m->eer || m->ap);
      StatusOr<double> auc = RocAuc(labels, scores);
      ASSERT_FALSE(auc.ok());
      EXPECT_EQ(auc.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(auc.status().message().find("only one class"), std::string::npos);
    }
    if (c.contains("video_auc")) {
      ASSERT_TRUE(m->video_auc.has_value());
      EXPECT_NEAR(*m->video_auc, c["video_auc"].get<double>(), 1e-12);
    } else {
      EXPECT_FALSE(m->video_auc.has_value());
    }
  }
}

// O(n^2) Mann-Whitney definition of AUC, ties counted half.
double BruteAuc(const std::vector<int>& y, const std::vector<double>& s) {
  double u = 0, p = 0, n = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] != 1) continue;
    for (size_t j = 0; j < y.size(); ++j) {
      if (y[j] != 0) continue;
      u += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
    }
  }
  for (int l : y) (l ? p : n) += 1;
  return u / (p * n);
}

TEST(MetricsTest, RadixSortedAucMatchesBruteForceOnLargeTiedInput) {
  // Negative scores, zeros and heavy ties (the std::sort path below 65536 samples).
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  std::vector<int> y(3000);
  std::vector<double> s(3000);
  for (size_t i = 0; i < y.size(); ++i) {
    y[i] = static_cast<int>(rng() % 3 == 0);
    s[i] = std::round(u(rng) * 20 + y[i] * 5) / 20;
    if (i % 97 == 0) s[i] = (i % 2) ? 0.0 : -0.0;
  }
  StatusOr<double> auc = RocAuc(y, s);
  ASSERT_TRUE(auc.ok()) << auc.status();
  EXPECT_NEAR(*auc, BruteAuc(y, s), 1e-12);
}

// An independent O(n log n) reference: std::sort of (score, label) pairs, then the trapezoid
// over distinct thresholds and the step-wise AP, as scikit-learn computes them.
void SortReference(const std::vector<int>& y, const std::vector<double>& s, double* auc,
                   double* ap) {
  std::vector<std::pair<double, int>> v;
  for (size_t i = 0; i < y.size(); ++i) v.push_back({s[i] == 0 ? 0.0 : s[i], y[i]});
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  double tp = 0, fp = 0, prev_tp = 0, prev_fp = 0, area = 0, p = 0, n = 0;
  for (int l : y) (l ? p : n) += 1;
  *ap = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    (v[i].second ? tp : fp) += 1;
    if (i + 1 == v.size() || v[i + 1].first != v[i].first) {
      area += (fp - prev_fp) * (tp + prev_tp) / 2;
      *ap += (tp - prev_tp) / p * (tp / (tp + fp));
      prev_tp = tp;
      prev_fp = fp;
    }
  }
  *auc = area / (p * n);
}

TEST(MetricsTest, RadixPathMatchesSortReferenceOnLargeInputs) {
  // Above the radix cut-over (65536): continuous scores, heavy ties, negatives and signed zeros.
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int ties : {0, 1}) {
    std::vector<int> y(150000);
    std::vector<double> s(y.size());
    for (size_t i = 0; i < y.size(); ++i) {
      y[i] = static_cast<int>(rng() % 5 < 2);
      s[i] = u(rng) + 0.3 * y[i];
      if (ties) s[i] = std::round(s[i] * 50) / 50;
      if (i % 1001 == 0) s[i] = (i % 2) ? 0.0 : -0.0;
    }
    double auc = 0, ap = 0;
    SortReference(y, s, &auc, &ap);
    EXPECT_NEAR(*RocAuc(y, s), auc, 1e-12) << "ties=" << ties;
    EXPECT_NEAR(*AveragePrecision(y, s), ap, 1e-9) << "ties=" << ties;
  }
}

TEST(MetricsTest, CurveHasOnePointPerDistinctScoreInDescendingOrder) {
  StatusOr<ClfCurve> c = BinaryClfCurve({0, 1, 1, 0, 1}, {0.3, 0.9, 0.3, 0.1, 0.9});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->thresholds, (std::vector<double>{0.9, 0.3, 0.1}));
  EXPECT_EQ(c->tps, (std::vector<int64_t>{2, 3, 3}));
  EXPECT_EQ(c->fps, (std::vector<int64_t>{0, 1, 2}));
}

TEST(MetricsTest, AccuracyUsesStrictlyGreaterThanHalf) {
  EXPECT_DOUBLE_EQ(*Accuracy({1, 0, 1}, {0.5, 0.5, 0.51}), 2.0 / 3.0);
}

TEST(MetricsTest, RejectsBadInputWithPreciseMessages) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto expect_error = [](const Status& s, const std::string& text) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), text);
  };
  expect_error(RocAuc({0, 1}, {0.1, nan}).status(), "sample 1: score is not finite");
  expect_error(Eer({0, 1}, {inf, 0.2}).status(), "sample 0: score is not finite");
  expect_error(RocAuc({0, 2}, {0.1, 0.2}).status(),
               "sample 1: label 2 is not 0 (real) or 1 (fake)");
  expect_error(RocAuc({0, 1, 1}, {0.1, 0.2}).status(),
               "labels and scores differ in length (3 vs 2)");
  expect_error(Accuracy({}, {}).status(), "no samples");
  expect_error(RocAuc({0, 0}, {0.1, 0.2}).status(),
               "AUC is undefined: only one class present (0 fake, 2 real samples)");
  expect_error(AveragePrecision({0, 0}, {0.1, 0.2}).status(),
               "AP is undefined: only one class present (0 fake, 2 real samples)");
  expect_error(VideoAuc({0, 1, 1}, {0.1, 0.2, 0.3}, {"a", "b", "a"}).status(),
               "video 'a' has frames labelled 0 (sample 0) and 1 (sample 2)");
  expect_error(VideoAuc({0, 1}, {0.1, 0.2}, {"a", ""}).status(), "sample 1 has no video id");
  expect_error(VideoAuc({0, 1}, {0.1, 0.2}, {"a"}).status(),
               "video ids and labels differ in length (1 vs 2)");
  expect_error(VideoAuc({0, 0}, {0.1, 0.2}, {"a", "b"}).status(),
               "video-level: AUC is undefined: only one class present (0 fake, 2 real samples)");
}

}  // namespace
}  // namespace sd2::results

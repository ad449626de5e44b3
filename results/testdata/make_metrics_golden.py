#!/usr/bin/python3
"""Generates results/testdata/metrics_golden.json: metric values from scikit-learn (Debian's
python3-sklearn 1.2) for the metrics tests. Run with Debian's /usr/bin/python3:

    /usr/bin/python3 results/testdata/make_metrics_golden.py > results/testdata/metrics_golden.json

EER follows DeepfakeBench: fpr, tpr from roc_curve; fnr = 1 - tpr; EER = fpr[nanargmin |fnr - fpr|].
Video AUC: each video's score is the mean of its frames' scores.
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def eer(y, s):
    fpr, tpr, _ = roc_curve(y, s, pos_label=1)
    fnr = 1 - tpr
    return float(fpr[np.nanargmin(np.absolute(fnr - fpr))])


def case(name, y, s, videos=None):
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(s, dtype=np.float64)
    out = {"name": name, "labels": y.tolist(), "scores": s.tolist(),
           "acc": float(np.mean((s > 0.5).astype(np.int64) == y))}
    if 0 < y.sum() < len(y):
        out["auc"] = float(roc_auc_score(y, s))
        out["eer"] = eer(y, s)
        out["ap"] = float(average_precision_score(y, s))
    if videos is not None:
        out["videos"] = list(videos)
        ids = sorted(set(videos))
        vy = np.array([y[[v == i for v in videos]][0] for i in ids])
        vs = np.array([np.mean(s[[v == i for v in videos]]) for i in ids])
        out["video_auc"] = float(roc_auc_score(vy, vs))
    return out


def main():
    rng = np.random.default_rng(20240601)
    cases = []
    cases.append(case("sklearn_doc", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]))
    cases.append(case("perfect", [0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]))
    cases.append(case("inverted", [1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]))
    cases.append(case("hand_ties", [0, 1, 0, 1, 1, 0], [0.5, 0.5, 0.2, 0.9, 0.2, 0.7]))
    cases.append(case("all_tied", [0, 1, 1, 0, 1], [0.5] * 5))
    cases.append(case("signed_zero", [0, 1, 0, 1], [-0.0, 0.0, -1.0, 2.0]))
    cases.append(case("single_class_fake", [1, 1, 1], [0.2, 0.7, 0.9]))
    for n, dec, name in [(1000, None, "random_1000"), (2000, 2, "tied_2dec"),
                         (1500, 1, "tied_1dec"), (7, None, "random_7")]:
        y = (rng.random(n) < 0.4).astype(np.int64)
        s = np.clip(rng.normal(0.45 + 0.2 * y, 0.25), 0, 1)
        if dec is not None:
            s = np.round(s, dec)
        cases.append(case(name, y, s))
    # Videos: 40 videos of 5-15 frames; frame scores around a per-video level.
    videos, y, s = [], [], []
    for v in range(40):
        label = int(rng.random() < 0.5)
        level = 0.4 + 0.2 * label + rng.normal(0, 0.15)
        for _ in range(int(rng.integers(5, 16))):
            videos.append("vid%02d" % v)
            y.append(label)
            s.append(float(np.clip(level + rng.normal(0, 0.2), 0, 1)))
    cases.append(case("videos", y, np.round(s, 3), videos))
    json.dump({"generator": "make_metrics_golden.py", "sklearn": sklearn.__version__,
               "numpy": np.__version__, "cases": cases}, sys.stdout, indent=None)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

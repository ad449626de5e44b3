#!/usr/bin/python3
"""Reference side of the `auc` benchmark (run with Debian's /usr/bin/python3).

    auc_ref.py DIR N REPEATS

Writes N samples (seeded, label 1 = fake with probability 0.4, scores rounded to 4 decimals so
that there are many ties) to DIR/labels.u8 and DIR/scores.f64, then times
sklearn.metrics.roc_auc_score on them (best of REPEATS) and prints "<auc> <best seconds>".
"""
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score


def main():
    out, n, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(12345)
    y = (rng.random(n) < 0.4).astype(np.uint8)
    s = np.round(np.clip(rng.normal(0.45 + 0.2 * y, 0.25), 0.0, 1.0), 4)
    y.tofile(out + "/labels.u8")
    s.astype("<f8").tofile(out + "/scores.f64")
    best, auc = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        auc = roc_auc_score(y, s)
        best = min(best, time.perf_counter() - t0)
    print("%.17g %.6f" % (auc, best))


if __name__ == "__main__":
    main()

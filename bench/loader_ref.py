"""Reference for `bench/run loader`: the same decode + augment + normalise with PIL + numpy,
one process, on the same files. Prints "seconds=<best of R> mean=<mean normalised value of the central half>".

usage: /usr/bin/python3 bench/loader_ref.py DIR N SIZE REPEATS
"""
import io
import sys
import time

import numpy as np
from PIL import Image, ImageFilter

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def one(path, size):
    img = Image.open(path)
    img.draft("RGB", (size, size))  # DCT-scaled decode, as ours does
    img = img.convert("RGB").resize((size, size), Image.BILINEAR)
    img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = img.rotate(7.0, resample=Image.BILINEAR)
    img = img.filter(ImageFilter.GaussianBlur(1.0))
    small = round(size * 0.7)
    img = img.resize((small, small), Image.BILINEAR).resize((size, size), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32)
    a = np.clip(a * 1.1 + 0.05 * 255, 0, 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=75)
    buf.seek(0)
    a = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def main():
    d, n, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    best, mean = 1e30, 0.0
    for _ in range(repeats):
        t0 = time.process_time()
        total = 0.0
        for i in range(n):
            out = one(f"{d}/img_{i}.jpg", size)
            lo, hi = size // 4, size * 3 // 4
            total += float(out[:, lo:hi, lo:hi].sum(dtype=np.float64))
        best = min(best, time.process_time() - t0)
        mean = total / (n * 3 * (size * 3 // 4 - size // 4) ** 2)
    print(f"seconds={best:.4f} mean={mean:.5f}")


if __name__ == "__main__":
    main()

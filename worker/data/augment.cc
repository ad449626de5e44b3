#include "worker/data/augment.h"

#include <algorithm>
#include <cmath>

namespace sd2::worker::data {
namespace {

inline int Reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

inline uint8_t Clamp8(float v) {
  return static_cast<uint8_t>(v <= 0 ? 0 : v >= 255 ? 255 : v + 0.5f);
}

}  // namespace

void HFlip(Image* img) {
  for (int y = 0; y < img->height; ++y) {
    uint8_t* row = img->At(0, y);
    for (int l = 0, r = img->width - 1; l < r; ++l, --r) {
      std::swap(row[l * 3], row[r * 3]);
      std::swap(row[l * 3 + 1], row[r * 3 + 1]);
      std::swap(row[l * 3 + 2], row[r * 3 + 2]);
    }
  }
}

Image Rotate(const Image& img, double degrees) {
  const int w = img.width, h = img.height;
  Image out(w, h);
  const double rad = degrees * 3.14159265358979323846 / 180.0;
  const float c = static_cast<float>(std::cos(rad)), s = static_cast<float>(std::sin(rad));
  const float cx = (w - 1) * 0.5f, cy = (h - 1) * 0.5f;
  for (int y = 0; y < h; ++y) {
    const float dy = y - cy;
    uint8_t* o = out.At(0, y);
    for (int x = 0; x < w; ++x) {
      const float dx = x - cx;
      // Inverse map: rotate the output position back into the source.
      const float sx = c * dx + s * dy + cx, sy = -s * dx + c * dy + cy;
      const int x0 = static_cast<int>(std::floor(sx)), y0 = static_cast<int>(std::floor(sy));
      const float fx = sx - x0, fy = sy - y0;
      const int xa = Reflect101(x0, w), xb = Reflect101(x0 + 1, w);
      const int ya = Reflect101(y0, h), yb = Reflect101(y0 + 1, h);
      const uint8_t* p00 = img.At(xa, ya);
      const uint8_t* p01 = img.At(xb, ya);
      const uint8_t* p10 = img.At(xa, yb);
      const uint8_t* p11 = img.At(xb, yb);
      for (int k = 0; k < 3; ++k) {
        float top = p00[k] + (p01[k] - p00[k]) * fx;
        float bot = p10[k] + (p11[k] - p10[k]) * fx;
        *o++ = Clamp8(top + (bot - top) * fy);
      }
    }
  }
  return out;
}

Image GaussianBlur(const Image& img, double sigma) {
  const int w = img.width, h = img.height;
  const int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  std::vector<float> k(2 * radius + 1);
  float sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    k[i + radius] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)));
    sum += k[i + radius];
  }
  for (float& v : k) v /= sum;
  std::vector<float> tmp(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      float acc[3] = {0, 0, 0};
      for (int i = -radius; i <= radius; ++i) {
        const uint8_t* p = img.At(Reflect101(x + i, w), y);
        const float kv = k[i + radius];
        acc[0] += p[0] * kv;
        acc[1] += p[1] * kv;
        acc[2] += p[2] * kv;
      }
      float* t = &tmp[(static_cast<size_t>(y) * w + x) * 3];
      t[0] = acc[0];
      t[1] = acc[1];
      t[2] = acc[2];
    }
  }
  Image out(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      float acc[3] = {0, 0, 0};
      for (int i = -radius; i <= radius; ++i) {
        const float* t = &tmp[(static_cast<size_t>(Reflect101(y + i, h)) * w + x) * 3];
        const float kv = k[i + radius];
        acc[0] += t[0] * kv;
        acc[1] += t[1] * kv;
        acc[2] += t[2] * kv;
      }
      uint8_t* o = out.At(x, y);
      o[0] = Clamp8(acc[0]);
      o[1] = Clamp8(acc[1]);
      o[2] = Clamp8(acc[2]);
    }
  }
  return out;
}

Image IsotropicResize(const Image& img, double factor) {
  const int w = std::max(1, static_cast<int>(std::lround(img.width * factor)));
  const int h = std::max(1, static_cast<int>(std::lround(img.height * factor)));
  return ResizeBilinear(Resize(img, w, h), img.width, img.height);
}

void BrightnessContrast(Image* img, double brightness, double contrast) {
  uint8_t lut[256];
  for (int v = 0; v < 256; ++v) {
    lut[v] = Clamp8(static_cast<float>(v * (1.0 + contrast) + brightness * 255.0));
  }
  for (uint8_t& p : img->px) p = lut[p];
}

StatusOr<Image> JpegRecompress(const Image& img, int quality) {
  SD2_ASSIGN_OR_RETURN(std::string bytes, EncodeJpeg(img, quality));
  return DecodeImage(bytes);
}

Status Augment(const AugmentOptions& o, Rng* rng, Image* img) {
  // Draw everything up front, in a fixed order.
  const bool flip = rng->Bernoulli(o.p_hflip);
  const bool rotate = rng->Bernoulli(o.p_rotate);
  const double angle = rng->Uniform(-o.rotate_degrees, o.rotate_degrees);
  const bool blur = rng->Bernoulli(o.p_blur);
  const double sigma = rng->Uniform(0.1, 2.0);
  const bool resize = rng->Bernoulli(o.p_resize);
  const double factor = rng->Uniform(0.5, 0.9);
  const bool color = rng->Bernoulli(o.p_color);
  const double brightness = rng->Uniform(-o.color_delta, o.color_delta);
  const double contrast = rng->Uniform(-o.color_delta, o.color_delta);
  const bool jpeg = rng->Bernoulli(o.p_jpeg);
  const int quality = rng->UniformInt(std::min(o.jpeg_quality_min, o.jpeg_quality_max),
                                      std::max(o.jpeg_quality_min, o.jpeg_quality_max));
  if (flip) HFlip(img);
  if (rotate && angle != 0) *img = Rotate(*img, angle);
  if (blur) *img = GaussianBlur(*img, sigma);
  if (resize) *img = IsotropicResize(*img, factor);
  if (color) BrightnessContrast(img, brightness, contrast);
  if (jpeg) {
    SD2_ASSIGN_OR_RETURN(*img, JpegRecompress(*img, quality));
  }
  return OkStatus();
}

void Normalize(const Image& img, Normalization norm, float* out) {
  static constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  static constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  const size_t plane = static_cast<size_t>(img.width) * img.height;
  for (int c = 0; c < 3; ++c) {
    const float mean = norm == Normalization::kClip ? kClipMean[c] : 0.5f;
    const float inv_std = 1.0f / (norm == Normalization::kClip ? kClipStd[c] : 0.5f);
    float lut[256];
    for (int v = 0; v < 256; ++v) lut[v] = (v / 255.0f - mean) * inv_std;
    float* dst = out + c * plane;
    const uint8_t* src = img.px.data() + c;
    for (size_t i = 0; i < plane; ++i) dst[i] = lut[src[i * 3]];
  }
}

}  // namespace sd2::worker::data

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
  const size_t stride = static_cast<size_t>(w) * 3;
  for (int y = 0; y < h; ++y) {
    const float dy = y - cy;
    uint8_t* o = out.At(0, y);
    // Inverse map: rotate the output position back into the source (incrementally in x).
    float sx = c * -cx + s * dy + cx, sy = -s * -cx + c * dy + cy;
    for (int x = 0; x < w; ++x, sx += c, sy -= s, o += 3) {
      const int x0 = static_cast<int>(sx + 4096.f) - 4096,
                y0 = static_cast<int>(sy + 4096.f) - 4096;
      const float fx = sx - x0, fy = sy - y0;
      const uint8_t *p00, *p01, *p10, *p11;
      if (x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h) {
        p00 = img.At(x0, y0);
        p01 = p00 + 3;
        p10 = p00 + stride;
        p11 = p10 + 3;
      } else {
        const int xa = Reflect101(x0, w), xb = Reflect101(x0 + 1, w);
        const int ya = Reflect101(y0, h), yb = Reflect101(y0 + 1, h);
        p00 = img.At(xa, ya);
        p01 = img.At(xb, ya);
        p10 = img.At(xa, yb);
        p11 = img.At(xb, yb);
      }
      const float w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy,
                  w11 = fx * fy;
      for (int k = 0; k < 3; ++k) {
        o[k] = Clamp8(p00[k] * w00 + p01[k] * w01 + p10[k] * w10 + p11[k] * w11);
      }
    }
  }
  return out;
}

Image GaussianBlur(const Image& img, double sigma) {
  const int w = img.width, h = img.height;
  const int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  const int taps = 2 * radius + 1;
  std::vector<float> k(taps);
  float sum = 0;
  for (int i = -radius; i <= radius; ++i) {
    k[i + radius] = static_cast<float>(std::exp(-0.5 * i * i / (sigma * sigma)));
    sum += k[i + radius];
  }
  for (float& v : k) v /= sum;
  const size_t row = static_cast<size_t>(w) * 3;
  // Horizontal pass into floats, over a row padded by reflection.
  std::vector<float> tmp(row * h);
  std::vector<float> pad((static_cast<size_t>(w) + 2 * radius) * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = -radius; x < w + radius; ++x) {
      const uint8_t* p = img.At(Reflect101(x, w), y);
      float* d = &pad[static_cast<size_t>(x + radius) * 3];
      d[0] = p[0];
      d[1] = p[1];
      d[2] = p[2];
    }
    float* t = &tmp[row * y];
    std::fill(t, t + row, 0.f);
    for (int tap = 0; tap < taps; ++tap) {
      const float kv = k[tap];
      const float* src = &pad[static_cast<size_t>(tap) * 3];
      for (size_t i = 0; i < row; ++i) t[i] += kv * src[i];
    }
  }
  // Vertical pass.
  Image out(w, h);
  std::vector<float> acc(row);
  for (int y = 0; y < h; ++y) {
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int tap = 0; tap < taps; ++tap) {
      const float kv = k[tap];
      const float* src = &tmp[row * Reflect101(y + tap - radius, h)];
      for (size_t i = 0; i < row; ++i) acc[i] += kv * src[i];
    }
    uint8_t* o = out.At(0, y);
    for (size_t i = 0; i < row; ++i) o[i] = Clamp8(acc[i]);
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

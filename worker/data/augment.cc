#include "worker/data/augment.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SD2_X86_AVX2_DISPATCH 1  // AVX2 code paths, chosen at run time
#endif

#include <algorithm>
#include <cmath>
#include <cstring>

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

// (a * b) >> 16: compiles to pmulhuw in vectorised loops.
inline uint16_t MulHi(uint16_t a, uint16_t b) {
  return static_cast<uint16_t>((static_cast<uint32_t>(a) * b) >> 16);
}

// Bilinear interpolation of one RGB pixel from its four neighbours with 7-bit weights
// fx, fy in [0, 127]: the vertical blend first (exact in 16 bits), then the horizontal one.
inline void BilinearScalar(const uint8_t* p00, const uint8_t* p01, const uint8_t* p10,
                           const uint8_t* p11, int fx, int fy, uint8_t* o) {
  for (int k = 0; k < 3; ++k) {
    const int l = p00[k] * 128 + (p10[k] - p00[k]) * fy;
    const int r = p01[k] * 128 + (p11[k] - p01[k]) * fy;
    o[k] = static_cast<uint8_t>((l * (128 - fx) + r * fx + 8192) >> 14);
  }
}

// The same for neighbours side by side: `top` and `bot` point at the left pixel of each row,
// and 8 bytes may be read from each. Returns the pixel in the low 3 bytes (little endian).
inline uint32_t BilinearPair(const uint8_t* top, const uint8_t* bot, int fx, int fy) {
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  const __m128i t = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(top)), zero);
  const __m128i b = _mm_unpacklo_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bot)), zero);
  // l0 l1 l2 r0 r1 r2 . . (16 bits: at most 255 * 128)
  const __m128i v =
      _mm_add_epi16(_mm_slli_epi16(t, 7), _mm_mullo_epi16(_mm_sub_epi16(b, t), _mm_set1_epi16(fy)));
  // l0 r0 l1 r1 l2 r2 . . times (128 - fx, fx) pairs.
  const __m128i lr = _mm_unpacklo_epi16(v, _mm_srli_si128(v, 6));
  __m128i sum = _mm_madd_epi16(lr, _mm_set1_epi32(fx << 16 | (128 - fx)));
  sum = _mm_srli_epi32(_mm_add_epi32(sum, _mm_set1_epi32(8192)), 14);
  sum = _mm_packs_epi32(sum, sum);
  return static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(sum, sum)));
#else
  uint8_t o[4] = {0, 0, 0, 0};
  BilinearScalar(top, top + 3, bot, bot + 3, fx, fy, o);
  uint32_t px;
  std::memcpy(&px, o, 4);
  return px;
#endif
}

#if defined(SD2_X86_AVX2_DISPATCH)
// t * 128 + (b - t) * f in 16-bit lanes (the vertical blend).
__attribute__((target("avx2"))) inline __m256i BlendAvx2(__m256i t, __m256i b, __m256i f) {
  return _mm256_add_epi16(_mm256_slli_epi16(t, 7), _mm256_mullo_epi16(_mm256_sub_epi16(b, t), f));
}

// (l * (128 - fx) + r * fx + 8192) >> 14 from interleaved (l, r) pairs (the horizontal one).
__attribute__((target("avx2"))) inline __m256i PairAvx2(__m256i lr, __m256i weights) {
  return _mm256_srli_epi32(
      _mm256_add_epi32(_mm256_madd_epi16(lr, weights), _mm256_set1_epi32(8192)), 14);
}

// Eight pixels of BilinearPair at a time, bit-identical to it: gathers of the four
// neighbours, the same 16-bit vertical and 32-bit horizontal blends. Rotates n pixels from
// 16.16 source position (sx, sy), stepping (dsx, dsy); writes 4 bytes past the last pixel.
__attribute__((target("avx2"))) void RotateRunAvx2(const uint8_t* base, int stride, int32_t sx,
                                                   int32_t sy, int32_t dsx, int32_t dsy, int n,
                                                   uint8_t* o) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i vx =
      _mm256_add_epi32(_mm256_set1_epi32(sx), _mm256_mullo_epi32(lane, _mm256_set1_epi32(dsx)));
  __m256i vy =
      _mm256_add_epi32(_mm256_set1_epi32(sy), _mm256_mullo_epi32(lane, _mm256_set1_epi32(dsy)));
  const __m256i step_x = _mm256_set1_epi32(dsx * 8), step_y = _mm256_set1_epi32(dsy * 8);
  const __m256i vstride = _mm256_set1_epi32(stride), seven_bits = _mm256_set1_epi32(127);
  const __m256i w128 = _mm256_set1_epi32(128);
  const __m256i zero = _mm256_setzero_si256();
  // RGBX RGBX RGBX RGBX -> RGB x 4 in each 128-bit lane.
  const __m256i compact = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,
                                           0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  const auto* b00 = reinterpret_cast<const int*>(base);
  const auto* b01 = reinterpret_cast<const int*>(base + 3);
  const auto* b10 = reinterpret_cast<const int*>(base + stride);
  const auto* b11 = reinterpret_cast<const int*>(base + stride + 3);
  for (int i = 0; i + 8 <= n; i += 8, o += 24) {
    const __m256i x0 = _mm256_srai_epi32(vx, 16), y0 = _mm256_srai_epi32(vy, 16);
    const __m256i off = _mm256_add_epi32(_mm256_mullo_epi32(y0, vstride),
                                         _mm256_add_epi32(x0, _mm256_add_epi32(x0, x0)));
    const __m256i fx = _mm256_and_si256(_mm256_srai_epi32(vx, 9), seven_bits);
    const __m256i fy = _mm256_and_si256(_mm256_srai_epi32(vy, 9), seven_bits);
    vx = _mm256_add_epi32(vx, step_x);
    vy = _mm256_add_epi32(vy, step_y);
    const __m256i g00 = _mm256_i32gather_epi32(b00, off, 1);
    const __m256i g01 = _mm256_i32gather_epi32(b01, off, 1);
    const __m256i g10 = _mm256_i32gather_epi32(b10, off, 1);
    const __m256i g11 = _mm256_i32gather_epi32(b11, off, 1);
    // fy in both 16-bit halves, then per pixel over its 4 channels: pixels 0,1 | 4,5 (lo)
    // and 2,3 | 6,7 (hi), matching the byte unpacks.
    const __m256i fy2 = _mm256_or_si256(fy, _mm256_slli_epi32(fy, 16));
    const __m256i fy_lo = _mm256_unpacklo_epi32(fy2, fy2), fy_hi = _mm256_unpackhi_epi32(fy2, fy2);
    const __m256i l_lo =
        BlendAvx2(_mm256_unpacklo_epi8(g00, zero), _mm256_unpacklo_epi8(g10, zero), fy_lo);
    const __m256i l_hi =
        BlendAvx2(_mm256_unpackhi_epi8(g00, zero), _mm256_unpackhi_epi8(g10, zero), fy_hi);
    const __m256i r_lo =
        BlendAvx2(_mm256_unpacklo_epi8(g01, zero), _mm256_unpacklo_epi8(g11, zero), fy_lo);
    const __m256i r_hi =
        BlendAvx2(_mm256_unpackhi_epi8(g01, zero), _mm256_unpackhi_epi8(g11, zero), fy_hi);
    const __m256i wx = _mm256_or_si256(_mm256_slli_epi32(fx, 16), _mm256_sub_epi32(w128, fx));
    const __m256i m0 = PairAvx2(_mm256_unpacklo_epi16(l_lo, r_lo), _mm256_shuffle_epi32(wx, 0x00));
    const __m256i m1 = PairAvx2(_mm256_unpackhi_epi16(l_lo, r_lo), _mm256_shuffle_epi32(wx, 0x55));
    const __m256i m2 = PairAvx2(_mm256_unpacklo_epi16(l_hi, r_hi), _mm256_shuffle_epi32(wx, 0xAA));
    const __m256i m3 = PairAvx2(_mm256_unpackhi_epi16(l_hi, r_hi), _mm256_shuffle_epi32(wx, 0xFF));
    const __m256i px = _mm256_shuffle_epi8(
        _mm256_packus_epi16(_mm256_packs_epi32(m0, m1), _mm256_packs_epi32(m2, m3)), compact);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(px));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 12), _mm256_extracti128_si256(px, 1));
  }
}

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

}  // namespace

void HFlip(Image* img) {
  const int w = img->width;
  if (w < 2) return;
  const size_t row = static_cast<size_t>(w) * 3;
  thread_local std::vector<uint8_t> tmp;
  tmp.resize(row + 1);  // the 4-byte load of the last pixel reads one byte past the row
  for (int y = 0; y < img->height; ++y) {
    uint8_t* r = img->At(0, y);
    std::memcpy(tmp.data(), r, row);
    const uint8_t* last = tmp.data() + row - 3;
    // 4-byte moves; the 4th byte is overwritten by the next pixel (the last moves 3 bytes).
    for (int x = 0; x < w - 1; ++x) {
      uint32_t v;
      std::memcpy(&v, last - 3 * x, 4);
      std::memcpy(r + 3 * x, &v, 4);
    }
    std::memcpy(r + 3 * (w - 1), tmp.data(), 3);
  }
}

Image Rotate(const Image& img, double degrees) {
  const int w = img.width, h = img.height;
  Image out(w, h);
  if (img.empty()) return out;
  const double rad = degrees * 3.14159265358979323846 / 180.0;
  const double c = std::cos(rad), s = std::sin(rad);
  const double cx = (w - 1) * 0.5, cy = (h - 1) * 0.5;
  const size_t stride = static_cast<size_t>(w) * 3;
  // Source positions in 16.16 fixed point, bilinear weights their top 7 fractional bits.
  constexpr double kOne = 65536.0;
  const auto dsx = static_cast<int32_t>(std::lround(c * kOne));
  const auto dsy = static_cast<int32_t>(std::lround(-s * kOne));
  const uint8_t* base = img.px.data();
  // Fast path: neighbours inside the image, and 8-byte loads from the top-left pixel of both
  // rows (x0 <= w - 3) too.
  const bool any_fast = w >= 3 && h >= 2;
#if defined(SD2_X86_AVX2_DISPATCH)
  const bool avx = HasAvx2() && stride < (size_t{1} << 30) / static_cast<size_t>(h);
#endif
  auto fast = [&](int32_t sx, int32_t sy) {
    return any_fast && static_cast<unsigned>(sx >> 16) < static_cast<unsigned>(w - 2) &&
           static_cast<unsigned>(sy >> 16) < static_cast<unsigned>(h - 1);
  };
  auto slow = [&](int32_t sx, int32_t sy, uint8_t* o) {
    const int x0 = sx >> 16, y0 = sy >> 16;  // arithmetic shifts: floor
    const int xa = Reflect101(x0, w), xb = Reflect101(x0 + 1, w);
    const int ya = Reflect101(y0, h), yb = Reflect101(y0 + 1, h);
    BilinearScalar(img.At(xa, ya), img.At(xb, ya), img.At(xa, yb), img.At(xb, yb), (sx >> 9) & 127,
                   (sy >> 9) & 127, o);
  };
  for (int y = 0; y < h; ++y) {
    const double dy = y - cy;
    uint8_t* o = out.At(0, y);
    // Inverse map: rotate the output position back into the source (incrementally in x).
    const auto sx0 = static_cast<int32_t>(std::lround((c * -cx + s * dy + cx) * kOne));
    const auto sy0 = static_cast<int32_t>(std::lround((-s * -cx + c * dy + cy) * kOne));
    // The fast pixels of a row are one interval [xa, xb): positions are linear in x.
    int xa = 0, xb = w;
    while (xa < w && !fast(sx0 + xa * dsx, sy0 + xa * dsy)) ++xa;
    while (xb > xa && !fast(sx0 + (xb - 1) * dsx, sy0 + (xb - 1) * dsy)) --xb;
    if (y == h - 1 && xb == w) --xb;  // the 4-byte stores below must not pass the end
    for (int x = 0; x < xa; ++x) slow(sx0 + x * dsx, sy0 + x * dsy, o + 3 * x);
    int x = xa;
#if defined(SD2_X86_AVX2_DISPATCH)
    // Its 16-byte stores end 4 bytes past the run: keep one pixel more in the last row.
    const int avx_end = y == h - 1 ? xb - 1 : xb;
    if (avx && avx_end - xa >= 8) {
      const int n = (avx_end - xa) / 8 * 8;
      RotateRunAvx2(base, static_cast<int>(stride), sx0 + xa * dsx, sy0 + xa * dsy, dsx, dsy, n,
                    o + 3 * xa);
      x += n;
    }
#endif
    int32_t sx = sx0 + x * dsx, sy = sy0 + x * dsy;
    uint8_t* p = o + 3 * x;
    for (; x < xb; ++x, sx += dsx, sy += dsy, p += 3) {
      const uint8_t* q = base + (sy >> 16) * stride + (sx >> 16) * 3;
      // A 4-byte store: the 4th byte is written again by the next pixel.
      const uint32_t px = BilinearPair(q, q + stride, (sx >> 9) & 127, (sy >> 9) & 127);
      std::memcpy(p, &px, 4);
    }
    for (int x = xb; x < w; ++x) slow(sx0 + x * dsx, sy0 + x * dsy, o + 3 * x);
  }
  return out;
}

#if defined(SD2_X86_AVX2_DISPATCH)
__attribute__((target_clones("avx2", "default")))
#endif
Image GaussianBlur(const Image& img, double sigma) {
  const int w = img.width, h = img.height;
  const int radius = std::max(1, static_cast<int>(std::ceil(3 * sigma)));
  // Symmetric kernel in 8-bit fixed point: k[j] weighs offsets +j and -j, all sum to 256.
  std::vector<uint16_t> k(radius + 1);
  double sum = 0;
  for (int i = -radius; i <= radius; ++i) sum += std::exp(-0.5 * i * i / (sigma * sigma));
  int rest = 256;
  for (int j = radius; j >= 1; --j) {
    k[j] = static_cast<uint16_t>(std::lround(256 * std::exp(-0.5 * j * j / (sigma * sigma)) / sum));
    rest -= 2 * k[j];
  }
  if (rest >= 256 || img.empty()) return img;  // the kernel rounds to the identity
  k[0] = static_cast<uint16_t>(rest);
  Image out(w, h);
  const size_t row = static_cast<size_t>(w) * 3;
  const size_t pad = static_cast<size_t>(radius) * 3;
  // One uint16 row (value * 256), padded by `radius` pixels each side: the vertical pass of
  // output row y, then the horizontal pass over it straight into the output (all in L1).
  thread_local std::vector<uint16_t> buf, res;
  buf.resize(row + 2 * pad);
  res.resize(row);
  uint16_t* acc = buf.data() + pad;
  uint16_t* v = res.data();
  std::vector<const uint8_t*> src(2 * radius + 1);
  // kh[j] = k[j] * 256: the horizontal products as high halves (pmulhuw).
  std::vector<uint16_t> kh(radius + 1);
  for (int j = 0; j <= radius; ++j) kh[j] = static_cast<uint16_t>(k[j] << 8);
  for (int y = 0; y < h; ++y) {
    for (int t = 0; t <= 2 * radius; ++t) src[t] = img.At(0, Reflect101(y + t - radius, h));
    const uint8_t* mid = src[radius];
    const uint16_t k0 = k[0];
    for (size_t i = 0; i < row; ++i) acc[i] = static_cast<uint16_t>(k0 * mid[i]);
    for (int j = 1; j <= radius; ++j) {
      const uint8_t* a = src[radius - j];
      const uint8_t* b = src[radius + j];
      const uint16_t kj = k[j];
      for (size_t i = 0; i < row; ++i) {
        acc[i] = static_cast<uint16_t>(acc[i] + kj * static_cast<uint16_t>(a[i] + b[i]));
      }
    }
    for (int p = 1; p <= radius; ++p) {
      const int l = Reflect101(-p, w), r = Reflect101(w - 1 + p, w);
      for (int ch = 0; ch < 3; ++ch) {
        acc[-3 * p + ch] = acc[3 * l + ch];
        acc[3 * (w - 1 + p) + ch] = acc[3 * r + ch];
      }
    }
    const uint16_t kh0 = kh[0];
    for (size_t i = 0; i < row; ++i) v[i] = MulHi(acc[i], kh0);
    for (int j = 1; j <= radius; ++j) {
      const uint16_t kj = kh[j];
      const uint16_t* l = acc - 3 * j;
      const uint16_t* r = acc + 3 * j;
      for (size_t i = 0; i < row; ++i) {
        v[i] = static_cast<uint16_t>(v[i] + MulHi(l[i], kj) + MulHi(r[i], kj));
      }
    }
    uint8_t* o = out.At(0, y);
    for (size_t i = 0; i < row; ++i) o[i] = static_cast<uint8_t>((v[i] + 128u) >> 8);
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

StatusOr<AugmentOptions> AugmentPreset(const std::string& name) {
  AugmentOptions o;
  if (name == "default") return o;
  if (name != "flip" && name != "none") {
    return InvalidArgumentError("augment \"" + name + "\" is not one of default, flip, none");
  }
  if (name == "none") o.p_hflip = 0;
  o.p_rotate = o.p_blur = o.p_resize = o.p_color = o.p_jpeg = 0;
  return o;
}

void Normalize(const Image& img, Normalization norm, float* out) {
  static constexpr float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
  static constexpr float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
  const size_t plane = static_cast<size_t>(img.width) * img.height;
  // (v / 255 - mean) / std as one multiply-add per value.
  float scale[3], bias[3];
  for (int c = 0; c < 3; ++c) {
    const double mean = norm == Normalization::kClip ? kClipMean[c] : 0.5;
    const double sd = norm == Normalization::kClip ? kClipStd[c] : 0.5;
    scale[c] = static_cast<float>(1.0 / (255.0 * sd));
    bias[c] = static_cast<float>(-mean / sd);
  }
  const uint8_t* src = img.px.data();
  float* r = out;
  float* g = out + plane;
  float* b = out + 2 * plane;
  size_t i = 0;
#if defined(__SSE2__)
  // Four pixels at a time: 12 bytes to three vectors of four floats, then transposed.
  const __m128 s0 = _mm_setr_ps(scale[0], scale[1], scale[2], scale[0]);
  const __m128 s1 = _mm_setr_ps(scale[1], scale[2], scale[0], scale[1]);
  const __m128 s2 = _mm_setr_ps(scale[2], scale[0], scale[1], scale[2]);
  const __m128 b0 = _mm_setr_ps(bias[0], bias[1], bias[2], bias[0]);
  const __m128 b1 = _mm_setr_ps(bias[1], bias[2], bias[0], bias[1]);
  const __m128 b2 = _mm_setr_ps(bias[2], bias[0], bias[1], bias[2]);
  const __m128i zero = _mm_setzero_si128();
  // 16-byte loads of which 12 bytes are used: 3 * i + 16 <= 3 * plane.
  for (; i + 6 <= plane; i += 4) {
    const __m128i v8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * i));
    const __m128i lo = _mm_unpacklo_epi8(v8, zero);  // r0 g0 b0 r1 g1 b1 r2 g2
    const __m128i hi = _mm_unpackhi_epi8(v8, zero);  // b2 r3 g3 b3 . . . .
    // x = r0 g0 b0 r1, y = g1 b1 r2 g2, z = b2 r3 g3 b3, normalised.
    const __m128 x = _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(lo, zero)), s0), b0);
    const __m128 y = _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(_mm_unpackhi_epi16(lo, zero)), s1), b1);
    const __m128 z = _mm_add_ps(_mm_mul_ps(_mm_cvtepi32_ps(_mm_unpacklo_epi16(hi, zero)), s2), b2);
    // R = x0 x3 y2 z1, G = x1 y0 y3 z2, B = x2 y1 z0 z3.
    const __m128 r_yz = _mm_shuffle_ps(y, z, _MM_SHUFFLE(1, 1, 2, 2));  // y2 y2 z1 z1
    const __m128 g_xy = _mm_shuffle_ps(x, y, _MM_SHUFFLE(0, 0, 1, 1));  // x1 x1 y0 y0
    const __m128 g_yz = _mm_shuffle_ps(y, z, _MM_SHUFFLE(2, 2, 3, 3));  // y3 y3 z2 z2
    const __m128 b_xy = _mm_shuffle_ps(x, y, _MM_SHUFFLE(1, 1, 2, 2));  // x2 x2 y1 y1
    _mm_storeu_ps(r + i, _mm_shuffle_ps(x, r_yz, _MM_SHUFFLE(2, 0, 3, 0)));
    _mm_storeu_ps(g + i, _mm_shuffle_ps(g_xy, g_yz, _MM_SHUFFLE(2, 0, 2, 0)));
    _mm_storeu_ps(b + i, _mm_shuffle_ps(b_xy, z, _MM_SHUFFLE(3, 0, 2, 0)));
  }
#endif
  for (; i < plane; ++i) {
    r[i] = src[3 * i] * scale[0] + bias[0];
    g[i] = src[3 * i + 1] * scale[1] + bias[1];
    b[i] = src[3 * i + 2] * scale[2] + bias[2];
  }
}

}  // namespace sd2::worker::data

#include "worker/data/image.h"

#include <fcntl.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#define SD2_X86_AVX2_DISPATCH 1  // AVX2 clones of the vectorised loops, chosen at load time
#endif
#include <png.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>

namespace sd2::worker::data {
namespace {

struct TjHandle {
  tjhandle h = nullptr;
  bool compress;
  explicit TjHandle(bool c) : compress(c) { Reset(); }
  ~TjHandle() {
    if (h) tjDestroy(h);
  }
  // A handle that saw a corrupt stream can keep failing afterwards: start afresh.
  void Reset() {
    if (h) tjDestroy(h);
    h = compress ? tjInitCompress() : tjInitDecompress();
  }
};

TjHandle& DecompressorHandle() {
  thread_local TjHandle handle(false);
  return handle;
}
tjhandle Decompressor() { return DecompressorHandle().h; }

tjhandle Compressor() {
  thread_local TjHandle handle(true);
  return handle.h;
}

StatusOr<Image> DecodeJpeg(std::string_view bytes, int min_side) {
  tjhandle tj = Decompressor();
  if (!tj) return InternalError("tjInitDecompress failed");
  int w = 0, h = 0, subsamp = 0, colorspace = 0;
  auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  if (tjDecompressHeader3(tj, data, static_cast<unsigned long>(bytes.size()), &w, &h, &subsamp,
                          &colorspace) != 0) {
    Status st = DataLossError(std::string("corrupt JPEG header: ") + tjGetErrorStr2(tj));
    DecompressorHandle().Reset();
    return st;
  }
  if (w <= 0 || h <= 0 || static_cast<int64_t>(w) * h > (int64_t{1} << 28)) {
    return DataLossError("JPEG has unusable size " + std::to_string(w) + "x" + std::to_string(h));
  }
  int sw = w, sh = h;
  if (min_side > 0 && std::min(w, h) >= 2 * min_side) {
    int n = 0;
    tjscalingfactor* factors = tjGetScalingFactors(&n);
    for (int i = 0; i < n; ++i) {
      const tjscalingfactor f = factors[i];
      if (f.num >= f.denom) continue;
      int cw = TJSCALED(w, f), ch = TJSCALED(h, f);
      if (cw >= min_side && ch >= min_side && cw < sw) {
        sw = cw;
        sh = ch;
      }
    }
  }
  Image img(sw, sh);
  if (tjDecompress2(tj, data, static_cast<unsigned long>(bytes.size()), img.px.data(), sw, 0, sh,
                    TJPF_RGB, TJFLAG_STOPONWARNING) != 0) {
    Status st = DataLossError(std::string("corrupt or truncated JPEG: ") + tjGetErrorStr2(tj));
    DecompressorHandle().Reset();
    return st;
  }
  return img;
}

StatusOr<Image> DecodePng(std::string_view bytes) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    return DataLossError(std::string("corrupt PNG: ") + image.message);
  }
  image.format = PNG_FORMAT_RGB;
  if (image.width == 0 || image.height == 0 ||
      static_cast<uint64_t>(image.width) * image.height > (uint64_t{1} << 28)) {
    png_image_free(&image);
    return DataLossError("PNG has unusable size");
  }
  Image img(static_cast<int>(image.width), static_cast<int>(image.height));
  if (!png_image_finish_read(&image, nullptr, img.px.data(), 0, nullptr)) {
    std::string msg = image.message;
    png_image_free(&image);
    return DataLossError("corrupt or truncated PNG: " + msg);
  }
  if (image.warning_or_error & PNG_IMAGE_ERROR) {
    return DataLossError(std::string("corrupt PNG: ") + image.message);
  }
  return img;
}

// Area-average downscale by integer factors fx, fy (the last block may be partial).
Image BoxDown(const Image& src, int fx, int fy) {
  const int w = (src.width + fx - 1) / fx, h = (src.height + fy - 1) / fy;
  Image out(w, h);
  for (int y = 0; y < h; ++y) {
    const int y0 = y * fy, y1 = std::min(src.height, y0 + fy);
    for (int x = 0; x < w; ++x) {
      const int x0 = x * fx, x1 = std::min(src.width, x0 + fx);
      unsigned sum[3] = {0, 0, 0};
      for (int yy = y0; yy < y1; ++yy) {
        const uint8_t* p = src.At(x0, yy);
        for (int xx = x0; xx < x1; ++xx, p += 3) {
          sum[0] += p[0];
          sum[1] += p[1];
          sum[2] += p[2];
        }
      }
      const unsigned n = static_cast<unsigned>((y1 - y0) * (x1 - x0));
      uint8_t* o = out.At(x, y);
      for (int c = 0; c < 3; ++c) o[c] = static_cast<uint8_t>((sum[c] + n / 2) / n);
    }
  }
  return out;
}

}  // namespace

StatusOr<Image> DecodeImage(std::string_view bytes, int min_side) {
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
      static_cast<unsigned char>(bytes[1]) == 0xD8) {
    return DecodeJpeg(bytes, min_side);
  }
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), "\x89PNG\r\n\x1a\n", 8) == 0) {
    return DecodePng(bytes);
  }
  if (bytes.empty()) return DataLossError("empty file");
  return InvalidArgumentError("not a JPEG or PNG file");
}

StatusOr<Image> LoadImage(const std::string& path, int min_side) {
  // Read straight into a per-thread buffer (no stream copies; the buffer is reused).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFoundError("no such file: " + path);
    return NotFoundError(path + ": cannot open: " + std::strerror(errno));
  }
  thread_local std::vector<char> buf;
  size_t size = 0;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) buf.resize(static_cast<size_t>(st.st_size) + 1);
  if (buf.size() < 4096) buf.resize(4096);
  for (;;) {
    if (size == buf.size()) buf.resize(buf.size() * 2);
    const ssize_t n = ::read(fd, buf.data() + size, buf.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return DataLossError(path + ": read error: " + std::strerror(err));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  ::close(fd);
  StatusOr<Image> img = DecodeImage(std::string_view(buf.data(), size), min_side);
  if (!img.ok()) return img.status().WithPrefix(path);
  return img;
}

StatusOr<std::string> EncodeJpeg(const Image& img, int quality) {
  if (img.empty()) return InvalidArgumentError("cannot encode an empty image");
  tjhandle tj = Compressor();
  if (!tj) return InternalError("tjInitCompress failed");
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (tjCompress2(tj, img.px.data(), img.width, 0, img.height, TJPF_RGB, &buf, &size, TJSAMP_420,
                  std::clamp(quality, 1, 100), 0) != 0) {
    if (buf) tjFree(buf);
    return InternalError(std::string("JPEG encoding failed: ") + tjGetErrorStr2(tj));
  }
  std::string out(reinterpret_cast<char*>(buf), size);
  tjFree(buf);
  return out;
}

StatusOr<std::string> EncodePng(const Image& img) {
  if (img.empty()) return InvalidArgumentError("cannot encode an empty image");
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(img.width);
  image.height = static_cast<png_uint_32>(img.height);
  image.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&image, nullptr, &size, 0, img.px.data(), 0, nullptr)) {
    return InternalError(std::string("PNG encoding failed: ") + image.message);
  }
  std::string out(size, '\0');
  if (!png_image_write_to_memory(&image, out.data(), &size, 0, img.px.data(), 0, nullptr)) {
    return InternalError(std::string("PNG encoding failed: ") + image.message);
  }
  out.resize(size);
  return out;
}

#if defined(SD2_X86_AVX2_DISPATCH)
__attribute__((target_clones("avx2", "default")))
#endif
Image ResizeBilinear(const Image& src, int w, int h) {
  if (src.width == w && src.height == h) return src;
  Image out(w, h);
  // Fixed point: the horizontal pass with 7-bit weights into uint16 (value * 128), the
  // vertical one with 8-bit weights rounds back to 8 bits. Each pair of weights sums to
  // exactly 128 or 256, so constant regions stay exact.
  const float sx = static_cast<float>(src.width) / w, sy = static_cast<float>(src.height) / h;
  const size_t row = static_cast<size_t>(w) * 3;
  const size_t slot_size = row + 8;            // SIMD stores write one sample past a pixel
  thread_local std::vector<uint32_t> offsets;  // per output pixel: left source pixel * 3
  thread_local std::vector<int32_t> weights;   // per output pixel: weight pair (128 - wx, wx)
  thread_local std::vector<uint16_t> rows;     // two cached horizontal passes
  offsets.resize(w);
  weights.resize(w);
  rows.resize(slot_size * 2);
  // Pixels from `simd_end` on may not read 8 bytes from their left neighbour.
  int simd_end = w;
  for (int x = 0; x < w; ++x) {
    const float fxs = std::max(0.0f, (x + 0.5f) * sx - 0.5f);
    const int xi = std::min(static_cast<int>(fxs), src.width - 1);
    auto wx = static_cast<int32_t>(std::lround(std::min(fxs - xi, 1.0f) * 128));
    if (xi + 1 >= src.width) wx = 0;
    offsets[x] = static_cast<uint32_t>(xi) * 3;
    weights[x] = wx << 16 | (128 - wx);
    if (simd_end == w && xi + 3 > src.width) simd_end = x;
  }
  const int right_edge = 3 * (src.width - 1);
  int cached[2] = {-1, -1};
  auto horizontal = [&](int sy_row) -> const uint16_t* {
    for (int i = 0; i < 2; ++i) {
      if (cached[i] == sy_row) return rows.data() + slot_size * i;
    }
    const int slot = cached[0] < cached[1] ? 0 : 1;
    cached[slot] = sy_row;
    const uint8_t* r = src.At(0, sy_row);
    uint16_t* d = rows.data() + slot_size * slot;
    int x = 0;
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    for (; x < simd_end; ++x) {
      const __m128i p = _mm_unpacklo_epi8(
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r + offsets[x])), zero);
      // a0 b0 a1 b1 a2 b2 . . times (128 - wx, wx) pairs.
      const __m128i ab = _mm_unpacklo_epi16(p, _mm_srli_si128(p, 6));
      const __m128i v = _mm_madd_epi16(ab, _mm_set1_epi32(weights[x]));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 3 * x), _mm_packs_epi32(v, v));
    }
#endif
    for (; x < w; ++x) {
      const uint8_t* a = r + offsets[x];
      const uint8_t* b = r + std::min<int>(static_cast<int>(offsets[x]) + 3, right_edge);
      const int wx = weights[x] >> 16;
      for (int c = 0; c < 3; ++c)
        d[3 * x + c] = static_cast<uint16_t>(a[c] * (128 - wx) + b[c] * wx);
    }
    return d;
  };
  for (int y = 0; y < h; ++y) {
    const float fys = std::max(0.0f, (y + 0.5f) * sy - 0.5f);
    int yi = std::min(static_cast<int>(fys), src.height - 1);
    const int yi1 = std::min(yi + 1, src.height - 1);
    auto wy = static_cast<uint32_t>(std::lround(std::min(fys - yi, 1.0f) * 256));
    if (wy == 256) yi = yi1, wy = 0;
    const uint16_t* top = horizontal(yi);
    uint8_t* o = out.At(0, y);
    if (wy == 0) {
      for (size_t i = 0; i < row; ++i) o[i] = static_cast<uint8_t>((top[i] + 64u) >> 7);
      continue;
    }
    const uint16_t* bot = horizontal(yi1);
    // (top * (256 - wy) + bot * wy) / 256 as two 16-bit high-half products (pmulhuw).
    const auto wt = static_cast<uint16_t>((256 - wy) << 8), wb = static_cast<uint16_t>(wy << 8);
    for (size_t i = 0; i < row; ++i) {
      const auto a = static_cast<uint16_t>((static_cast<uint32_t>(top[i]) * wt) >> 16);
      const auto b = static_cast<uint16_t>((static_cast<uint32_t>(bot[i]) * wb) >> 16);
      o[i] = static_cast<uint8_t>(static_cast<uint16_t>(a + b + 64) >> 7);
    }
  }
  return out;
}

Image Resize(const Image& src, int w, int h) {
  if (src.width == w && src.height == h) return src;
  const int fx = src.width / w, fy = src.height / h;
  if (fx >= 2 || fy >= 2) {
    Image box = BoxDown(src, std::max(fx, 1), std::max(fy, 1));
    return ResizeBilinear(box, w, h);
  }
  return ResizeBilinear(src, w, h);
}

}  // namespace sd2::worker::data

// 8-bit RGB images and the codecs and resampling the data pipeline needs: JPEG through
// libjpeg-turbo's TurboJPEG API (scaled decoding when the source is at least twice the wanted
// size), PNG through libpng, bilinear and area resizing.
//
//   SD2_ASSIGN_OR_RETURN(Image img, DecodeImage(bytes, /*min_side=*/224));
//   Image small = Resize(img, 224, 224);
//   SD2_ASSIGN_OR_RETURN(std::string jpg, EncodeJpeg(small, /*quality=*/90));
//
// Thread-safe: codec handles are per thread.
#ifndef SD2_WORKER_DATA_IMAGE_H_
#define SD2_WORKER_DATA_IMAGE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sd2::worker::data {

// Interleaved RGB, row-major, 3 bytes per pixel.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> px;

  Image() = default;
  Image(int w, int h) : width(w), height(h), px(static_cast<size_t>(w) * h * 3) {}
  uint8_t* At(int x, int y) { return &px[(static_cast<size_t>(y) * width + x) * 3]; }
  const uint8_t* At(int x, int y) const { return &px[(static_cast<size_t>(y) * width + x) * 3]; }
  bool empty() const { return width == 0 || height == 0; }
};

// Decodes JPEG or PNG (detected from the first bytes). With min_side > 0 a JPEG whose sides
// are at least twice min_side is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps
// both sides >= min_side. Truncated or corrupt data is DataLoss (warnings count as errors);
// anything else is InvalidArgument.
StatusOr<Image> DecodeImage(std::string_view bytes, int min_side = 0);
// Reads and decodes a file (NotFound when missing).
StatusOr<Image> LoadImage(const std::string& path, int min_side = 0);

// JPEG at quality 1..100 (4:2:0 subsampling).
StatusOr<std::string> EncodeJpeg(const Image& img, int quality);
StatusOr<std::string> EncodePng(const Image& img);

// Resizes to w x h: area averaging when a side shrinks by 2x or more, bilinear
// (half-pixel centres) otherwise.
Image Resize(const Image& src, int w, int h);
Image ResizeBilinear(const Image& src, int w, int h);

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_IMAGE_H_

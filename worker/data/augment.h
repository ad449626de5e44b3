// The DeepfakeBench CLIP training augmentations on 8-bit RGB images, each applied with its
// probability from AugmentOptions, and the final normalisation into a float CHW buffer. All
// randomness comes from the Rng passed in, so the result is a pure function of
// (image, options, rng state): the loader seeds it from (seed, epoch, sample).
//
//   Rng rng(MixSeed(seed, epoch, sample));
//   SD2_RETURN_IF_ERROR(Augment(options, &rng, &img));
//   Normalize(img, Normalization::kClip, out_chw);
#ifndef SD2_WORKER_DATA_AUGMENT_H_
#define SD2_WORKER_DATA_AUGMENT_H_

#include <string>

#include "common/status.h"
#include "worker/data/image.h"
#include "worker/data/loader.h"
#include "worker/data/random.h"

namespace sd2::worker::data {

// The single operations (exposed for tests and benchmarks).
void HFlip(Image* img);
// Rotates about the centre by `degrees` (bilinear; borders reflect).
Image Rotate(const Image& img, double degrees);
// Separable Gaussian blur, kernel radius ceil(3 sigma).
Image GaussianBlur(const Image& img, double sigma);
// Down to `factor` (0 < factor < 1) of the size and back up: DeepfakeBench's IsotropicResize.
Image IsotropicResize(const Image& img, double factor);
// out = in * (1 + contrast) + brightness * 255, clamped.
void BrightnessContrast(Image* img, double brightness, double contrast);
// Encodes at `quality` and decodes again.
StatusOr<Image> JpegRecompress(const Image& img, int quality);

// In order: hflip, rotate, blur (sigma in [0.1, 2]), isotropic resize (factor in [0.5, 0.9]),
// brightness/contrast (each uniform in ±color_delta), JPEG re-compression (quality uniform in
// [jpeg_quality_min, jpeg_quality_max]). Every draw is made whether or not the operation is
// applied, so changing one probability does not shift the others' random numbers.
Status Augment(const AugmentOptions& options, Rng* rng, Image* img);

// The training-augmentation presets a trial picks with the `augment` hparam: "default" (the
// DeepfakeBench recipe above), "flip" (horizontal flips only) or "none". Rotation, blur,
// resizing and JPEG re-compression act as low-pass filters: on tiny low-resolution inputs they
// erase the high-frequency traces that separate the fake types, so small demo models turn
// them off. Anything else is InvalidArgument.
StatusOr<AugmentOptions> AugmentPreset(const std::string& name);

// Writes 3*H*W floats, channel-major: (px / 255 - mean[c]) / std[c].
void Normalize(const Image& img, Normalization norm, float* out);

}  // namespace sd2::worker::data

#endif  // SD2_WORKER_DATA_AUGMENT_H_

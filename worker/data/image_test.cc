#include "worker/data/image.h"

#include <gtest/gtest.h>

#include "worker/data/augment.h"

namespace sd2::worker::data {
namespace {

Image Gradient(int w, int h) {
  Image img(w, h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.At(x, y);
      p[0] = static_cast<uint8_t>(x * 255 / std::max(1, w - 1));
      p[1] = static_cast<uint8_t>(y * 255 / std::max(1, h - 1));
      p[2] = static_cast<uint8_t>((x + y) % 256);
    }
  }
  return img;
}

TEST(ImageTest, PngRoundTripIsExact) {
  Image img = Gradient(37, 21);
  StatusOr<std::string> png = EncodePng(img);
  ASSERT_TRUE(png.ok()) << png.status();
  StatusOr<Image> back = DecodeImage(*png);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->width, 37);
  EXPECT_EQ(back->height, 21);
  EXPECT_EQ(back->px, img.px);
}

TEST(ImageTest, JpegScaledDecode) {
  Image img = Gradient(256, 192);
  StatusOr<std::string> jpg = EncodeJpeg(img, 90);
  ASSERT_TRUE(jpg.ok());
  StatusOr<Image> full = DecodeImage(*jpg);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->width, 256);
  // 192 >= 2 * 48: decoded at 1/4 -> 64x48.
  StatusOr<Image> quarter = DecodeImage(*jpg, 48);
  ASSERT_TRUE(quarter.ok());
  EXPECT_EQ(quarter->width, 64);
  EXPECT_EQ(quarter->height, 48);
  // 192 >= 2 * 90: the smallest factor keeping both sides >= 90 is 1/2.
  StatusOr<Image> half = DecodeImage(*jpg, 90);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->width, 128);
  // Less than twice the target: full size.
  EXPECT_EQ(DecodeImage(*jpg, 100)->width, 256);
  // Mean colour is preserved by the scaled decode.
  double a = 0, b = 0;
  for (uint8_t v : full->px) a += v;
  for (uint8_t v : quarter->px) b += v;
  EXPECT_NEAR(a / full->px.size(), b / quarter->px.size(), 2.0);
}

TEST(ImageTest, CorruptInputIsAnErrorNotACrash) {
  StatusOr<std::string> jpg = EncodeJpeg(Gradient(64, 64), 90);
  ASSERT_TRUE(jpg.ok());
  StatusOr<Image> truncated = DecodeImage(jpg->substr(0, jpg->size() / 2));
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), StatusCode::kDataLoss);
  // The same thread decodes a good file right after a corrupt one.
  EXPECT_TRUE(DecodeImage(*jpg).ok());
  std::string broken = *jpg;
  for (size_t i = 200; i < broken.size() - 2; i += 7) broken[i] = static_cast<char>(0xFF);
  EXPECT_FALSE(DecodeImage(broken).ok());
  EXPECT_EQ(DecodeImage("GIF89a....").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeImage("").status().code(), StatusCode::kDataLoss);
  EXPECT_FALSE(DecodeImage(std::string("\xFF\xD8\xFF", 3)).ok());
  StatusOr<std::string> png = EncodePng(Gradient(40, 40));
  ASSERT_TRUE(png.ok());
  EXPECT_EQ(DecodeImage(png->substr(0, png->size() - 30)).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(LoadImage("/nonexistent/x.png").status().code(), StatusCode::kNotFound);
}

TEST(ImageTest, ResizeKeepsConstantsAndAverages) {
  Image flat(50, 30);
  std::fill(flat.px.begin(), flat.px.end(), 77);
  for (auto [w, h] : {std::pair{25, 15}, std::pair{7, 3}, std::pair{120, 90}}) {
    Image r = Resize(flat, w, h);
    ASSERT_EQ(r.width, w);
    ASSERT_EQ(r.height, h);
    for (uint8_t v : r.px) ASSERT_EQ(v, 77);
  }
  // 2x2 checker of 0/200 averaged down to 1x1 gives 100.
  Image c(2, 2);
  c.At(0, 0)[0] = c.At(1, 1)[0] = 200;
  EXPECT_EQ(Resize(c, 1, 1).px[0], 100);
}

TEST(AugmentTest, OperationsBehave) {
  Image img = Gradient(32, 32);
  Image flipped = img;
  HFlip(&flipped);
  EXPECT_EQ(flipped.At(0, 5)[0], img.At(31, 5)[0]);
  HFlip(&flipped);
  EXPECT_EQ(flipped.px, img.px);
  EXPECT_EQ(Rotate(img, 0).px, img.px);
  Image r90 = Rotate(img, 90);
  EXPECT_NE(r90.px, img.px);
  Image flat(16, 16);
  std::fill(flat.px.begin(), flat.px.end(), 90);
  EXPECT_EQ(GaussianBlur(flat, 1.5).px, flat.px);
  EXPECT_EQ(IsotropicResize(flat, 0.5).px, flat.px);
  BrightnessContrast(&flat, 0.1, 0.0);
  EXPECT_EQ(flat.px[0], 116);  // 90 + 25.5
  BrightnessContrast(&flat, 0.0, -0.5);
  EXPECT_EQ(flat.px[0], 58);
  StatusOr<Image> j = JpegRecompress(img, 40);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->width, 32);
  EXPECT_NE(j->px, img.px);
}

TEST(AugmentTest, DeterministicForTheSameRngState) {
  AugmentOptions o;
  o.p_hflip = o.p_rotate = o.p_blur = o.p_resize = o.p_color = o.p_jpeg = 0.5;
  const Image src = Gradient(48, 48);
  int differ = 0;
  for (uint64_t s = 0; s < 20; ++s) {
    Image a = src, b = src, c = src;
    Rng ra(MixSeed(5, 1, s)), rb(MixSeed(5, 1, s)), rc(MixSeed(5, 2, s));
    ASSERT_TRUE(Augment(o, &ra, &a).ok());
    ASSERT_TRUE(Augment(o, &rb, &b).ok());
    ASSERT_TRUE(Augment(o, &rc, &c).ok());
    EXPECT_EQ(a.px, b.px);
    differ += a.px != c.px;
  }
  EXPECT_GE(differ, 15);
  // All probabilities zero: the image is untouched.
  AugmentOptions none;
  none.p_hflip = none.p_rotate = none.p_blur = none.p_resize = none.p_color = none.p_jpeg = 0;
  Image d = src;
  Rng rd(1);
  ASSERT_TRUE(Augment(none, &rd, &d).ok());
  EXPECT_EQ(d.px, src.px);
}

TEST(AugmentTest, PresetsKeepOrDropTheFilteringOperations) {
  auto def = AugmentPreset("default");
  ASSERT_TRUE(def.ok());
  EXPECT_EQ(def->p_jpeg, AugmentOptions().p_jpeg);
  EXPECT_EQ(def->p_rotate, AugmentOptions().p_rotate);
  auto flip = AugmentPreset("flip");
  ASSERT_TRUE(flip.ok());
  EXPECT_EQ(flip->p_hflip, AugmentOptions().p_hflip);
  auto none = AugmentPreset("none");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->p_hflip, 0);
  for (const AugmentOptions* o : {&*flip, &*none}) {
    EXPECT_EQ(o->p_rotate + o->p_blur + o->p_resize + o->p_color + o->p_jpeg, 0);
  }
  // "none" leaves the pixels (and so their high-frequency content) untouched.
  const Image src = Gradient(32, 32);
  for (uint64_t s = 0; s < 10; ++s) {
    Image img = src;
    Rng rng(MixSeed(3, s));
    ASSERT_TRUE(Augment(*none, &rng, &img).ok());
    EXPECT_EQ(img.px, src.px);
  }
  EXPECT_FALSE(AugmentPreset("light").ok());
}

TEST(AugmentTest, NormalizeClipAndHalf) {
  Image img(2, 1);
  img.At(0, 0)[0] = 255;
  img.At(1, 0)[2] = 0;
  std::vector<float> out(6);
  Normalize(img, Normalization::kHalf, out.data());
  EXPECT_FLOAT_EQ(out[0], 1.0f);   // R of pixel 0
  EXPECT_FLOAT_EQ(out[1], -1.0f);  // R of pixel 1
  Normalize(img, Normalization::kClip, out.data());
  EXPECT_NEAR(out[0], (1.0 - 0.48145466) / 0.26862954, 1e-5);
  EXPECT_NEAR(out[5], (0.0 - 0.40821073) / 0.27577711, 1e-5);
}

}  // namespace
}  // namespace sd2::worker::data

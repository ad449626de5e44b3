#include "worker/data/synth.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <thread>

#include "common/file_util.h"
#include "worker/data/image.h"
#include "worker/data/manifest.h"
#include "worker/data/random.h"

namespace sd2::worker::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Rgb {
  float r, g, b;
};
Rgb Mul(Rgb c, float k) { return {c.r * k, c.g * k, c.b * k}; }
Rgb Lerp(Rgb a, Rgb b, float t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

// A float RGB image in [0, 1].
struct Canvas {
  int s = 0;
  std::vector<float> p;
  explicit Canvas(int side = 0) : s(side), p(static_cast<size_t>(side) * side * 3, 0.f) {}
  float* At(int x, int y) { return &p[(static_cast<size_t>(y) * s + x) * 3]; }
  const float* At(int x, int y) const { return &p[(static_cast<size_t>(y) * s + x) * 3]; }
};

// ---------------------------------------------------------------- attributes

struct Named {
  const char* name;
  Rgb rgb;
};
const Named kSkins[] = {{"fair", {0.96f, 0.82f, 0.72f}},  {"light", {0.92f, 0.75f, 0.62f}},
                        {"olive", {0.80f, 0.63f, 0.47f}}, {"tan", {0.72f, 0.53f, 0.38f}},
                        {"brown", {0.55f, 0.38f, 0.26f}}, {"dark", {0.38f, 0.26f, 0.18f}}};
const Named kHair[] = {{"black", {0.08f, 0.07f, 0.07f}}, {"dark brown", {0.25f, 0.15f, 0.09f}},
                       {"brown", {0.45f, 0.30f, 0.17f}}, {"blond", {0.88f, 0.75f, 0.45f}},
                       {"red", {0.70f, 0.28f, 0.12f}},   {"grey", {0.68f, 0.68f, 0.66f}},
                       {"white", {0.92f, 0.92f, 0.90f}}, {"pink", {0.92f, 0.45f, 0.65f}},
                       {"blue", {0.25f, 0.40f, 0.85f}}};
const Named kEyes[] = {{"brown", {0.35f, 0.20f, 0.10f}},
                       {"dark", {0.12f, 0.08f, 0.06f}},
                       {"blue", {0.30f, 0.50f, 0.80f}},
                       {"green", {0.30f, 0.55f, 0.35f}},
                       {"hazel", {0.50f, 0.40f, 0.20f}}};
const Named kClothes[] = {{"white", {0.92f, 0.92f, 0.92f}}, {"black", {0.10f, 0.10f, 0.12f}},
                          {"red", {0.75f, 0.15f, 0.15f}},   {"blue", {0.20f, 0.30f, 0.70f}},
                          {"green", {0.20f, 0.50f, 0.30f}}, {"grey", {0.50f, 0.50f, 0.52f}},
                          {"yellow", {0.90f, 0.80f, 0.25f}}};
const char* kAges[] = {"young", "young adult", "middle-aged", "elderly"};
const char* kExpressions[] = {"a neutral expression", "a gentle smile",
                              "a surprised expression with an open mouth", "a serious expression"};
const char* kLights[] = {"soft, natural", "bright", "dim", "warm", "even"};

struct Identity {
  int skin, hair, eyes, clothes, age, expression;
  bool female, long_hair, bald, glasses, beard;
  float face_ratio;  // rx / ry
  float skin_jitter[3];
};

struct Scene {
  int kind, light, wall_colour;
  int light_dir;  // -1 left, 0 front, +1 right
  float phase[4];
  float intensity;
};

struct Pose {
  float cx, cy, fs;  // face centre and size (normalised)
};

Identity DrawIdentity(Rng& r) {
  Identity id;
  id.female = r.Bernoulli(0.5);
  id.age = r.UniformInt(0, 3);
  id.skin = r.UniformInt(0, 5);
  id.hair = id.age == 3 ? (r.Bernoulli(0.7) ? 5 : 6) : r.UniformInt(0, 4);
  id.eyes = r.UniformInt(0, 4);
  id.clothes = r.UniformInt(0, 6);
  id.expression = r.UniformInt(0, 3);
  id.long_hair = r.Bernoulli(id.female ? 0.75 : 0.15);
  id.bald = !id.female && id.age >= 2 && r.Bernoulli(0.3);
  id.glasses = r.Bernoulli(0.2);
  id.beard = !id.female && id.age >= 1 && r.Bernoulli(0.35);
  id.face_ratio = static_cast<float>(r.Uniform(0.72, 0.9));
  for (float& j : id.skin_jitter) j = static_cast<float>(r.Uniform(-0.03, 0.03));
  return id;
}

Scene DrawScene(Rng& r) {
  Scene s;
  s.kind = r.UniformInt(0, 6);
  s.light = r.UniformInt(0, 4);
  s.wall_colour = r.UniformInt(0, 6);
  s.light_dir = r.UniformInt(-1, 1);
  for (float& p : s.phase) p = static_cast<float>(r.Uniform(0, 2 * kPi));
  s.intensity = s.light == 1 ? 1.1f : s.light == 2 ? 0.65f : s.light == 3 ? 0.95f : 0.9f;
  return s;
}

Pose DrawPose(Rng& r) {
  return {static_cast<float>(r.Uniform(0.45, 0.55)), static_cast<float>(r.Uniform(0.43, 0.5)),
          static_cast<float>(r.Uniform(0.2, 0.25))};
}

std::string FaceText(const Identity& id, Rng& r) {
  const char* g =
      id.female ? (r.Bernoulli(0.5) ? "female" : "woman") : (r.Bernoulli(0.5) ? "male" : "man");
  std::string hair =
      id.bald ? std::string("a bald head")
              : std::string(id.long_hair ? "long " : "short ") + kHair[id.hair].name + " hair";
  std::string eyes = std::string(kEyes[id.eyes].name) + " eyes";
  std::string extra;
  if (id.glasses) extra += ", wearing glasses";
  if (id.beard) extra += ", with a beard";
  std::string clothes = std::string(kClothes[id.clothes].name);
  switch (r.UniformInt(0, 2)) {
    case 0:
      return "The person in the image is a " + std::string(kAges[id.age]) + " " + g + " with " +
             hair + ", " + kExpressions[id.expression] + ", and " + eyes + extra + ", dressed in " +
             clothes + ".";
    case 1:
      return "The image shows a " + std::string(kAges[id.age]) + " " + g + " with " + hair +
             " and " + eyes + extra + ", showing " + kExpressions[id.expression] + ".";
    default:
      return "A " + std::string(kAges[id.age]) + " " + g + " with " + kSkins[id.skin].name +
             " skin and " + hair + extra + ", with " + kExpressions[id.expression] + ".";
  }
}

std::string EnvText(const Scene& s, Rng& r) {
  static const char* kPlace[] = {
      "an indoor setting with a plain %s wall",
      "an outdoor setting with green foliage, possibly in a park or garden",
      "an urban street with grey buildings",
      "a dark studio backdrop",
      "an outdoor setting under a clear blue sky",
      "a room with wooden shelves",
      "a blurred background with abstract red and white designs"};
  char place[128];
  std::snprintf(place, sizeof(place), kPlace[s.kind], kClothes[s.wall_colour].name);
  const char* dir = s.light_dir < 0   ? "coming from the left"
                    : s.light_dir > 0 ? "coming from the right"
                                      : "evenly illuminating the face";
  if (r.Bernoulli(0.5)) {
    return std::string("The image has ") + place + " in the background, with " + kLights[s.light] +
           " lighting " + dir + ".";
  }
  return std::string("The background shows ") + place + ", and the lighting is " +
         kLights[s.light] + ", " + dir + ".";
}

// ---------------------------------------------------------------- rendering

inline float Cov(float d_px) { return std::clamp(0.5f - d_px, 0.f, 1.f); }
// Signed distance (normalised units, approximate) to an ellipse.
inline float Ell(float u, float v, float cx, float cy, float rx, float ry) {
  const float dx = (u - cx) / rx, dy = (v - cy) / ry;
  return (std::sqrt(dx * dx + dy * dy) - 1.f) * std::min(rx, ry);
}

Rgb Background(const Scene& sc, float u, float v) {
  switch (sc.kind) {
    case 0: {
      Rgb c = Lerp(kClothes[sc.wall_colour].rgb, {0.8f, 0.78f, 0.72f}, 0.5f);
      return Mul(c, 0.9f + 0.15f * v);
    }
    case 1: {
      float t = 0.5f + 0.5f * std::sin(9 * u + sc.phase[0]) * std::sin(7 * v + sc.phase[1]);
      return Lerp({0.12f, 0.35f, 0.12f}, {0.45f, 0.7f, 0.3f}, t);
    }
    case 2: {
      float t = std::sin(11 * u + sc.phase[0]) > 0.2f ? 0.55f : 0.4f;
      return {t, t, t * 1.05f};
    }
    case 3: {
      float d = std::sqrt((u - 0.5f) * (u - 0.5f) + (v - 0.4f) * (v - 0.4f));
      return Mul({0.3f, 0.3f, 0.35f}, std::max(0.2f, 1.0f - d));
    }
    case 4:
      return Lerp({0.35f, 0.55f, 0.9f}, {0.75f, 0.85f, 0.95f}, v);
    case 5: {
      Rgb c = {0.7f, 0.55f, 0.38f};
      float shelf = std::fabs(std::fmod(v + sc.phase[2] * 0.05f, 0.3f) - 0.15f);
      return shelf < 0.015f ? Mul(c, 0.55f) : c;
    }
    default: {
      float t = 0.5f + 0.5f * std::sin(6 * (u + v) + sc.phase[0] + 2 * std::sin(5 * u));
      return Lerp({0.8f, 0.15f, 0.15f}, {0.95f, 0.93f, 0.93f}, t);
    }
  }
}

// Per-pixel portrait. `eye_open` and `smile` let reenactment re-pose the expression.
struct Look {
  float smile = 0;     // -1 frown .. +1 smile
  float open = 0;      // mouth opening 0..1
  float eye_open = 1;  // 0.5 .. 1.4
};

Look LookOf(int expression) {
  Look l;
  if (expression == 1) l.smile = 1, l.eye_open = 0.85f;
  if (expression == 2) l.open = 1, l.eye_open = 1.35f;
  if (expression == 3) l.smile = -0.8f;
  return l;
}

Rgb Portrait(const Identity& id, const Scene& sc, const Pose& ps, const Look& lk, float u, float v,
             float px) {
  Rgb c = Background(sc, u, v);
  const float rx = ps.fs * id.face_ratio, ry = ps.fs * 1.25f, cx = ps.cx, cy = ps.cy;
  Rgb skin = kSkins[id.skin].rgb;
  skin.r += id.skin_jitter[0];
  skin.g += id.skin_jitter[1];
  skin.b += id.skin_jitter[2];
  const Rgb hair = kHair[id.hair].rgb;
  // Long hair behind the head.
  if (id.long_hair && !id.bald) {
    float d = Ell(u, v, cx, cy + ry * 0.45f, rx * 1.35f, ry * 1.3f);
    c = Lerp(c, Mul(hair, 0.85f), Cov(d * px));
  }
  // Shoulders and neck.
  c = Lerp(c, kClothes[id.clothes].rgb,
           Cov(Ell(u, v, cx, cy + ry * 2.25f, rx * 2.3f, ry * 1.1f) * px));
  {
    float d =
        std::max(std::fabs(u - cx) - rx * 0.42f, std::fabs(v - (cy + ry * 1.1f)) - ry * 0.55f);
    c = Lerp(c, Mul(skin, 0.82f), Cov(d * px));
  }
  // Ears, face.
  for (int s : {-1, 1})
    c = Lerp(c, Mul(skin, 0.9f), Cov(Ell(u, v, cx + s * rx, cy, rx * 0.16f, ry * 0.22f) * px));
  const float dface = Ell(u, v, cx, cy, rx, ry);
  const float fu = (u - cx) / rx, fv = (v - cy) / ry;
  if (dface * px < 1) {
    float shade = 0.92f + 0.12f * sc.light_dir * fu - 0.08f * fv * fv;
    Rgb f = Mul(skin, shade);
    // Age lines on the forehead and beside the mouth.
    if (id.age == 3) {
      float w = std::cos(2 * kPi * fv / 0.09f);
      if (fv > -0.62f && fv < -0.38f && std::fabs(fu) < 0.55f)
        f = Mul(f, 1 - 0.12f * std::pow(std::max(0.f, w), 6.f));
      float nl = std::fabs(std::fabs(fu) - (0.32f + 0.25f * (fv - 0.2f)));
      if (fv > 0.15f && fv < 0.55f && nl < 0.03f) f = Mul(f, 0.88f);
    }
    // Beard.
    if (id.beard && fv > 0.2f) {
      float t = std::clamp((fv - 0.2f) * 4, 0.f, 1.f) * 0.7f;
      f = Lerp(f, Mul(hair, 0.8f), t);
    }
    c = Lerp(c, f, Cov(dface * px));
  }
  // Hair on top.
  if (!id.bald) {
    float line = cy - ry * (0.5f - 0.06f * std::sin(fu * 5 + sc.phase[3]));
    float dcap = Ell(u, v, cx, cy - ry * 0.12f, rx * 1.12f, ry * 1.0f);
    float a = Cov(dcap * px) * Cov((v - line) * px);
    c = Lerp(c, hair, a);
  }
  // Eyebrows, eyes, nose, mouth: only inside the face's bounding box.
  if (std::fabs(u - cx) > rx * 1.1f || std::fabs(v - cy) > ry * 1.1f) return c;
  const Rgb brow = Mul(hair, 0.6f);
  for (int s : {-1, 1}) {
    float ex = cx + s * 0.38f * rx, ey = cy - 0.12f * ry;
    float by = ey - (0.2f + 0.06f * (lk.eye_open - 1)) * ry +
               s * (u - ex) * 0.15f * (lk.smile < 0 ? 1 : 0);
    float db = std::max(std::fabs(u - ex) - 0.16f * rx, std::fabs(v - by) - 0.025f * ry);
    c = Lerp(c, brow, Cov(db * px));
    float de = Ell(u, v, ex, ey, 0.17f * rx, 0.075f * ry * lk.eye_open);
    if (de * px < 1) {
      Rgb e = {0.95f, 0.95f, 0.93f};
      float di = std::sqrt((u - ex) * (u - ex) + (v - ey) * (v - ey));
      e = Lerp(e, kEyes[id.eyes].rgb, Cov((di - 0.075f * rx) * px));
      e = Lerp(e, {0.02f, 0.02f, 0.02f}, Cov((di - 0.032f * rx) * px));
      c = Lerp(c, e, Cov(de * px));
    }
    if (id.glasses) {
      float dg = std::fabs(std::sqrt((u - ex) * (u - ex) + (v - ey) * (v - ey)) - 0.26f * rx) -
                 0.022f * rx;
      c = Lerp(c, {0.08f, 0.08f, 0.1f}, Cov(dg * px));
    }
  }
  if (id.glasses) {
    float db =
        std::max(std::fabs(u - cx) - 0.12f * rx, std::fabs(v - (cy - 0.14f * ry)) - 0.015f * ry);
    c = Lerp(c, {0.08f, 0.08f, 0.1f}, Cov(db * px));
  }
  {
    float nx = cx + sc.light_dir * -0.05f * rx;
    float dn =
        std::max(std::fabs(u - nx) - 0.03f * rx, std::fabs(v - (cy + 0.1f * ry)) - 0.17f * ry);
    c = Lerp(c, Mul(c, 0.85f), Cov(dn * px));
    for (int s : {-1, 1})
      c = Lerp(c, Mul(skin, 0.55f),
               Cov(Ell(u, v, cx + s * 0.08f * rx, cy + 0.28f * ry, 0.05f * rx, 0.025f * ry) * px));
  }
  {
    const float mx = cx, my = cy + 0.52f * ry, mw = (0.3f + 0.05f * lk.smile) * rx;
    const float du = (u - mx) / mw;
    if (std::fabs(du) < 1.3f) {
      const Rgb lip = Lerp(skin, {0.75f, 0.25f, 0.3f}, id.female ? 0.6f : 0.35f);
      if (lk.open > 0.1f) {
        float dm = Ell(u, v, mx, my, mw * 0.8f, 0.14f * ry * lk.open);
        c = Lerp(c, lip, Cov((dm - 0.02f * ry) * px));
        c = Lerp(c, {0.3f, 0.05f, 0.07f}, Cov(dm * px));
        float dt = std::max(std::fabs(u - mx) - mw * 0.5f,
                            std::fabs(v - (my - 0.08f * ry * lk.open)) - 0.03f * ry);
        c = Lerp(c, {0.93f, 0.93f, 0.9f}, Cov(std::max(dt, dm) * px));
      } else {
        float y = my - lk.smile * 0.07f * ry * du * du;
        float dl = std::max(std::fabs(v - y) - 0.035f * ry, (std::fabs(du) - 1) * mw);
        c = Lerp(c, lip, Cov(dl * px));
        float dline = std::max(std::fabs(v - y) - 0.008f * ry, (std::fabs(du) - 1) * mw);
        c = Lerp(c, Mul(lip, 0.5f), Cov(dline * px));
      }
    }
  }
  return c;
}

void RenderPortrait(const Identity& id, const Scene& sc, const Pose& ps, const Look& lk,
                    Canvas* out) {
  const int s = out->s;
  const float px = static_cast<float>(s);
  for (int y = 0; y < s; ++y) {
    for (int x = 0; x < s; ++x) {
      const float u = (x + 0.5f) / s, v = (y + 0.5f) / s;
      Rgb c = Portrait(id, sc, ps, lk, u, v, px);
      float light = sc.intensity * (1.f + 0.12f * sc.light_dir * (u - 0.5f));
      float* p = out->At(x, y);
      p[0] = c.r * light;
      p[1] = c.g * light;
      p[2] = c.b * light;
    }
  }
}

// A non-face scene for the GenImage-like set: background and a few objects.
struct Objects {
  int n;
  float x[3], y[3], r[3];
  int colour[3];
  bool box[3];
};
const char* kObjectColours[] = {"white", "black", "red", "blue", "green", "grey", "yellow"};

void RenderObjects(const Scene& sc, const Objects& ob, Canvas* out) {
  const int s = out->s;
  const float px = static_cast<float>(s);
  for (int y = 0; y < s; ++y) {
    for (int x = 0; x < s; ++x) {
      const float u = (x + 0.5f) / s, v = (y + 0.5f) / s;
      Rgb c = Background(sc, u, v);
      for (int i = 0; i < ob.n; ++i) {
        float d = ob.box[i] ? std::max(std::fabs(u - ob.x[i]), std::fabs(v - ob.y[i])) - ob.r[i]
                            : Ell(u, v, ob.x[i], ob.y[i], ob.r[i], ob.r[i]);
        float shade = 1.f - 0.3f * (v - ob.y[i]) / ob.r[i] * (ob.box[i] ? 0 : 1);
        c = Lerp(c, Mul(kClothes[ob.colour[i]].rgb, shade), Cov(d * px));
      }
      float light = sc.intensity * (1.f + 0.12f * sc.light_dir * (u - 0.5f));
      float* p = out->At(x, y);
      p[0] = c.r * light;
      p[1] = c.g * light;
      p[2] = c.b * light;
    }
  }
}

// ---------------------------------------------------------------- canvas operations

Canvas UpsampleBilinear(const Canvas& src, int s) {
  Canvas out(s);
  const float k = static_cast<float>(src.s) / s;
  for (int y = 0; y < s; ++y) {
    float fy = std::clamp((y + 0.5f) * k - 0.5f, 0.f, static_cast<float>(src.s - 1));
    int y0 = static_cast<int>(fy), y1 = std::min(y0 + 1, src.s - 1);
    float wy = fy - y0;
    for (int x = 0; x < s; ++x) {
      float fx = std::clamp((x + 0.5f) * k - 0.5f, 0.f, static_cast<float>(src.s - 1));
      int x0 = static_cast<int>(fx), x1 = std::min(x0 + 1, src.s - 1);
      float wx = fx - x0;
      for (int c = 0; c < 3; ++c) {
        float t = src.At(x0, y0)[c] + (src.At(x1, y0)[c] - src.At(x0, y0)[c]) * wx;
        float b = src.At(x0, y1)[c] + (src.At(x1, y1)[c] - src.At(x0, y1)[c]) * wx;
        out.At(x, y)[c] = t + (b - t) * wy;
      }
    }
  }
  return out;
}

// Nearest-neighbour upsampling by an integer factor (the "transposed convolution" step).
Canvas UpsampleNearest(const Canvas& src, int f) {
  Canvas out(src.s * f);
  for (int y = 0; y < out.s; ++y) {
    for (int x = 0; x < out.s; ++x) {
      const float* p = src.At(x / f, y / f);
      std::copy(p, p + 3, out.At(x, y));
    }
  }
  return out;
}

// Blend with a [1 2 1]/4 smoothing, weight w (per pixel from mask when given).
Canvas Smooth(const Canvas& src, const std::vector<float>* mask, float w) {
  Canvas out = src;
  const int s = src.s;
  for (int y = 0; y < s; ++y) {
    for (int x = 0; x < s; ++x) {
      float m = w * (mask ? (*mask)[static_cast<size_t>(y) * s + x] : 1.f);
      if (m <= 0) continue;
      for (int c = 0; c < 3; ++c) {
        float acc = 0;
        for (int dy = -1; dy <= 1; ++dy) {
          for (int dx = -1; dx <= 1; ++dx) {
            int xx = std::clamp(x + dx, 0, s - 1), yy = std::clamp(y + dy, 0, s - 1);
            acc += src.At(xx, yy)[c] * (dx == 0 ? 2.f : 1.f) * (dy == 0 ? 2.f : 1.f);
          }
        }
        out.At(x, y)[c] = src.At(x, y)[c] * (1 - m) + acc / 16.f * m;
      }
    }
  }
  return out;
}

void AddNoise(Canvas* c, float sigma, Rng& rng, const std::vector<float>* keep_out = nullptr) {
  for (size_t i = 0; i < c->p.size(); ++i) {
    float k = keep_out ? 1.f - (*keep_out)[i / 3] : 1.f;
    c->p[i] += static_cast<float>(rng.Normal()) * sigma * k;
  }
}

Image ToImage(const Canvas& c) {
  Image img(c.s, c.s);
  for (size_t i = 0; i < c.p.size(); ++i) {
    float v = c.p[i] * 255.f;
    img.px[i] = static_cast<uint8_t>(v <= 0 ? 0 : v >= 255 ? 255 : v + 0.5f);
  }
  return img;
}

// Soft elliptic mask; `edge` is the soft border in pixels.
std::vector<float> EllipseMask(int s, float cx, float cy, float rx, float ry, float edge) {
  std::vector<float> m(static_cast<size_t>(s) * s);
  for (int y = 0; y < s; ++y) {
    for (int x = 0; x < s; ++x) {
      float d = Ell((x + 0.5f) / s, (y + 0.5f) / s, cx, cy, rx, ry) * s;
      m[static_cast<size_t>(y) * s + x] = std::clamp(0.5f - d / edge, 0.f, 1.f);
    }
  }
  return m;
}

// Periodic pattern of the given period and kind (0 checker, 1 grid, 2 cosine).
float Pattern(int x, int y, int period, int kind) {
  switch (kind) {
    case 0:
      return ((x / (period / 2 > 0 ? period / 2 : 1) + y / (period / 2 > 0 ? period / 2 : 1)) % 2)
                 ? 1.f
                 : -1.f;
    case 1:
      return (x % period == 0 || y % period == 0) ? 1.f : -0.2f;
    default:
      return static_cast<float>(std::cos(2 * kPi * x / period) * std::cos(2 * kPi * y / period));
  }
}

void AddPattern(Canvas* c, int period, int kind, float amp) {
  for (int y = 0; y < c->s; ++y) {
    for (int x = 0; x < c->s; ++x) {
      float* p = c->At(x, y);
      float a = amp * Pattern(x, y, period, kind) * (0.5f + 0.5f * (p[0] + p[1] + p[2]) / 3);
      for (int k = 0; k < 3; ++k) p[k] += a;
    }
  }
}

// ---------------------------------------------------------------- the manipulations

struct FrameSpec {
  int type;     // 0..4
  int variant;  // 0 training, 1 unseen
  float strength;
  float noise;  // sensor noise sigma
};

int Down(int s, int f) { return std::max(8, s / f); }

// Renders one face frame of the given type.
Canvas MakeFace(const Identity& a, const Identity& b, const Identity& edited, const Scene& sc,
                const Pose& ps, const FrameSpec& f, Rng& rng, int s) {
  const Look look = LookOf(a.expression);
  Canvas out(s);
  switch (f.type) {
    case 0: {
      RenderPortrait(a, sc, ps, look, &out);
      AddNoise(&out, f.noise, rng);
      break;
    }
    case 1: {  // FS: inner face from identity b, rendered at lower resolution, colour shifted
      RenderPortrait(a, sc, ps, look, &out);
      const bool unseen = f.variant == 1;
      Canvas src(Down(s, unseen ? 1 : 2));
      if (unseen) src = Canvas(std::max(8, s * 3 / 4));
      RenderPortrait(b, sc, ps, LookOf(b.expression), &src);
      Canvas up = UpsampleBilinear(src, s);
      const float rx = ps.fs * a.face_ratio, ry = ps.fs * 1.25f;
      const float edge = unseen ? 1.0f : 2.5f;
      std::vector<float> m = EllipseMask(s, ps.cx, ps.cy + 0.08f * ry, 0.8f * rx, 0.78f * ry, edge);
      const float k = f.strength;
      const Rgb shift =
          unseen ? Rgb{-0.05f * k, 0.03f * k, 0.07f * k} : Rgb{0.08f * k, -0.02f * k, -0.06f * k};
      for (int i = 0; i < s * s; ++i) {
        float w = m[i], ring = 4 * w * (1 - w);
        float* o = &out.p[static_cast<size_t>(i) * 3];
        const float* u = &up.p[static_cast<size_t>(i) * 3];
        const float sh[3] = {shift.r, shift.g, shift.b};
        for (int c = 0; c < 3; ++c) {
          float v = o[c] * (1 - w) + (u[c] + sh[c]) * w;
          v *= unseen ? 1 + 0.1f * k * ring : 1 - 0.15f * k * ring;
          o[c] = v;
        }
      }
      // The swapped face is noise-free where the generator painted it.
      AddNoise(&out, f.noise, rng, &m);
      break;
    }
    case 2: {  // FR: mouth and eyes warped to a new expression, with ghosting and blur
      const bool unseen = f.variant == 1;
      Look target = LookOf((a.expression + 1 + static_cast<int>(rng.Below(3))) % 4);
      Canvas orig(s), next(s);
      RenderPortrait(a, sc, ps, look, &orig);
      RenderPortrait(a, sc, ps, target, &next);
      const float rx = ps.fs * a.face_ratio, ry = ps.fs * 1.25f;
      struct Win {
        float x, y, rx, ry;
      };
      std::vector<Win> wins;
      wins.push_back({ps.cx, ps.cy + 0.52f * ry, 0.5f * rx, (unseen ? 0.45f : 0.28f) * ry});
      if (!unseen) {
        for (int sg : {-1, 1})
          wins.push_back({ps.cx + sg * 0.38f * rx, ps.cy - 0.14f * ry, 0.3f * rx, 0.2f * ry});
      }
      std::vector<float> m(static_cast<size_t>(s) * s, 0.f);
      for (int y = 0; y < s; ++y) {
        for (int x = 0; x < s; ++x) {
          float u = (x + 0.5f) / s, v = (y + 0.5f) / s, w = 0;
          for (const Win& wn : wins) {
            float dx = (u - wn.x) / wn.rx, dy = (v - wn.y) / wn.ry;
            w = std::max(w, std::exp(-1.5f * (dx * dx + dy * dy) * (dx * dx + dy * dy)));
          }
          m[static_cast<size_t>(y) * s + x] = w;
        }
      }
      out = orig;
      const float amp = (unseen ? 1.2f : 1.6f) * f.strength;
      for (int y = 0; y < s; ++y) {
        for (int x = 0; x < s; ++x) {
          const float w = m[static_cast<size_t>(y) * s + x];
          if (w < 0.01f) continue;
          // Warp field: a stretch (training) or a swirl (unseen), in pixels.
          float dxp, dyp;
          if (unseen) {
            float ang = 0.5f * amp * w;
            float ox = x - wins[0].x * s, oy = y - wins[0].y * s;
            dxp = ox * (std::cos(ang) - 1) - oy * std::sin(ang);
            dyp = ox * std::sin(ang) + oy * (std::cos(ang) - 1);
          } else {
            dxp = amp * std::sin(y * 0.9f) * w;
            dyp = amp * std::cos(x * 0.9f) * w;
          }
          float sx = std::clamp(x + dxp, 0.f, s - 1.f), sy = std::clamp(y + dyp, 0.f, s - 1.f);
          int x0 = static_cast<int>(sx), y0 = static_cast<int>(sy);
          int x1 = std::min(x0 + 1, s - 1), y1 = std::min(y0 + 1, s - 1);
          float fx = sx - x0, fy = sy - y0;
          for (int c = 0; c < 3; ++c) {
            float t = next.At(x0, y0)[c] + (next.At(x1, y0)[c] - next.At(x0, y0)[c]) * fx;
            float b2 = next.At(x0, y1)[c] + (next.At(x1, y1)[c] - next.At(x0, y1)[c]) * fx;
            float warped = t + (b2 - t) * fy;
            float ghost = unseen ? 0.15f : 0.3f;
            float v = warped * (1 - ghost) + orig.At(x, y)[c] * ghost;
            out.At(x, y)[c] = orig.At(x, y)[c] * (1 - w) + v * w;
          }
        }
      }
      out = Smooth(out, &m, unseen ? 0.6f : 1.0f);
      AddNoise(&out, f.noise, rng, unseen ? &m : nullptr);
      break;
    }
    case 3: {  // EFS: synthesised at low resolution and upsampled, leaving periodic peaks
      const bool unseen = f.variant == 1;
      Canvas low(Down(s, 2));
      RenderPortrait(a, sc, ps, look, &low);
      if (unseen) {
        out = UpsampleBilinear(low, s);
        AddPattern(&out, 4, 2, 0.035f * f.strength);
      } else {
        out = Smooth(UpsampleNearest(low, s / low.s), nullptr, 0.5f);
        if (out.s != s) out = UpsampleBilinear(out, s);
        AddPattern(&out, 2, 0, 0.03f * f.strength);
      }
      AddNoise(&out, f.noise * 0.25f, rng);
      break;
    }
    default: {  // FE: an attribute edit with local smoothing
      Canvas before(s);
      RenderPortrait(a, sc, ps, look, &before);
      RenderPortrait(edited, sc, ps, look, &out);
      std::vector<float> m(static_cast<size_t>(s) * s, 0.f);
      for (int i = 0; i < s * s; ++i) {
        float d = 0;
        for (int c = 0; c < 3; ++c)
          d += std::fabs(before.p[static_cast<size_t>(i) * 3 + c] -
                         out.p[static_cast<size_t>(i) * 3 + c]);
        m[i] = std::min(1.f, d * 8);
      }
      // Dilate the mask by one pixel.
      std::vector<float> md = m;
      for (int y = 0; y < s; ++y) {
        for (int x = 0; x < s; ++x) {
          float v = 0;
          for (int dy = -1; dy <= 1; ++dy) {
            for (int dx = -1; dx <= 1; ++dx) {
              int xx = std::clamp(x + dx, 0, s - 1), yy = std::clamp(y + dy, 0, s - 1);
              v = std::max(v, m[static_cast<size_t>(yy) * s + xx]);
            }
          }
          md[static_cast<size_t>(y) * s + x] = v;
        }
      }
      AddNoise(&out, f.noise, rng);
      for (int pass = 0; pass < 3; ++pass) out = Smooth(out, &md, std::min(1.f, f.strength));
      for (int i = 0; i < s * s; ++i) {
        const float lift[3] = {0.06f, 0.04f, 0.02f};
        for (int c = 0; c < 3; ++c) {
          out.p[static_cast<size_t>(i) * 3 + c] += lift[c] * f.strength * md[i];
        }
      }
      break;
    }
  }
  return out;
}

// The edited identity for FE: hair colour or age (training), glasses or lip edit (unseen).
Identity EditOf(const Identity& a, int variant, Rng& r) {
  Identity e = a;
  if (variant == 0) {
    if (r.Bernoulli(0.5) || a.bald) {
      e.age = a.age == 3 ? 1 : 3;
      if (e.age == 3 && !a.bald) e.hair = 5;
      if (e.age != 3 && !a.bald && a.hair >= 5) e.hair = 2;
    }
    if (!a.bald && e.hair == a.hair) e.hair = (a.hair + 1 + static_cast<int>(r.Below(8))) % 9;
  } else {
    e.glasses = !a.glasses;
    e.female = !a.female;  // changes lip colour
    e.skin = std::min(5, a.skin + 1);
  }
  return e;
}

// ---------------------------------------------------------------- GenImage generators

struct Generator {
  const char* name;
  int down;    // rendered at s / down then upsampled
  int period;  // fingerprint period
  int kind;    // Pattern kind; 3 = colour quantisation in blocks
  float amp;
};
const Generator kGenerators[] = {{"Midjourney", 1, 4, 1, 0.02f}, {"SD v1.4", 2, 8, 1, 0.03f},
                                 {"SD v1.5", 2, 8, 1, 0.026f},   {"ADM", 2, 2, 0, 0.03f},
                                 {"GLIDE", 4, 4, 0, 0.03f},      {"Wukong", 2, 8, 2, 0.03f},
                                 {"VQDM", 2, 4, 3, 0.0f},        {"BigGAN", 2, 2, 0, 0.05f}};

Canvas MakeGenImage(int gen, bool ai, const Scene& sc, const Objects& ob, float noise, Rng& rng,
                    int s) {
  Canvas out(s);
  if (!ai) {
    RenderObjects(sc, ob, &out);
    AddNoise(&out, noise, rng);
    return out;
  }
  const Generator& g = kGenerators[gen];
  Canvas low(Down(s, g.down));
  RenderObjects(sc, ob, &low);
  out = g.down == 1 ? low : UpsampleBilinear(low, s);
  if (g.kind == 3) {
    for (int y = 0; y < s; y += g.period) {
      for (int x = 0; x < s; x += g.period) {
        float mean[3] = {0, 0, 0};
        int n = 0;
        for (int yy = y; yy < std::min(s, y + g.period); ++yy)
          for (int xx = x; xx < std::min(s, x + g.period); ++xx, ++n)
            for (int c = 0; c < 3; ++c) mean[c] += out.At(xx, yy)[c];
        for (int yy = y; yy < std::min(s, y + g.period); ++yy)
          for (int xx = x; xx < std::min(s, x + g.period); ++xx)
            for (int c = 0; c < 3; ++c) {
              float q = std::round(mean[c] / n * 12) / 12;
              out.At(xx, yy)[c] = 0.5f * out.At(xx, yy)[c] + 0.5f * q;
            }
      }
    }
  } else {
    AddPattern(&out, g.period, g.kind, g.amp);
  }
  AddNoise(&out, noise * 0.25f, rng);
  return out;
}

// ---------------------------------------------------------------- the plan

std::vector<SynthSource> MakeSources() {
  std::vector<SynthSource> v;
  auto add = [&](const char* d, const char* sub, double w, std::array<double, 5> mix, int frames,
                 double size, int qlo, int qhi, double strength, bool test_only, int variant,
                 int gen, bool train) {
    SynthSource s{d,        sub,       w,       {mix[0], mix[1], mix[2], mix[3], mix[4]},
                  frames,   size,      qlo,     qhi,
                  strength, test_only, variant, gen,
                  train};
    v.push_back(s);
  };
  // Training sources (Table 1), each with train/val/test.
  add("DF40", "FF", 0.08, {0.3, 0.25, 0.25, 0.1, 0.1}, 4, 1.0, 85, 95, 1.0, false, 0, -1, true);
  add("DF40", "CDF", 0.08, {0.3, 0.3, 0.2, 0.1, 0.1}, 4, 1.0, 80, 92, 0.9, false, 0, -1, true);
  add("DF40", "FS", 0.08, {0.3, 0.7, 0, 0, 0}, 4, 1.0, 85, 95, 1.0, false, 0, -1, true);
  add("DF40", "FR", 0.08, {0.3, 0, 0.7, 0, 0}, 4, 1.0, 85, 95, 1.0, false, 0, -1, true);
  add("DF40", "EFS", 0.08, {0.3, 0, 0, 0.7, 0}, 1, 1.0, 85, 95, 1.0, false, 0, -1, true);
  add("DF40", "FE", 0.08, {0.3, 0, 0, 0, 0.7}, 1, 1.0, 85, 95, 1.0, false, 0, -1, true);
  add("DFF", "", 0.03, {0.3, 0, 0, 0.7, 0}, 1, 1.25, 90, 98, 1.0, false, 0, -1, true);
  add("DFFD", "", 0.05, {0.15, 0, 0, 0, 0.85}, 1, 1.0, 85, 95, 1.0, false, 0, -1, true);
  add("DFDCP", "", 0.02, {0.25, 0.75, 0, 0, 0}, 4, 1.25, 75, 90, 1.0, false, 0, -1, true);
  add("KoDF", "", 0.02, {0.3, 0.7, 0, 0, 0}, 4, 1.5, 85, 95, 1.0, false, 0, -1, true);
  add("FF++ (c40)", "", 0.06, {0.2, 0.4, 0.4, 0, 0}, 4, 1.0, 40, 55, 1.3, false, 0, -1, true);
  add("TIMIT (LQ)", "", 0.005, {0, 1, 0, 0, 0}, 4, 0.75, 70, 80, 1.0, false, 0, -1, true);
  add("TIMIT (HQ)", "", 0.005, {0, 1, 0, 0, 0}, 4, 1.0, 90, 95, 1.0, false, 0, -1, true);
  add("CelebA", "", 0.06, {1, 0, 0, 0, 0}, 1, 1.0, 85, 95, 1.0, false, 0, -1, true);
  add("CelebA-HQ", "", 0.01, {1, 0, 0, 0, 0}, 1, 1.5, 92, 98, 1.0, false, 0, -1, true);
  add("CelebV-HQ", "", 0.30, {1, 0, 0, 0, 0}, 4, 1.0, 85, 95, 1.0, false, 0, -1, true);
  add("FFHQ", "", 0.03, {1, 0, 0, 0, 0}, 1, 1.5, 90, 98, 1.0, false, 0, -1, true);
  // Cross-domain test sets: unseen variants of the manipulations.
  add("UADFV", "", 0.01, {0.5, 0.5, 0, 0, 0}, 4, 0.75, 80, 90, 0.9, true, 1, -1, false);
  add("WildDeepFake", "", 0.01, {0.5, 0.3, 0.2, 0, 0}, 4, 0.75, 55, 70, 0.8, true, 1, -1, false);
  add("DFDC", "", 0.01, {0.5, 0.5, 0, 0, 0}, 4, 1.25, 75, 85, 0.9, true, 1, -1, false);
  add("DF40-Test", "FS", 0.01, {0.5, 0.5, 0, 0, 0}, 4, 1.0, 85, 95, 0.9, true, 1, -1, false);
  add("DF40-Test", "FR", 0.01, {0.5, 0, 0.5, 0, 0}, 4, 1.0, 85, 95, 0.9, true, 1, -1, false);
  add("DF40-Test", "EFS", 0.01, {0.5, 0, 0, 0.5, 0}, 1, 1.0, 85, 95, 0.9, true, 1, -1, false);
  add("DF40-Test", "FE", 0.01, {0.5, 0, 0, 0, 0.5}, 1, 1.0, 85, 95, 0.9, true, 1, -1, false);
  // GenImage-like: nature (REAL) and ai (EFS) per generator; only SD v1.4 trains the probe.
  for (int g = 0; g < 8; ++g) {
    add("GenImage", kGenerators[g].name, g == 1 ? 0.04 : 0.005, {0.5, 0, 0, 0.5, 0}, 1, 1.0, 90, 98,
        1.0, g != 1, 0, g, g == 1);
  }
  return v;
}

std::string Slug(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out += c;
    } else if (c == '+') {
      out += 'p';
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "all" : out;
}

// Largest-remainder split of `total` by weights.
std::vector<int64_t> Apportion(int64_t total, const std::vector<double>& w) {
  double sum = 0;
  for (double x : w) sum += x;
  std::vector<int64_t> out(w.size(), 0);
  if (sum <= 0 || total <= 0) return out;
  std::vector<std::pair<double, size_t>> rem;
  int64_t used = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    double exact = total * w[i] / sum;
    out[i] = static_cast<int64_t>(std::floor(exact));
    used += out[i];
    rem.push_back({-(exact - out[i]), i});
  }
  std::sort(rem.begin(), rem.end());
  for (size_t k = 0; used < total; ++k, ++used) out[rem[k % rem.size()].second]++;
  return out;
}

// DF40's placement of a synthetic row (docs/data.md), so the paper's DF40 eval sets select
// from the synthetic set as from the real one: DF40 / FF and CDF are the two domains, the
// per-type subsets alternate between them by video, and every row carries the forgery type of
// its "method" (a real video of a mixed subset is given one of the four in turn, as DF40's
// real frames come with each method); DF40-Test's rows are test-only, with the domain of the
// test-only methods' real images (data/df40_methods.toml).
void PlaceInDf40(const SynthSource& s, int type, int64_t video, Record* r) {
  if (s.dataset != "DF40" && s.dataset != "DF40-Test") return;
  const int type_of_subset = TypeIndexOf(s.subset);
  const int method_type = type_of_subset > 0 ? type_of_subset
                          : type > 0         ? type
                                             : 1 + static_cast<int>(video % 4);
  r->method_type = kTypeNames[method_type];
  if (s.dataset == "DF40") {
    r->known = true;
    r->domain = type_of_subset > 0 ? (video % 2 == 0 ? "FF" : "CDF") : s.subset;
  } else {
    static const char* kTestDomains[5] = {"", "UADFV", "VFHQ", "FFHQ", "CelebA"};
    r->known = false;
    r->domain = kTestDomains[method_type];
  }
}

struct VideoJob {
  size_t source;
  std::string split;
  int type;
  int frames;
  int64_t video_index;
  size_t first_record;
};

}  // namespace

const std::vector<SynthSource>& SynthSources() {
  static const std::vector<SynthSource> sources = MakeSources();
  return sources;
}

StatusOr<SynthSummary> Synthesize(const SynthOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.out_dir.empty()) return InvalidArgumentError("synth: --out is required");
  if (o.images < 200) return InvalidArgumentError("synth: --images must be at least 200");
  if (o.images > 50000000) return InvalidArgumentError("synth: --images is over 50M");
  if (o.image_size < 16 || o.image_size > 512) {
    return InvalidArgumentError("synth: --size must be in 16..512");
  }
  const auto& sources = SynthSources();
  // Per (source, split) image counts: minimums first, the rest by weight.
  const char* kSplits[] = {"train", "val", "test"};
  std::vector<std::array<int64_t, 3>> count(sources.size(), {0, 0, 0});
  int64_t min_total = 0;
  for (size_t i = 0; i < sources.size(); ++i) {
    const SynthSource& s = sources[i];
    const bool eval_set = s.test_only || s.generator >= 0 || s.mix[0] < 1.0;
    count[i][2] = eval_set ? 40 : 8;
    if (s.train) {
      count[i][0] = 24;
      count[i][1] = 8;
    }
    min_total += count[i][0] + count[i][1] + count[i][2];
  }
  if (min_total > o.images) {
    return InvalidArgumentError("synth: --images must be at least " + std::to_string(min_total) +
                                " to give every evaluation set its minimum test images");
  }
  {
    std::vector<double> w;
    for (const SynthSource& s : sources) w.push_back(s.weight);
    std::vector<int64_t> extra = Apportion(o.images - min_total, w);
    for (size_t i = 0; i < sources.size(); ++i) {
      std::vector<int64_t> sp =
          sources[i].train ? Apportion(extra[i], {0.8, 0.1, 0.1}) : Apportion(extra[i], {0, 0, 1});
      for (int k = 0; k < 3; ++k) count[i][k] += sp[k];
    }
  }
  // Videos, their types and records, in a fixed order.
  std::vector<VideoJob> jobs;
  std::vector<Record> records;
  records.reserve(static_cast<size_t>(o.images));
  std::vector<std::string> dirs;
  for (size_t i = 0; i < sources.size(); ++i) {
    const SynthSource& s = sources[i];
    for (int k = 0; k < 3; ++k) {
      const int64_t n = count[i][k];
      if (n == 0) continue;
      const int64_t videos = (n + s.frames - 1) / s.frames;
      std::vector<double> mix(s.mix, s.mix + 5);
      std::vector<int64_t> per_type = Apportion(videos, mix);
      std::vector<int> types;
      for (int t = 0; t < 5; ++t) types.insert(types.end(), per_type[t], t);
      Rng order(MixSeed(o.seed, i, static_cast<uint64_t>(k), 0x7e5ULL));
      for (size_t j = types.size(); j > 1; --j) std::swap(types[j - 1], types[order.Below(j)]);
      const std::string dir = "images/" + Slug(s.dataset) + "/" + Slug(s.subset) + "/" + kSplits[k];
      dirs.push_back(dir);
      int64_t left = n;
      for (int64_t v = 0; v < videos; ++v) {
        VideoJob job{i,        kSplits[k],
                     types[v], static_cast<int>(std::min<int64_t>(s.frames, left)),
                     v,        records.size()};
        left -= job.frames;
        char vid[32];
        std::snprintf(vid, sizeof(vid), "v%06lld", static_cast<long long>(v));
        for (int f = 0; f < job.frames; ++f) {
          Record r;
          char name[48];
          std::snprintf(name, sizeof(name), "%s_%02d.jpg", vid, f);
          r.path = dir + "/" + name;
          r.dataset = s.dataset;
          r.subset = s.subset;
          r.split = kSplits[k];
          r.type = kTypeNames[job.type];
          r.video =
              s.dataset + "/" + (s.subset.empty() ? "" : s.subset + "/") + kSplits[k] + "/" + vid;
          PlaceInDf40(s, job.type, v, &r);
          records.push_back(std::move(r));
        }
        jobs.push_back(job);
      }
    }
  }
  for (const std::string& d : dirs) SD2_RETURN_IF_ERROR(MakeDirs(o.out_dir + "/" + d));

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::string error;
  std::mutex error_mu;
  auto work = [&] {
    for (size_t j; !failed && (j = next.fetch_add(1)) < jobs.size();) {
      const VideoJob& job = jobs[j];
      const SynthSource& s = sources[job.source];
      Rng rng(MixSeed(o.seed, job.source, HashString(job.split),
                      static_cast<uint64_t>(job.video_index)));
      int side = static_cast<int>(std::lround(o.image_size * s.size_scale / 4.0)) * 4;
      side = std::max(16, side);
      const Scene scene = DrawScene(rng);
      const Identity a = DrawIdentity(rng);
      const Identity b = DrawIdentity(rng);
      const Identity edited = EditOf(a, s.variant, rng);
      Objects ob;
      ob.n = rng.UniformInt(1, 3);
      for (int q = 0; q < 3; ++q) {
        ob.x[q] = static_cast<float>(rng.Uniform(0.2, 0.8));
        ob.y[q] = static_cast<float>(rng.Uniform(0.3, 0.8));
        ob.r[q] = static_cast<float>(rng.Uniform(0.06, 0.18));
        ob.colour[q] = rng.UniformInt(0, 6);
        ob.box[q] = rng.Bernoulli(0.5);
      }
      const Pose base = DrawPose(rng);
      const float noise = static_cast<float>(rng.Uniform(0.012, 0.025));
      // Descriptions (from what is visible: FS shows b's face under a's hair, FE the edit).
      Identity shown = job.type == 4 ? edited : a;
      if (job.type == 1) {
        shown.age = b.age;
        shown.female = b.female;
        shown.eyes = b.eyes;
        shown.expression = b.expression;
        shown.glasses = b.glasses;
      }
      std::string face, env = EnvText(scene, rng);
      if (s.generator >= 0) {
        face = std::string("There is no person in the image; it shows ") +
               (ob.n == 1 ? "a " : "several objects, among them a ") +
               kObjectColours[ob.colour[0]] + (ob.box[0] ? " box." : " ball.");
      } else {
        face = FaceText(shown, rng);
      }
      for (int f = 0; f < job.frames; ++f) {
        Rng frng(MixSeed(rng.Next(), static_cast<uint64_t>(f)));
        Pose ps = base;
        if (f > 0) {
          ps.cx += static_cast<float>(frng.Uniform(-0.015, 0.015));
          ps.cy += static_cast<float>(frng.Uniform(-0.01, 0.01));
          ps.fs *= static_cast<float>(frng.Uniform(0.97, 1.03));
        }
        FrameSpec spec{job.type, s.variant,
                       static_cast<float>(s.strength * frng.Uniform(0.75, 1.25)), noise};
        Canvas c = s.generator >= 0
                       ? MakeGenImage(s.generator, job.type != 0, scene, ob, noise, frng, side)
                       : MakeFace(a, b, edited, scene, ps, spec, frng, side);
        const int quality = frng.UniformInt(s.quality_lo, s.quality_hi);
        StatusOr<std::string> jpg = EncodeJpeg(ToImage(c), quality);
        Record& r = records[job.first_record + static_cast<size_t>(f)];
        r.face = face;
        r.env = env;
        Status st = jpg.status();
        if (st.ok()) {
          const std::string path = o.out_dir + "/" + r.path;
          std::FILE* fp = std::fopen(path.c_str(), "wb");
          if (!fp || std::fwrite(jpg->data(), 1, jpg->size(), fp) != jpg->size()) {
            st = InternalError("cannot write " + path);
          }
          if (fp && std::fclose(fp) != 0) st = InternalError("cannot write " + path);
        }
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!failed) error = st.ToString();
          failed = true;
          return;
        }
      }
    }
  };
  int threads = o.threads > 0 ? o.threads
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  for (std::thread& t : pool) t.join();
  if (failed) return InternalError("synth: " + error);

  SynthSummary sum;
  sum.manifest = o.out_dir + "/manifest.jsonl";
  SD2_ASSIGN_OR_RETURN(sum.digest, WriteManifest(sum.manifest, records));
  sum.images = static_cast<int64_t>(records.size());
  for (const Record& r : records) sum.per_dataset[r.dataset]++;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace sd2::worker::data

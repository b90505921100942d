#include "doppel/signature.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <cmath>

namespace doppel {
namespace {

// Area-average resampling of a w x h float image into side x side bytes.
void Thumbnail(const float* src, int w, int /*h*/, int x0, int y0, int x1, int y1, uint8_t* out,
               int side) {
  const double sx = double(x1 - x0) / side, sy = double(y1 - y0) / side;
  for (int ty = 0; ty < side; ++ty) {
    const int ya = y0 + int(ty * sy), yb = std::max(ya + 1, y0 + int((ty + 1) * sy));
    for (int tx = 0; tx < side; ++tx) {
      const int xa = x0 + int(tx * sx), xb = std::max(xa + 1, x0 + int((tx + 1) * sx));
      double sum = 0;
      for (int y = ya; y < std::min(yb, y1); ++y)
        for (int x = xa; x < std::min(xb, x1); ++x) sum += src[size_t(y) * w + x];
      const int n = (std::min(yb, y1) - ya) * (std::min(xb, x1) - xa);
      out[ty * side + tx] = uint8_t(std::clamp(n > 0 ? sum / n + 0.5 : 0.0, 0.0, 255.0));
    }
  }
}

// A line (row or column) is border if it is flat and close to the edge's colour.
bool FlatLine(const float* p, int n, int stride, float ref, float tol) {
  float lo = 255, hi = 0;
  for (int i = 0; i < n; ++i) {
    const float v = p[size_t(i) * stride];
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return hi - lo <= tol && std::fabs((lo + hi) / 2 - ref) <= tol;
}

}  // namespace

Signature ComputeSignature(const float* luma, int w, int h, const float* smooth, int sw, int sh,
                           const std::array<float, 32>& chroma) {
  Signature s;
  for (int k = 0; k < 32; ++k)
    s.chroma[k] = int8_t(std::clamp(std::lround(chroma[k]), -128L, 127L));
  if (w < 2 || h < 2 || sw < 2 || sh < 2) return s;
  s.smooth = PdqFromLuminance(smooth, sw, sh);
  Thumbnail(smooth, sw, sh, 0, 0, sw, sh, s.thumb.data(), kThumbSide);

  // Borders: trim flat lines of the edge's colour from each side, at most 40%
  // of the side, and only call it a border when it is at least 2% wide (a
  // thin frame line is part of the picture).
  constexpr float kTol = 10.0f;
  const int max_x = w * 2 / 5, max_y = h * 2 / 5;
  int left = 0, right = 0, top = 0, bottom = 0;
  const float c_left = luma[size_t(h / 2) * w], c_right = luma[size_t(h / 2) * w + w - 1];
  const float c_top = luma[w / 2], c_bottom = luma[size_t(h - 1) * w + w / 2];
  while (left < max_x && FlatLine(luma + left, h, w, c_left, kTol)) ++left;
  while (right < max_x && FlatLine(luma + (w - 1 - right), h, w, c_right, kTol)) ++right;
  while (top < max_y && FlatLine(luma + size_t(top) * w, w, 1, c_top, kTol)) ++top;
  while (bottom < max_y && FlatLine(luma + size_t(h - 1 - bottom) * w, w, 1, c_bottom, kTol))
    ++bottom;
  auto significant = [](int n, int side) { return n * 50 >= side; };
  if (!significant(left, w)) left = 0;
  if (!significant(right, w)) right = 0;
  if (!significant(top, h)) top = 0;
  if (!significant(bottom, h)) bottom = 0;
  const int iw = w - left - right, ih = h - top - bottom;
  if ((left || right || top || bottom) && iw >= 16 && ih >= 16) {
    s.trim_left = float(left) / w;
    s.trim_right = float(right) / w;
    s.trim_top = float(top) / h;
    s.trim_bottom = float(bottom) / h;
    std::vector<float> inner(size_t(iw) * ih);
    for (int y = 0; y < ih; ++y)
      std::copy_n(luma + size_t(y + top) * w + left, iw, inner.begin() + ptrdiff_t(y) * iw);
    s.trimmed = PdqFromLuminance(inner.data(), iw, ih);
    Thumbnail(inner.data(), iw, ih, 0, 0, iw, ih, s.inner_thumb.data(), kThumbSide);
  }
  return s;
}

std::optional<double> HueAgreement(const Signature& a, const Signature& b, Dihedral d) {
  // b's grid in a's orientation: b = transform_d(a), so invert by sampling
  // b at the transformed position of each of a's cells.
  auto at = [&](const Signature& s, int x, int y, int c) {
    return double(s.chroma[size_t(2 * (4 * y + x) + c)]);
  };
  double sum = 0, weight = 0, sat_a = 0, sat_b = 0;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      int bx = x, by = y;  // where a's cell (x, y) went in b
      switch (d) {
        case Dihedral::kOriginal:
          break;
        case Dihedral::kRotate90:
          bx = y;
          by = 3 - x;
          break;
        case Dihedral::kRotate180:
          bx = 3 - x;
          by = 3 - y;
          break;
        case Dihedral::kRotate270:
          bx = 3 - y;
          by = x;
          break;
        case Dihedral::kFlipX:
          by = 3 - y;
          break;
        case Dihedral::kFlipY:
          bx = 3 - x;
          break;
        case Dihedral::kFlipPlus1:
          bx = y;
          by = x;
          break;
        case Dihedral::kFlipMinus1:
          bx = 3 - y;
          by = 3 - x;
          break;
      }
      const double a0 = at(a, x, y, 0), a1 = at(a, x, y, 1), b0 = at(b, bx, by, 0),
                   b1 = at(b, bx, by, 1);
      const double na = std::hypot(a0, a1), nb = std::hypot(b0, b1);
      sat_a += na;
      sat_b += nb;
      if (na < 3 || nb < 3) continue;  // a grey cell has no hue
      const double w = std::min(na, nb);
      sum += w * (a0 * b0 + a1 * b1) / (na * nb);
      weight += w;
    }
  // Mean chroma magnitude under 4 (of 128): a grey or nearly grey picture.
  if (sat_a / 16 < 4 || sat_b / 16 < 4 || weight <= 0) return std::nullopt;
  return sum / weight;
}

namespace {

// Correlation of `inner` (n x n) with the part of `outer` (n x n) it shows
// when placed at scale s (of outer's side), centre offset (dx, dy) in outer's
// units and rotated by `angle` radians; bilinear samples; -1 if it leaves
// the picture.
double PlacedCorrelation(const float* outer, const float* inner, int n, double s, double dx,
                         double dy, double angle) {
  const double c = std::cos(angle), sn = std::sin(angle);
  const double half = (n - 1) / 2.0;
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  for (int v = 0; v < n; ++v)
    for (int u = 0; u < n; ++u) {
      // inner pixel (u, v) -> outer coordinates
      const double x0 = (u - half) * s, y0 = (v - half) * s;
      const double x = half + dx * n + c * x0 - sn * y0, y = half + dy * n + sn * x0 + c * y0;
      if (x < 0 || y < 0 || x > n - 1 || y > n - 1) return -1;
      const int xi = std::min(int(x), n - 2), yi = std::min(int(y), n - 2);
      const double fx = x - xi, fy = y - yi;
      const float* p = outer + yi * n + xi;
      const double a =
          (p[0] * (1 - fx) + p[1] * fx) * (1 - fy) + (p[n] * (1 - fx) + p[n + 1] * fx) * fy;
      const double b = inner[v * n + u];
      sa += a;
      sb += b;
      saa += a * a;
      sbb += b * b;
      sab += a * b;
    }
  const double m = double(n) * n;
  const double va = saa - sa * sa / m, vb = sbb - sb * sb / m;
  if (va < 1e-6 || vb < 1e-6) return 0;
  return (sab - sa * sb / m) / std::sqrt(va * vb);
}

std::vector<float> Halve(const std::vector<float>& t, int n) {
  std::vector<float> out(size_t(n / 2) * (n / 2));
  for (int y = 0; y < n / 2; ++y)
    for (int x = 0; x < n / 2; ++x)
      out[size_t(y) * (n / 2) + x] =
          (t[size_t(2 * y) * n + 2 * x] + t[size_t(2 * y) * n + 2 * x + 1] +
           t[size_t(2 * y + 1) * n + 2 * x] + t[size_t(2 * y + 1) * n + 2 * x + 1]) /
          4;
  return out;
}

ThumbAlignment AlignOneWay(const std::vector<float>& outer, const std::vector<float>& inner) {
  const int n = kThumbSide;
  const auto outer_small = Halve(outer, n), inner_small = Halve(inner, n);
  constexpr double kDeg = M_PI / 180;
  ThumbAlignment best;
  // Coarse: on 16 x 16.
  for (double s = 0.80; s <= 1.0001; s += 0.025)
    for (double angle : {-3.0, -1.5, 0.0, 1.5, 3.0}) {
      const double room = (1 - s) / 2 + 0.02;
      for (double dy = -room; dy <= room + 1e-9; dy += 1.0 / 16)
        for (double dx = -room; dx <= room + 1e-9; dx += 1.0 / 16) {
          const double r = PlacedCorrelation(outer_small.data(), inner_small.data(), n / 2, s, dx,
                                             dy, angle * kDeg);
          if (r > best.correlation) best = {r, s, dx, dy, angle, false};
        }
    }
  // Fine: around the best, on 32 x 32.
  const ThumbAlignment coarse = best;
  best.correlation = -1;
  for (double s = coarse.scale - 0.0125; s <= coarse.scale + 0.0126; s += 0.00625)
    for (double angle = coarse.angle - 0.75; angle <= coarse.angle + 0.76; angle += 0.375)
      for (double dy = coarse.dy - 1.0 / 32; dy <= coarse.dy + 1.0 / 32 + 1e-9; dy += 1.0 / 64)
        for (double dx = coarse.dx - 1.0 / 32; dx <= coarse.dx + 1.0 / 32 + 1e-9; dx += 1.0 / 64) {
          if (s > 1.0) continue;
          const double r =
              PlacedCorrelation(outer.data(), inner.data(), n, s, dx, dy, angle * kDeg);
          if (r > best.correlation) best = {r, s, dx, dy, angle, false};
        }
  return best;
}

}  // namespace

ThumbAlignment AlignThumbs(const Thumb& a, const Thumb& b) {
  std::vector<float> fa(a.begin(), a.end()), fb(b.begin(), b.end());
  ThumbAlignment b_in_a = AlignOneWay(fa, fb);
  ThumbAlignment a_in_b = AlignOneWay(fb, fa);
  a_in_b.a_inside_b = true;
  return a_in_b.correlation > b_in_a.correlation ? a_in_b : b_in_a;
}

Thumb TransformThumb(const Thumb& t, Dihedral d) {
  constexpr int N = kThumbSide;
  Thumb out{};
  for (int y = 0; y < N; ++y)
    for (int x = 0; x < N; ++x) {
      int sx = x, sy = y;  // where output pixel (x, y) comes from
      switch (d) {
        case Dihedral::kOriginal:
          break;
        case Dihedral::kRotate90:
          sx = N - 1 - y;
          sy = x;
          break;  // anticlockwise, as PDQ's variant
        case Dihedral::kRotate180:
          sx = N - 1 - x;
          sy = N - 1 - y;
          break;
        case Dihedral::kRotate270:
          sx = y;
          sy = N - 1 - x;
          break;  // clockwise
        case Dihedral::kFlipX:
          sy = N - 1 - y;
          break;  // top-bottom
        case Dihedral::kFlipY:
          sx = N - 1 - x;
          break;  // left-right
        case Dihedral::kFlipPlus1:
          sx = y;
          sy = x;
          break;  // transpose
        case Dihedral::kFlipMinus1:
          sx = N - 1 - y;
          sy = N - 1 - x;
          break;
      }
      out[size_t(y) * N + x] = t[size_t(sy) * N + sx];
    }
  return out;
}

double ThumbCorrelation(const Thumb& a, const Thumb& b) {
  constexpr int n = kThumbSide * kThumbSide;
  double ma = 0, mb = 0;
  for (int i = 0; i < n; ++i) {
    ma += a[i];
    mb += b[i];
  }
  ma /= n;
  mb /= n;
  double sab = 0, saa = 0, sbb = 0;
  for (int i = 0; i < n; ++i) {
    const double da = a[i] - ma, db = b[i] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa < 1e-9 || sbb < 1e-9) return 0;
  return sab / std::sqrt(saa * sbb);
}

}  // namespace doppel

#include "doppel/signature.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace doppel {
namespace {

// Area-average resampling of a w x h float image into side x side bytes.
void Thumbnail(const float* src, int w, int h, int x0, int y0, int x1, int y1, uint8_t* out, int side) {
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

Signature ComputeSignature(const float* luma, int w, int h) {
  Signature s;
  if (w < 2 || h < 2) return s;
  Thumbnail(luma, w, h, 0, 0, w, h, s.thumb.data(), kThumbSide);

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
  while (bottom < max_y && FlatLine(luma + size_t(h - 1 - bottom) * w, w, 1, c_bottom, kTol)) ++bottom;
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

Thumb TransformThumb(const Thumb& t, Dihedral d) {
  constexpr int N = kThumbSide;
  Thumb out{};
  for (int y = 0; y < N; ++y)
    for (int x = 0; x < N; ++x) {
      int sx = x, sy = y;  // where output pixel (x, y) comes from
      switch (d) {
        case Dihedral::kOriginal: break;
        case Dihedral::kRotate90: sx = N - 1 - y; sy = x; break;       // anticlockwise, as PDQ's variant
        case Dihedral::kRotate180: sx = N - 1 - x; sy = N - 1 - y; break;
        case Dihedral::kRotate270: sx = y; sy = N - 1 - x; break;      // clockwise
        case Dihedral::kFlipX: sy = N - 1 - y; break;                   // top-bottom
        case Dihedral::kFlipY: sx = N - 1 - x; break;                   // left-right
        case Dihedral::kFlipPlus1: sx = y; sy = x; break;               // transpose
        case Dihedral::kFlipMinus1: sx = N - 1 - y; sy = N - 1 - x; break;
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

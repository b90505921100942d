// PDQ, following ../shared/docs/pdq.md sections 3-8. The float arithmetic
// (running box sums, float DCT accumulation) mirrors the reference so that our
// hashes land within a bit or two of it on the same luminance input.
#include "doppel/pdq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace doppel {
namespace {

constexpr int kDim = 64;
constexpr int kDct = 16;

// ceil(n / 128): the box window for a side of n pixels decimated to 64.
int JaroszWindow(int n) { return (n + 2 * kDim - 1) / (2 * kDim); }

// One box pass of window w over n samples at `stride`, borders shrinking; the
// running-sum order matches the reference (docs/pdq.md section 3).
void Box1D(const float* in, float* out, int n, int stride, int w) {
  const int half = (w + 2) / 2;
  const int phase1 = half - 1;
  const int phase2 = w - half + 1;
  const int phase3 = n - w;
  const int phase4 = half - 1;
  int li = 0, ri = 0, oi = 0;
  float sum = 0.0f;
  int cur = 0;
  for (int i = 0; i < phase1; ++i) {
    sum += in[ri];
    ++cur;
    ri += stride;
  }
  for (int i = 0; i < phase2; ++i) {
    sum += in[ri];
    ++cur;
    out[oi] = sum / cur;
    ri += stride;
    oi += stride;
  }
  for (int i = 0; i < phase3; ++i) {
    sum += in[ri];
    sum -= in[li];
    out[oi] = sum / cur;
    li += stride;
    ri += stride;
    oi += stride;
  }
  for (int i = 0; i < phase4; ++i) {
    sum -= in[li];
    --cur;
    out[oi] = sum / cur;
    li += stride;
    oi += stride;
  }
}

struct DctMatrix {
  float d[kDct][kDim];
  DctMatrix() {
    const double scale = std::sqrt(2.0 / kDim);
    for (int i = 0; i < kDct; ++i)
      for (int j = 0; j < kDim; ++j)
        d[i][j] = static_cast<float>(scale * std::cos((M_PI / 2 / kDim) * (i + 1) * (2 * j + 1)));
  }
};
const DctMatrix& Dct() {
  static const DctMatrix m;
  return m;
}

using Block = std::array<std::array<float, kDct>, kDct>;

PdqHash Threshold(const Block& b) {
  float sorted[kDct * kDct];
  std::memcpy(sorted, b.data(), sizeof sorted);
  std::nth_element(sorted, sorted + 127, sorted + 256);
  const float median = sorted[127];  // the lower middle element, as Torben's selection
  PdqHash h;
  for (int i = 0; i < kDct; ++i)
    for (int j = 0; j < kDct; ++j)
      if (b[i][j] > median) h.set_bit(kDct * i + j);
  return h;
}

// docs/pdq.md section 8: each transform as a sign pattern and an optional transpose.
// Index parity: even index = odd frequency = antisymmetric under reflection.
Block Transform(const Block& a, Dihedral d) {
  Block out{};
  for (int i = 0; i < kDct; ++i) {
    for (int j = 0; j < kDct; ++j) {
      const float v = a[i][j];
      const bool i_odd = i & 1, j_odd = j & 1, sum_odd = (i + j) & 1;
      switch (d) {
        case Dihedral::kOriginal:
          out[i][j] = v;
          break;
        case Dihedral::kRotate90:
          out[j][i] = j_odd ? v : -v;
          break;
        case Dihedral::kRotate180:
          out[i][j] = sum_odd ? -v : v;
          break;
        case Dihedral::kRotate270:
          out[j][i] = i_odd ? v : -v;
          break;
        case Dihedral::kFlipX:
          out[i][j] = i_odd ? v : -v;
          break;
        case Dihedral::kFlipY:
          out[i][j] = j_odd ? v : -v;
          break;
        case Dihedral::kFlipPlus1:
          out[j][i] = v;
          break;
        case Dihedral::kFlipMinus1:
          out[j][i] = sum_odd ? -v : v;
          break;
      }
    }
  }
  return out;
}

}  // namespace

const char* DihedralName(Dihedral d) {
  switch (d) {
    case Dihedral::kOriginal:
      return "original";
    case Dihedral::kRotate90:
      return "rotate90";
    case Dihedral::kRotate180:
      return "rotate180";
    case Dihedral::kRotate270:
      return "rotate270";
    case Dihedral::kFlipX:
      return "flipx";
    case Dihedral::kFlipY:
      return "flipy";
    case Dihedral::kFlipPlus1:
      return "flip+1";
    case Dihedral::kFlipMinus1:
      return "flip-1";
  }
  return "?";
}

std::string PdqHash::ToHex() const {
  static const char* kHex = "0123456789abcdef";
  std::string s(64, '0');
  for (int w = 15, p = 0; w >= 0; --w) {
    for (int shift = 12; shift >= 0; shift -= 4) s[p++] = kHex[(words[w] >> shift) & 0xF];
  }
  return s;
}

std::optional<PdqHash> PdqHash::FromHex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  PdqHash h;
  for (int p = 0; p < 64; ++p) {
    char c = hex[p];
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      return std::nullopt;
    const int w = 15 - p / 4;
    const int shift = 12 - 4 * (p % 4);
    h.words[w] |= uint16_t(v << shift);
  }
  return h;
}

std::array<uint8_t, 32> PdqHash::ToBytes() const {
  std::array<uint8_t, 32> b{};
  for (int w = 15, p = 0; w >= 0; --w) {
    b[p++] = uint8_t(words[w] >> 8);
    b[p++] = uint8_t(words[w] & 0xFF);
  }
  return b;
}

PdqHash PdqHash::FromBytes(const uint8_t* bytes32) {
  PdqHash h;
  for (int w = 15, p = 0; w >= 0; --w, p += 2)
    h.words[w] = uint16_t((bytes32[p] << 8) | bytes32[p + 1]);
  return h;
}

PdqResult PdqFromLuminance(const float* luma, int width, int height) {
  PdqResult r;
  if (width < 5 || height < 5) return r;  // all-zero hashes, quality 0

  const size_t n = size_t(width) * height;
  std::vector<float> a(luma, luma + n), b(n);
  const int wx = JaroszWindow(width), wy = JaroszWindow(height);
  for (int rep = 0; rep < 2; ++rep) {
    for (int y = 0; y < height; ++y)
      Box1D(&a[size_t(y) * width], &b[size_t(y) * width], width, 1, wx);
    for (int x = 0; x < width; ++x) Box1D(&b[x], &a[x], height, width, wy);
  }

  float img[kDim][kDim];
  for (int i = 0; i < kDim; ++i) {
    const int yi = static_cast<int>((i + 0.5) * height / kDim);
    for (int j = 0; j < kDim; ++j) {
      const int xj = static_cast<int>((j + 0.5) * width / kDim);
      img[i][j] = a[size_t(yi) * width + xj];
    }
  }

  int gradient_sum = 0;
  for (int i = 0; i < kDim - 1; ++i)
    for (int j = 0; j < kDim; ++j) {
      int d = static_cast<int>((img[i][j] - img[i + 1][j]) * 100 / 255);
      gradient_sum += std::abs(d);
    }
  for (int i = 0; i < kDim; ++i)
    for (int j = 0; j < kDim - 1; ++j) {
      int d = static_cast<int>((img[i][j] - img[i][j + 1]) * 100 / 255);
      gradient_sum += std::abs(d);
    }
  r.quality = std::min(100, gradient_sum / 90);

  const auto& D = Dct().d;
  float t[kDct][kDim];
  for (int i = 0; i < kDct; ++i)
    for (int j = 0; j < kDim; ++j) {
      float s = 0.0f;
      for (int k = 0; k < kDim; ++k) s += D[i][k] * img[k][j];
      t[i][j] = s;
    }
  Block blk;
  for (int i = 0; i < kDct; ++i)
    for (int j = 0; j < kDct; ++j) {
      float s = 0.0f;
      for (int k = 0; k < kDim; ++k) s += t[i][k] * D[j][k];
      blk[i][j] = s;
    }

  for (int d = 0; d < 8; ++d) r.dihedral[d] = Threshold(Transform(blk, static_cast<Dihedral>(d)));
  r.hash = r.dihedral[0];
  return r;
}

}  // namespace doppel

// A finer look at a picture than its PDQ hash: what the matcher uses to
// confirm (or refuse) a PDQ candidate, and to find copies a global hash
// misses (pictures inside added borders). Computed at scan time from the same
// oriented luminance grid PDQ hashes; stored in the catalogue (docs/matching.md).
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "doppel/pdq.h"

namespace doppel {

inline constexpr int kThumbSide = 32;
inline constexpr int kSignatureVersion = 1;

struct Signature {
  // Luminance thumbnail of the oriented picture (area averages), row-major.
  std::array<uint8_t, kThumbSide * kThumbSide> thumb{};
  // Uniform borders (letterbox, scanner bed, passe-partout) found around the
  // picture, as fractions of the width/height; all 0 when there are none.
  float trim_left = 0, trim_top = 0, trim_right = 0, trim_bottom = 0;
  // PDQ and thumbnail of the picture inside those borders, when there are any.
  std::optional<PdqResult> trimmed;
  std::array<uint8_t, kThumbSide * kThumbSide> inner_thumb{};
  bool has_borders() const { return trimmed.has_value(); }
};

// From a row-major luminance image (the grid PDQ hashed, oriented).
Signature ComputeSignature(const float* luma, int width, int height);

// How alike two thumbnails are once brightness and contrast are normalised:
// the Pearson correlation of their pixels, -1..1 (1 = same picture up to a
// brightness/contrast/gamma-free change). Flat thumbnails correlate 0.
using Thumb = std::array<uint8_t, kThumbSide * kThumbSide>;
double ThumbCorrelation(const Thumb& a, const Thumb& b);

// The thumbnail as it would look after the dihedral transform d (the same
// transform whose PDQ variant PdqResult::dihedral[d] is).
Thumb TransformThumb(const Thumb& t, Dihedral d);

}  // namespace doppel

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
  // PDQ of the picture resampled by area averages instead of the reference's
  // nearest-neighbour samples: free of aliasing, so a resized copy lands
  // closer to its original. Used for matching only, never exchanged.
  PdqResult smooth;
  // Luminance thumbnail of the oriented picture (area averages), row-major.
  std::array<uint8_t, kThumbSide * kThumbSide> thumb{};
  // Mean chroma (Cb, Cr) of a 4 x 4 grid, for telling a recoloured edition
  // from a copy; all zero for grey pictures.
  std::array<int8_t, 32> chroma{};
  // Uniform borders (letterbox, scanner bed, passe-partout) found around the
  // picture, as fractions of the width/height; all 0 when there are none.
  float trim_left = 0, trim_top = 0, trim_right = 0, trim_bottom = 0;
  // PDQ and thumbnail of the picture inside those borders, when there are any.
  std::optional<PdqResult> trimmed;
  std::array<uint8_t, kThumbSide * kThumbSide> inner_thumb{};
  bool has_borders() const { return trimmed.has_value(); }
};

// From the oriented luminance grid PDQ hashed (width x height), the picture
// as area averages (smooth_width x smooth_height) and the 4 x 4 chroma grid.
Signature ComputeSignature(const float* luma, int width, int height, const float* smooth, int smooth_width,
                           int smooth_height, const std::array<float, 32>& chroma);

// How consistently two pictures' colours point the same way, cell by cell:
// the magnitude-weighted mean cosine between their chroma vectors (1 = same
// hues; a recoloured edition goes towards -1). nullopt when either picture
// is (nearly) grey, where hue says nothing. `d` aligns b's grid to a's.
std::optional<double> HueAgreement(const Signature& a, const Signature& b, Dihedral d);

// How alike two thumbnails are once brightness and contrast are normalised:
// the Pearson correlation of their pixels, -1..1 (1 = same picture up to a
// brightness/contrast/gamma-free change). Flat thumbnails correlate 0.
using Thumb = std::array<uint8_t, kThumbSide * kThumbSide>;
double ThumbCorrelation(const Thumb& a, const Thumb& b);


// The best geometric alignment of two thumbnails: one picture as a cropped,
// shifted, slightly rotated part of the other. `correlation` is the Pearson
// correlation of the overlapping pixels once aligned.
struct ThumbAlignment {
  double correlation = -1;
  double scale = 1;        // side of the smaller picture / side of the larger one
  double dx = 0, dy = 0;   // centre offset, in fractions of the larger picture
  double angle = 0;        // degrees
  bool a_inside_b = false; // which picture is the crop of the other
};
// Searches scales 0.80..1.0, shifts and rotations of up to 3 degrees, coarse
// to fine. A few milliseconds: for candidate pairs only.
ThumbAlignment AlignThumbs(const Thumb& a, const Thumb& b);

// The thumbnail as it would look after the dihedral transform d (the same
// transform whose PDQ variant PdqResult::dihedral[d] is).
Thumb TransformThumb(const Thumb& t, Dihedral d);

}  // namespace doppel

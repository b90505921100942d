// A finer look at a picture than its PDQ hash: what the matcher uses to
// confirm (or refuse) a PDQ candidate, and to find copies a global hash
// misses (pictures inside added borders). Computed at scan time from the same
// oriented luminance grid PDQ hashes; stored in the catalogue (docs/matching.md).
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "doppel/model.h"

namespace doppel {

// From the oriented luminance grid PDQ hashed (width x height), the picture
// as area averages (smooth_width x smooth_height) and the 4 x 4 chroma grid.
Signature ComputeSignature(const float* luma, int width, int height, const float* smooth,
                           int smooth_width, int smooth_height,
                           const std::array<float, 32>& chroma);

// How consistently two pictures' colours point the same way, cell by cell:
// the magnitude-weighted mean cosine between their chroma vectors (1 = same
// hues; a recoloured edition goes towards -1). nullopt when either picture
// is (nearly) grey, where hue says nothing. `d` aligns b's grid to a's.
std::optional<double> HueAgreement(const Signature& a, const Signature& b, Dihedral d);

// How alike two thumbnails are once brightness and contrast are normalised:
// the Pearson correlation of their pixels, -1..1 (1 = same picture up to a
// brightness/contrast/gamma-free change). Flat thumbnails correlate 0.
double ThumbCorrelation(const Thumb& a, const Thumb& b);

// The best geometric alignment of two thumbnails: one picture as a cropped,
// shifted, slightly rotated part of the other. `correlation` is the Pearson
// correlation of the overlapping pixels once aligned.
struct ThumbAlignment {
  double correlation = -1;
  double scale = 1;         // side of the smaller picture / side of the larger one
  double dx = 0, dy = 0;    // centre offset, in fractions of the larger picture
  double angle = 0;         // degrees
  bool a_inside_b = false;  // which picture is the crop of the other
};
// Searches scales 0.80..1.0, shifts and rotations of up to 3 degrees, coarse
// to fine. A few milliseconds: for candidate pairs only.
ThumbAlignment AlignThumbs(const Thumb& a, const Thumb& b);

// The thumbnail as it would look after the dihedral transform d (the same
// transform whose PDQ variant PdqResult::dihedral[d] is).
Thumb TransformThumb(const Thumb& t, Dihedral d);

}  // namespace doppel

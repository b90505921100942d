// Geometric verification of a candidate pair: local features (ORB) on small
// grey renditions, a similarity transform (rotation, uniform scale,
// translation) fitted with RANSAC, then the pictures compared tile by tile
// once aligned. It finds what a global hash misses (crops, small rotations,
// captions, borders, rescans) and tells a crop (one frame inside the other)
// from a second shot (frames shifted). docs/matching.md has the rules.
#pragma once

#include <memory>
#include <string>

#include "doppel/rendition.h"
#include "doppel/status.h"

namespace doppel {

// Keypoints, descriptors and the grey picture of one rendition. Opaque;
// immutable once built, so it can be shared between threads.
struct LocalFeatures;

// Long side of the renditions features are computed on.
inline constexpr int kGeometrySide = 512;

// Builds features from a grey (1 band) or sRGB rendition. Fails only on an
// invalid rendition; a featureless picture gives an empty set (never aligns).
Result<std::shared_ptr<const LocalFeatures>> ExtractFeatures(const Rendition& r);
int KeypointCount(const LocalFeatures& f);

struct GeometricCheck {
  bool aligned = false;  // a consistent similarity transform was found
  int keypoints_a = 0, keypoints_b = 0;
  int matches = 0;            // descriptor matches passing the ratio test
  int inliers = 0;            // matches consistent with the transform
  double scale = 1;           // B's side length in A's frame / B's own (normalised to A's size)
  double angle = 0;           // degrees, B turned by this to land on A
  double b_inside_a = 0;      // share of B's frame that lands inside A's frame (0..1)
  double a_inside_b = 0;      // and the other way round
  double area_ratio = 0;      // area of the smaller frame / area of the larger, once aligned
  double spread = 0;          // share of the overlap's 4x4 cells holding an inlier
  int tiles = 0;              // tiles of the overlap compared
  double tile_agreement = 0;  // share of them whose contents agree
};

// Thresholds (docs/matching.md explains each).
struct GeometryOptions {
  int min_inliers = 20;
  double min_inlier_share = 0.25;  // inliers / ratio-test matches
  double min_spread = 0.25;
  int min_tiles = 12;
  double min_tile_agreement = 0.85;
  double containment = 0.98;          // a frame this much inside the other: a crop
  double min_area_ratio = 0.45;       // a smaller detail is another picture
  int contradiction_keypoints = 150;  // both sides need this many to overrule a hash
  double contradiction_agreement = 0.75;
};

// Containment and area are measured between the pictures' content frames
// (uniform borders such as a letterbox or a scanner's margin trimmed, found
// on the renditions to the pixel), so a picture shifted onto another copy's
// added border is not "inside" it.
GeometricCheck VerifyGeometry(const LocalFeatures& a, const LocalFeatures& b,
                              const GeometryOptions& options = {});

// True when the check shows one picture is the other, cropped, turned,
// bordered, captioned or rescanned (all thresholds met, frames contained).
bool IsGeometricCopy(const GeometricCheck& g, const GeometryOptions& options = {});
// True when the pictures align and agree but neither frame holds the other
// (a second shot, a shifted window) or one is a small detail: for review.
bool IsGeometricNeighbour(const GeometricCheck& g, const GeometryOptions& options = {});

// True when the check shows clearly that two pictures with plenty of detail
// are not the same: once aligned, most tiles disagree. Used to overrule a hash agreement between
// look-alikes (pages of one form, the same caption on different pages).
bool ContradictsCopy(const GeometricCheck& g, const GeometryOptions& options = {});

// One line for people: "A is B cropped to 90% of its width, turned 2.0
// degrees; 143 features agree; 97% of tiles agree".
std::string DescribeGeometry(const GeometricCheck& g);

}  // namespace doppel

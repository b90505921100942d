// Geometric verification with OpenCV (the adapter: every cv::Exception is
// caught here). ORB keypoints on 512-pixel grey renditions, ratio-tested
// Hamming matches, a RANSAC similarity transform, then a tile-by-tile
// comparison of the aligned pictures.
#include "doppel/geometry.h"

#include <opencv2/calib3d.hpp>
#include <opencv2/core.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <mutex>

namespace doppel {

struct LocalFeatures {
  std::vector<cv::Point2f> points;
  cv::Mat descriptors;  // CV_8U, 32 bytes per keypoint
  cv::Mat grey;         // CV_8U, the rendition
  cv::Rect2d content;   // inside uniform borders, in pixels of `grey`
};

namespace {

void InitOpenCv() {
  static std::once_flag once;
  // doppel parallelises across pairs; OpenCV's own threads would only compete.
  std::call_once(once, [] { cv::setNumThreads(1); });
}

// Share of a w x h frame's points that the affine map m sends inside a
// W x H frame (sampled on a 32 x 32 grid of cell centres).
// The picture inside uniform borders: from each side, rows (columns) whose
// every pixel is within a small tolerance of the outermost row's mean tone.
// Borders thinner than 2 pixels are resampling edges, not borders.
cv::Rect2d ContentRect(const cv::Mat& grey) {
  cv::Mat b;
  cv::blur(grey, b, cv::Size(3, 3));
  const int w = b.cols, h = b.rows;
  auto line_uniform = [&](bool row, int k, double ref) {
    const int n = row ? w : h;
    for (int t = 0; t < n; ++t) {
      const int v = row ? b.at<uint8_t>(k, t) : b.at<uint8_t>(t, k);
      if (std::abs(v - ref) > 14) return false;
    }
    return true;
  };
  auto depth = [&](bool row, int first, int step, int limit) {
    cv::Scalar mean, sd;
    cv::meanStdDev(row ? b.row(first) : b.col(first), mean, sd);
    if (sd[0] > 6) return 0;
    int d = 0;
    for (int k = first; d < limit && line_uniform(row, k, mean[0]); k += step) ++d;
    return d >= 2 ? d : 0;
  };
  const int top = depth(true, 0, 1, h * 45 / 100), bottom = depth(true, h - 1, -1, h * 45 / 100);
  const int left = depth(false, 0, 1, w * 45 / 100), right = depth(false, w - 1, -1, w * 45 / 100);
  return cv::Rect2d(left, top, std::max(1, w - left - right), std::max(1, h - top - bottom));
}

// Mean tone of the 3 x 3 pixels around (x, y), clamped to the picture.
double ToneAt(const cv::Mat& grey, double x, double y) {
  const int cx = std::clamp(int(x), 1, grey.cols - 2), cy = std::clamp(int(y), 1, grey.rows - 2);
  int sum = 0;
  for (int dy = -1; dy <= 1; ++dy)
    for (int dx = -1; dx <= 1; ++dx) sum += grey.at<uint8_t>(cy + dy, cx + dx);
  return sum / 9.0;
}

// Share of picture `from`'s content frame that the affine map m sends inside
// picture `to` (sampled on a 32 x 32 grid of cell centres). A point counts
// as inside when it lands in `to`'s content frame, or in one of `to`'s
// uniform bands where `from` shows the same tone there: a dark sky or a
// shadow at the edge of a scene is content both pictures share, while a
// picture shifted onto another copy's added border lands on a tone it does
// not have.
double InsideShare(const cv::Mat& m, const LocalFeatures& from, const LocalFeatures& to) {
  constexpr int kN = 32;
  const double tol = 0.5;  // half a pixel: resampling, not content
  const cv::Rect2d& f = from.content;
  const cv::Rect2d& t = to.content;
  const double tw = to.grey.cols, th = to.grey.rows;
  int inside = 0;
  for (int i = 0; i < kN; ++i)
    for (int j = 0; j < kN; ++j) {
      const double x = f.x + (j + 0.5) * f.width / kN, y = f.y + (i + 0.5) * f.height / kN;
      const double u = m.at<double>(0, 0) * x + m.at<double>(0, 1) * y + m.at<double>(0, 2);
      const double v = m.at<double>(1, 0) * x + m.at<double>(1, 1) * y + m.at<double>(1, 2);
      if (u >= t.x - tol && v >= t.y - tol && u <= t.x + t.width + tol &&
          v <= t.y + t.height + tol) {
        ++inside;
      } else if (u >= 0 && v >= 0 && u <= tw && v <= th &&
                 std::fabs(ToneAt(from.grey, x, y) - ToneAt(to.grey, u, v)) < 12) {
        ++inside;
      }
    }
  return double(inside) / (kN * kN);
}

struct TileStats {
  int compared = 0, agree = 0;
};

// Compares A with B warped into A's frame, tile by tile, at half the
// rendition size after a light blur (noise and resampling are not content).
// B is first brought to A's mean and contrast over the overlap, so a darker
// rescan or a re-graded copy still agrees where its content does.
TileStats CompareTiles(const cv::Mat& a, const cv::Mat& b, const cv::Mat& m) {
  cv::Mat warped, mask;
  cv::warpAffine(b, warped, m, a.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::warpAffine(cv::Mat(b.size(), CV_8U, cv::Scalar(255)), mask, m, a.size(), cv::INTER_NEAREST,
                 cv::BORDER_CONSTANT, cv::Scalar(0));
  const cv::Size half((a.cols + 1) / 2, (a.rows + 1) / 2);
  cv::Mat fa, fb, fm;
  cv::resize(a, fa, half, 0, 0, cv::INTER_AREA);
  cv::resize(warped, fb, half, 0, 0, cv::INTER_AREA);
  cv::resize(mask, fm, half, 0, 0, cv::INTER_NEAREST);
  fa.convertTo(fa, CV_32F);
  fb.convertTo(fb, CV_32F);
  cv::GaussianBlur(fa, fa, cv::Size(3, 3), 0);
  cv::GaussianBlur(fb, fb, cv::Size(3, 3), 0);
  // A tile is compared only if B covers it entirely; erode so that warp
  // edges (blended with the black outside) never count.
  cv::erode(fm, fm, cv::Mat(), cv::Point(-1, -1), 2);
  TileStats t;
  if (cv::countNonZero(fm) < 64) return t;
  cv::Scalar ma, sa, mb, sb;
  cv::meanStdDev(fa, ma, sa, fm);
  cv::meanStdDev(fb, mb, sb, fm);
  if (sb[0] > 1e-3 && sa[0] > 1e-3) fb = (fb - mb[0]) * (sa[0] / sb[0]) + ma[0];
  constexpr int kGrid = 8;
  const int tw = fa.cols / kGrid, th = fa.rows / kGrid;
  if (tw < 4 || th < 4) return t;
  for (int gy = 0; gy < kGrid; ++gy)
    for (int gx = 0; gx < kGrid; ++gx) {
      const cv::Rect r(gx * tw, gy * th, tw, th);
      double lo, hi;
      cv::minMaxLoc(fm(r), &lo, &hi);
      if (lo < 255) continue;  // not wholly inside B
      cv::Scalar ta, da, tb, db;
      cv::meanStdDev(fa(r), ta, da);
      cv::meanStdDev(fb(r), tb, db);
      ++t.compared;
      const double s1 = da[0], s2 = db[0];
      bool agree;
      if (s1 < 6 && s2 < 6) {
        agree = std::fabs(ta[0] - tb[0]) < 16;  // both flat: same tone
      } else if (std::max(s1, s2) > 3 * std::max(1.0, std::min(s1, s2)) && std::max(s1, s2) > 10) {
        agree = false;  // detail on one side only (a caption, an object)
      } else {
        cv::Mat pa = fa(r) - ta[0], pb = fb(r) - tb[0];
        const double ncc = pa.dot(pb) / (std::sqrt(pa.dot(pa) * pb.dot(pb)) + 1e-9);
        agree = ncc >= 0.5 && std::fabs(ta[0] - tb[0]) < 40;
      }
      if (agree) ++t.agree;
    }
  return t;
}

}  // namespace

Result<std::shared_ptr<const LocalFeatures>> ExtractFeatures(const Rendition& r) {
  if (r.width <= 0 || r.height <= 0 || (r.bands != 1 && r.bands != 3) ||
      r.pixels.size() != size_t(r.width) * r.height * r.bands)
    return InvalidArgument("not a valid rendition");
  InitOpenCv();
  auto f = std::make_shared<LocalFeatures>();
  try {
    cv::Mat src(r.height, r.width, r.bands == 1 ? CV_8UC1 : CV_8UC3,
                const_cast<uint8_t*>(r.pixels.data()));
    if (r.bands == 3)
      cv::cvtColor(src, f->grey, cv::COLOR_RGB2GRAY);
    else
      f->grey = src.clone();
    // Scale to the working size whatever the caller rendered, so thresholds
    // in pixels mean the same everywhere.
    const int longest = std::max(f->grey.cols, f->grey.rows);
    if (longest > kGeometrySide) {
      const double s = double(kGeometrySide) / longest;
      cv::resize(f->grey, f->grey, cv::Size(), s, s, cv::INTER_AREA);
    }
    f->content = ContentRect(f->grey);
    if (std::min(f->grey.cols, f->grey.rows) < 48)
      return std::shared_ptr<const LocalFeatures>(std::move(f));
    auto orb = cv::ORB::create(
        /*nfeatures=*/1500, /*scaleFactor=*/1.2f, /*nlevels=*/8, /*edgeThreshold=*/19,
        /*firstLevel=*/0, /*WTA_K=*/2, cv::ORB::HARRIS_SCORE, /*patchSize=*/19,
        /*fastThreshold=*/7);
    // Local contrast equalised for detection only: smooth pictures (skies,
    // clouds, sand) then still yield keypoints; the tiles compare the rendition.
    cv::Mat detect;
    cv::createCLAHE(/*clipLimit=*/3.0, cv::Size(8, 8))->apply(f->grey, detect);
    std::vector<cv::KeyPoint> kps;
    orb->detectAndCompute(detect, cv::noArray(), kps, f->descriptors);
    f->points.reserve(kps.size());
    for (const auto& k : kps) f->points.push_back(k.pt);
  } catch (const cv::Exception& e) {
    return Internal(std::string("local features: ") + e.what());
  }
  return std::shared_ptr<const LocalFeatures>(std::move(f));
}

int KeypointCount(const LocalFeatures& f) { return int(f.points.size()); }

GeometricCheck VerifyGeometry(const LocalFeatures& a, const LocalFeatures& b,
                              const GeometryOptions& o) {
  GeometricCheck g;
  g.keypoints_a = int(a.points.size());
  g.keypoints_b = int(b.points.size());
  if (g.keypoints_a < o.min_inliers || g.keypoints_b < o.min_inliers) return g;
  try {
    cv::BFMatcher matcher(cv::NORM_HAMMING);
    std::vector<std::vector<cv::DMatch>> knn;
    matcher.knnMatch(b.descriptors, a.descriptors, knn, 2);
    std::vector<cv::Point2f> pb, pa;
    for (const auto& m : knn)
      if (m.size() == 2 && m[0].distance < 0.8f * m[1].distance) {
        pb.push_back(b.points[m[0].queryIdx]);
        pa.push_back(a.points[m[0].trainIdx]);
      }
    g.matches = int(pb.size());
    if (g.matches < o.min_inliers) return g;
    std::vector<uchar> inlier;
    cv::setRNGSeed(1);  // RANSAC draws: the same verdict on every run
    cv::Mat m = cv::estimateAffinePartial2D(pb, pa, inlier, cv::RANSAC, 3.0, 4000, 0.999, 10);
    if (m.empty()) return g;
    g.inliers = int(std::count(inlier.begin(), inlier.end(), uchar(1)));
    const double c = m.at<double>(0, 0), s = m.at<double>(1, 0);
    const double scale_px = std::sqrt(c * c + s * s);
    if (scale_px < 1e-3) return g;
    g.angle = std::atan2(s, c) * 180 / M_PI;
    const double wa = a.grey.cols, ha = a.grey.rows, wb = b.grey.cols, hb = b.grey.rows;
    // Normalised scale: how wide B is in A's frame, relative to A's width,
    // over how wide B is relative to itself (1 = same framing).
    g.scale = scale_px * std::max(wb, hb) / std::max(wa, ha);
    cv::Mat inv;
    cv::invertAffineTransform(m, inv);
    const cv::Rect2d& fa = a.content;
    const cv::Rect2d& fb = b.content;
    g.b_inside_a = InsideShare(m, b, a);
    g.a_inside_b = InsideShare(inv, a, b);
    const double area_b_in_a = scale_px * scale_px * fb.area(), area_a = fa.area();
    g.area_ratio = std::min(area_b_in_a, area_a) / std::max(area_b_in_a, area_a);
    // Spread: the inliers must cover the overlap, not one logo or header.
    {
      constexpr int kCells = 4;
      int covered = 0, hit = 0;
      bool has[kCells][kCells] = {};
      for (size_t k = 0; k < pa.size(); ++k)
        if (inlier[k]) {
          const int cx = std::clamp(int(pa[k].x / wa * kCells), 0, kCells - 1);
          const int cy = std::clamp(int(pa[k].y / ha * kCells), 0, kCells - 1);
          has[cy][cx] = true;
        }
      for (int cy = 0; cy < kCells; ++cy)
        for (int cx = 0; cx < kCells; ++cx) {
          // Is the cell's centre covered by B?
          const double x = (cx + 0.5) * wa / kCells, y = (cy + 0.5) * ha / kCells;
          const double u =
              inv.at<double>(0, 0) * x + inv.at<double>(0, 1) * y + inv.at<double>(0, 2);
          const double v =
              inv.at<double>(1, 0) * x + inv.at<double>(1, 1) * y + inv.at<double>(1, 2);
          if (u < 0 || v < 0 || u > wb || v > hb) continue;
          ++covered;
          if (has[cy][cx]) ++hit;
        }
      g.spread = covered ? double(hit) / covered : 0;
    }
    g.aligned = g.inliers >= o.min_inliers && g.inliers >= o.min_inlier_share * g.matches;
    if (!g.aligned) return g;
    const TileStats t = CompareTiles(a.grey, b.grey, m);
    g.tiles = t.compared;
    g.tile_agreement = t.compared ? double(t.agree) / t.compared : 0;
  } catch (const cv::Exception&) {
    g.aligned = false;
  }
  return g;
}

namespace {
bool Agrees(const GeometricCheck& g, const GeometryOptions& o) {
  return g.aligned && g.spread >= o.min_spread && g.tiles >= o.min_tiles &&
         g.tile_agreement >= o.min_tile_agreement;
}
}  // namespace

bool IsGeometricCopy(const GeometricCheck& g, const GeometryOptions& o) {
  return Agrees(g, o) && std::max(g.b_inside_a, g.a_inside_b) >= o.containment &&
         g.area_ratio >= o.min_area_ratio;
}

bool ContradictsCopy(const GeometricCheck& g, const GeometryOptions& o) {
  if (g.keypoints_a < o.contradiction_keypoints || g.keypoints_b < o.contradiction_keypoints)
    return false;
  // Only an alignment whose tiles then disagree is proof: failing to align
  // may be noise or blur defeating the detector, not a different picture.
  return g.aligned && g.tiles >= o.min_tiles && g.tile_agreement < o.contradiction_agreement;
}

bool IsGeometricNeighbour(const GeometricCheck& g, const GeometryOptions& o) {
  return Agrees(g, o) && !IsGeometricCopy(g, o);
}

std::string DescribeGeometry(const GeometricCheck& g) {
  char buf[320];
  if (!g.aligned) {
    std::snprintf(buf, sizeof buf,
                  "local features do not align (%d and %d keypoints, %d matches, %d consistent)",
                  g.keypoints_a, g.keypoints_b, g.matches, g.inliers);
    return buf;
  }
  const bool b_in = g.b_inside_a >= g.a_inside_b;
  std::snprintf(
      buf, sizeof buf,
      "%d of %d matched features agree on one transform (scale %.2f, turned %.1f degrees); %s lies "
      "%.0f%% inside %s, covering %.0f%% of its area; inliers spread over %.0f%% of the overlap; "
      "%.0f%% of %d aligned tiles agree",
      g.inliers, g.matches, g.scale, g.angle, b_in ? "B" : "A",
      100 * std::max(g.b_inside_a, g.a_inside_b), b_in ? "A" : "B", 100 * g.area_ratio,
      100 * g.spread, 100 * g.tile_agreement, g.tiles);
  return buf;
}

}  // namespace doppel

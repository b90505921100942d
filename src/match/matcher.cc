// Pair verdicts, explanations and clusters (docs/matching.md).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>
#include <unordered_map>

#include "doppel/local_words.h"
#include "doppel/match.h"
#include "doppel/signature.h"

namespace doppel {
namespace {

std::string Fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

// Displayed width / height (EXIF orientation applied).
double Aspect(const ImageInfo& i) {
  if (i.width <= 0 || i.height <= 0) return 1;
  const double a = double(i.width) / i.height;
  return i.orientation >= 5 ? 1 / a : a;
}

bool SwapsAxes(Dihedral d) {
  return d == Dihedral::kRotate90 || d == Dihedral::kRotate270 || d == Dihedral::kFlipPlus1 ||
         d == Dihedral::kFlipMinus1;
}

}  // namespace

std::optional<double> CaptureTimeSeconds(const std::string& t) {
  if (t.size() < 19) return std::nullopt;
  std::tm tm{};
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  double s = double(timegm(&tm));
  if (t.size() > 20 && t[19] == '.') s += std::atof(t.c_str() + 19);
  return s;
}

namespace {

double GpsMetres(const ImageMetadata& a, const ImageMetadata& b) {
  constexpr double kR = 6371000, kDeg = M_PI / 180;
  const double p1 = *a.gps_latitude * kDeg, p2 = *b.gps_latitude * kDeg;
  const double dp = p2 - p1, dl = (*b.gps_longitude - *a.gps_longitude) * kDeg;
  const double h = std::sin(dp / 2) * std::sin(dp / 2) +
                   std::cos(p1) * std::cos(p2) * std::sin(dl / 2) * std::sin(dl / 2);
  return 2 * kR * std::asin(std::min(1.0, std::sqrt(h)));
}

// Seconds between two exposures by the same camera, when both times are
// known, differ, and lie within the burst window: two shots of one scene,
// never one picture. Beyond the window a differing date is more likely an
// edited tag than another exposure, and proves nothing.
std::optional<double> ExposureGap(const MatchInput& a, const MatchInput& b, const MatchOptions& o) {
  const auto& ma = a.metadata;
  const auto& mb = b.metadata;
  if (ma.model.empty() || ma.make != mb.make || ma.model != mb.model) return std::nullopt;
  auto ta = CaptureTimeSeconds(ma.capture_time), tb = CaptureTimeSeconds(mb.capture_time);
  if (!ta || !tb) return std::nullopt;
  const double gap = std::fabs(*ta - *tb);
  if (gap <= 0 || gap > o.similar_seconds) return std::nullopt;
  return gap;
}

// The best visual alignment of two pictures: which hashes and thumbnails to
// compare (whole pictures in any of the eight orientations, or the pictures
// inside added borders).
struct Alignment {
  int distance = 257;
  std::string transform = "original";
  int quality = 0;
  double correlation = 0;
  double aspect_a = 1, aspect_b = 1;
  std::optional<double> hue;   // HueAgreement, when both pictures have colour
  Thumb thumb_a{}, thumb_b{};  // the thumbnails compared, aligned as above
};

Alignment Align(const MatchInput& a, const MatchInput& b, const MatchOptions& o) {
  const auto& fa = a.fingerprints;
  const auto& fb = b.fingerprints;
  const auto& sa = fa.signature;
  const auto& sb = fb.signature;
  Alignment best;
  const int q = std::min(fa.pdq.quality, fb.pdq.quality);
  for (int k = 0; k < (o.dihedral ? 8 : 1); ++k) {
    // The reference's hash, or the anti-aliased one (resized copies).
    const int d = std::min(HammingDistance(fa.pdq.dihedral[k], fb.pdq.hash),
                           HammingDistance(sa.smooth.dihedral[k], sb.smooth.hash));
    if (d < best.distance) {
      best.distance = d;
      best.transform = DihedralName(Dihedral(k));
      best.quality = q;
      best.thumb_a = TransformThumb(sa.thumb, Dihedral(k));
      best.thumb_b = sb.thumb;
      best.correlation = ThumbCorrelation(best.thumb_a, best.thumb_b);
      best.aspect_a = SwapsAxes(Dihedral(k)) ? 1 / Aspect(a.info) : Aspect(a.info);
      best.aspect_b = Aspect(b.info);
      best.hue = HueAgreement(sa, sb, Dihedral(k));
    }
  }
  auto inner_aspect = [](const MatchInput& m) {
    const auto& s = m.fingerprints.signature;
    const double w = 1 - s.trim_left - s.trim_right, h = 1 - s.trim_top - s.trim_bottom;
    return Aspect(m.info) * (h > 0 ? w / h : 1);
  };
  auto consider = [&](const PdqResult& x, const PdqResult& y, const Thumb& tx, const Thumb& ty,
                      double ax, double ay) {
    const int d = HammingDistance(x.hash, y.hash);
    if (d < best.distance) {
      best.distance = d;
      best.transform = "inside borders";
      best.quality = std::min(x.quality, y.quality);
      best.correlation = ThumbCorrelation(tx, ty);
      best.thumb_a = tx;
      best.thumb_b = ty;
      best.aspect_a = ax;
      best.aspect_b = ay;
      best.hue =
          HueAgreement(a.fingerprints.signature, b.fingerprints.signature, Dihedral::kOriginal);
    }
  };
  if (sa.trimmed)
    consider(*sa.trimmed, fb.pdq, sa.inner_thumb, sb.thumb, inner_aspect(a), Aspect(b.info));
  if (sb.trimmed)
    consider(fa.pdq, *sb.trimmed, sa.thumb, sb.inner_thumb, Aspect(a.info), inner_aspect(b));
  if (sa.trimmed && sb.trimmed)
    consider(*sa.trimmed, *sb.trimmed, sa.inner_thumb, sb.inner_thumb, inner_aspect(a),
             inner_aspect(b));
  return best;
}

std::string AlignmentWords(const Alignment& al) {
  if (al.transform == "original") return "";
  if (al.transform == "inside borders") return " once the added borders are trimmed";
  return " after " + al.transform;
}

}  // namespace

std::optional<Match> Compare(const MatchInput& a, const MatchInput& b, const MatchOptions& o) {
  Match m;
  m.file_a = std::min(a.file_id, b.file_id);
  m.file_b = std::max(a.file_id, b.file_id);
  // Identity first: the same bytes, or the same picture under other metadata.
  const bool same_bytes = a.fingerprints.sha256 == b.fingerprints.sha256;
  if (same_bytes || a.fingerprints.content_hash == b.fingerprints.content_hash) {
    m.kind = same_bytes ? MatchKind::kExact : MatchKind::kMetadata;
    m.correlation = 1;
    m.transform = "original";
    m.reason = same_bytes ? "identical files (same SHA-256)"
                          : "the same picture; only the metadata differs (same content hash)";
    return m;
  }
  const Alignment al = Align(a, b, o);
  m.distance = al.distance;
  m.transform = al.transform;
  m.correlation = al.correlation;
  const std::string dist =
      "PDQ " + std::to_string(al.distance) + " bits apart" + AlignmentWords(al);
  const std::string corr = Fmt("%.2f", al.correlation);
  if (al.distance <= o.threshold) {
    const double shape = std::max(al.aspect_a, al.aspect_b) / std::min(al.aspect_a, al.aspect_b);
    m.kind = MatchKind::kSimilar;
    if (al.quality < o.min_quality) {
      m.reason = dist + ", but the picture is too plain to trust PDQ (quality " +
                 std::to_string(al.quality) + " < " + std::to_string(o.min_quality) +
                 "); a person must confirm";
    } else if (shape > 1.25) {
      m.reason = dist + ", but the shapes differ (aspect " + Fmt("%.2f", al.aspect_a) + " vs " +
                 Fmt("%.2f", al.aspect_b) + "); a person must confirm";
    } else if (al.hue && *al.hue < o.min_hue_agreement) {
      m.reason = dist + " and the shapes agree, but the colours do not (hue agreement " +
                 Fmt("%.2f", *al.hue) + " < " + Fmt("%.2f", o.min_hue_agreement) +
                 "): another edition or grading; a person must confirm";
    } else if (al.correlation < o.min_correlation) {
      m.reason = dist + ", but the thumbnails disagree (correlation " + corr + " < " +
                 Fmt("%.2f", o.min_correlation) + "): look-alikes, not copies";
    } else if (auto gap = ExposureGap(a, b, o)) {
      m.reason = dist + " and the thumbnails agree (correlation " + corr + "), but the camera (" +
                 a.metadata.make + " " + a.metadata.model + ") recorded them " + Fmt("%.1f", *gap) +
                 " s apart: two exposures of one scene; a person must confirm";
    } else {
      m.kind = MatchKind::kNear;
      m.reason = "near copy: " + dist + " (threshold " + std::to_string(o.threshold) +
                 ") and the thumbnails agree (correlation " + corr + ")";
    }
    return m;
  }
  // Crops, small rotations, rescans: one picture contained in the other,
  // found by aligning the thumbnails. At 32 x 32 a crop cannot be told from
  // a second shot a moment later (both are a shifted part of one scene), so
  // this is evidence for review, never an automatic merge (docs/matching.md).
  const bool hues_agree = !al.hue || *al.hue >= o.min_hue_agreement;
  if (al.distance <= o.similar_radius && al.quality >= o.min_quality && hues_agree) {
    const ThumbAlignment g = AlignThumbs(al.thumb_a, al.thumb_b);
    if (g.correlation >= o.min_aligned_correlation) {
      m.kind = MatchKind::kSimilar;
      m.correlation = g.correlation;
      m.transform = al.transform == "original" ? "aligned" : al.transform + ", aligned";
      m.reason =
          "probably a crop or a slightly turned copy: " + std::string(g.a_inside_b ? "A" : "B") +
          " matches " + Fmt("%.0f%%", 100 * g.scale) + " of the other's width" +
          (std::fabs(g.angle) >= 0.5 ? ", turned " + Fmt("%.1f", g.angle) + " degrees" : "") +
          " (aligned thumbnails correlate " + Fmt("%.3f", g.correlation) + "; " + dist +
          "); a person must confirm: a shot taken a moment later looks the same";
      return m;
    }
  }
  if (al.distance <= o.similar_radius && al.correlation >= o.similar_correlation &&
      al.quality >= o.min_quality) {
    m.kind = MatchKind::kSimilar;
    m.reason = "visually close: " + dist + " (more than " + std::to_string(o.threshold) +
               "), thumbnails correlate " + corr +
               "; maybe cropped or edited, a person must confirm";
    return m;
  }
  // Same camera, moments apart: supporting evidence, never enough alone.
  const auto& ma = a.metadata;
  const auto& mb = b.metadata;
  auto ta = CaptureTimeSeconds(ma.capture_time), tb = CaptureTimeSeconds(mb.capture_time);
  if (ta && tb && !ma.model.empty() && ma.make == mb.make && ma.model == mb.model &&
      std::fabs(*ta - *tb) <= o.similar_seconds && al.correlation >= 0.5) {
    m.kind = MatchKind::kSimilar;
    m.reason = "taken " + Fmt("%.0f", std::fabs(*ta - *tb)) + " s apart by the same camera (" +
               ma.make + " " + ma.model + "), thumbnails correlate " + corr + "; " + dist;
    if (ma.gps_latitude && mb.gps_latitude && ma.gps_longitude && mb.gps_longitude)
      m.reason += ", " + Fmt("%.0f", GpsMetres(ma, mb)) + " m apart";
    return m;
  }
  return std::nullopt;
}

bool WantsGeometry(const std::optional<Match>& m, int distance, int shared_words,
                   const MatchOptions& o) {
  if (!m) return distance <= o.similar_radius || shared_words >= o.min_shared_words;
  if (m->kind == MatchKind::kSimilar) return true;
  return m->kind == MatchKind::kNear && m->correlation < o.geometry_confirm_below;
}

Explanation Explain(const MatchInput& a, const MatchInput& b, const MatchOptions& o,
                    const GeometricCheck* geometry) {
  Explanation e;
  auto describe = [](const MatchInput& m) {
    return m.info.format + " " + std::to_string(m.info.width) + "x" +
           std::to_string(m.info.height) + ", " + std::to_string(m.info.bit_depth) + "-bit, " +
           std::to_string(m.file_size) + " bytes" +
           (m.info.orientation > 1 ? ", EXIF orientation " + std::to_string(m.info.orientation)
                                   : "");
  };
  e.lines.push_back("A: " + describe(a));
  e.lines.push_back("B: " + describe(b));
  e.lines.push_back(std::string("SHA-256: ") +
                    (a.fingerprints.sha256 == b.fingerprints.sha256 ? "identical" : "different"));
  e.lines.push_back(
      std::string("content hash (ignores metadata): ") +
      (a.fingerprints.content_hash == b.fingerprints.content_hash ? "identical" : "different"));
  const Alignment al = Align(a, b, o);
  e.lines.push_back(
      "PDQ: " + std::to_string(HammingDistance(a.fingerprints.pdq.hash, b.fingerprints.pdq.hash)) +
      " bits apart as they are; best alignment " + al.transform + ": " +
      std::to_string(al.distance) + " bits (near-copy threshold " + std::to_string(o.threshold) +
      ")");
  e.lines.push_back("PDQ quality: A " + std::to_string(a.fingerprints.pdq.quality) + ", B " +
                    std::to_string(b.fingerprints.pdq.quality) + " (below " +
                    std::to_string(o.min_quality) + " a picture is too plain for PDQ alone)");
  e.lines.push_back("finer check: thumbnail correlation " + Fmt("%.3f", al.correlation) +
                    " (near copies need " + Fmt("%.2f", o.min_correlation) + ")");
  e.lines.push_back("shape: aspect " + Fmt("%.3f", al.aspect_a) + " vs " +
                    Fmt("%.3f", al.aspect_b));
  e.lines.push_back(al.hue ? "colour: hue agreement " + Fmt("%.2f", *al.hue) + " (copies need " +
                                 Fmt("%.2f", o.min_hue_agreement) + ")"
                           : std::string("colour: not compared (at least one picture is grey)"));
  for (const auto* m : {&a, &b}) {
    const auto& s = m->fingerprints.signature;
    if (s.has_borders())
      e.lines.push_back(std::string(m == &a ? "A" : "B") + " has uniform borders: left " +
                        Fmt("%.0f%%", 100 * s.trim_left) + ", top " +
                        Fmt("%.0f%%", 100 * s.trim_top) + ", right " +
                        Fmt("%.0f%%", 100 * s.trim_right) + ", bottom " +
                        Fmt("%.0f%%", 100 * s.trim_bottom));
  }
  const auto& ma = a.metadata;
  const auto& mb = b.metadata;
  if (!ma.capture_time.empty() || !mb.capture_time.empty()) {
    std::string line = "capture time: A " +
                       (ma.capture_time.empty() ? "unknown" : ma.capture_time) + ", B " +
                       (mb.capture_time.empty() ? "unknown" : mb.capture_time);
    auto ta = CaptureTimeSeconds(ma.capture_time), tb = CaptureTimeSeconds(mb.capture_time);
    if (ta && tb) line += " (" + Fmt("%.0f", std::fabs(*ta - *tb)) + " s apart)";
    e.lines.push_back(line);
  }
  if (!ma.model.empty() || !mb.model.empty())
    e.lines.push_back("camera: A " + (ma.make + " " + ma.model) + ", B " +
                      (mb.make + " " + mb.model));
  if (ma.gps_latitude && mb.gps_latitude && ma.gps_longitude && mb.gps_longitude)
    e.lines.push_back("GPS: " + Fmt("%.0f", GpsMetres(ma, mb)) + " m apart");
  const int shared = SharedLocalWords(a.fingerprints.local_words, b.fingerprints.local_words);
  e.lines.push_back("local words: " + std::to_string(shared) + " in common (A " +
                    std::to_string(a.fingerprints.local_words.size()) + ", B " +
                    std::to_string(b.fingerprints.local_words.size()) + "; the check needs " +
                    std::to_string(o.min_shared_words) + " when the hashes are far apart)");
  e.match = Compare(a, b, o);
  if (geometry) {
    if (WantsGeometry(e.match, al.distance, shared, o)) {
      e.lines.push_back("local features: " + DescribeGeometry(*geometry));
      e.match = CompareGeometric(a, b, e.match, *geometry, o);
    } else {
      e.lines.push_back("local features: not consulted (the hashes decide this pair)");
    }
  }
  if (!e.match) {
    e.verdict = "not duplicates: PDQ " + std::to_string(al.distance) + " bits apart (threshold " +
                std::to_string(o.threshold) + "), thumbnail correlation " +
                Fmt("%.2f", al.correlation) + ", no supporting metadata";
  } else {
    e.verdict = std::string(MatchKindName(e.match->kind)) +
                (IsAutomatic(e.match->kind) ? " (duplicates): "
                                            : " (for review, never merged automatically): ") +
                e.match->reason;
  }
  return e;
}

std::optional<Match> CompareGeometric(const MatchInput& a, const MatchInput& b,
                                      const std::optional<Match>& prior, const GeometricCheck& g,
                                      const MatchOptions& o) {
  if (prior && (prior->kind == MatchKind::kExact || prior->kind == MatchKind::kMetadata))
    return prior;
  if (prior && prior->kind == MatchKind::kNear) {
    // Local features see only the pictures as they are (turned, not
    // mirrored): they may overrule a hash agreement of untransformed pictures.
    if ((prior->transform == "original" || prior->transform == "inside borders") &&
        ContradictsCopy(g, o.geometry)) {
      Match m = *prior;
      m.kind = MatchKind::kSimilar;
      m.reason = "PDQ " + std::to_string(prior->distance) +
                 " bits apart and thumbnails correlate " + Fmt("%.2f", prior->correlation) +
                 ", but the details disagree (" + DescribeGeometry(g) +
                 "): look-alikes such as pages of one form; a person must confirm";
      return m;
    }
    return prior;
  }
  const bool copy = IsGeometricCopy(g, o.geometry), neighbour = IsGeometricNeighbour(g, o.geometry);
  if (!copy && !neighbour) return prior;
  Match m;
  m.file_a = std::min(a.file_id, b.file_id);
  m.file_b = std::max(a.file_id, b.file_id);
  m.distance = prior ? prior->distance
                     : std::min(HammingDistance(a.fingerprints.pdq.hash, b.fingerprints.pdq.hash),
                                HammingDistance(a.fingerprints.signature.smooth.hash,
                                                b.fingerprints.signature.smooth.hash));
  m.correlation = g.tile_agreement;
  // Which of the two was cropped, in the pair's stored order (A = lower id).
  const bool swapped = a.file_id > b.file_id;
  const bool b_inside = g.b_inside_a >= g.a_inside_b;
  const char* inner = (b_inside != swapped) ? "B" : "A";
  std::string t;
  if (g.area_ratio < 0.97)
    t = std::string(inner) + " cropped to " + Fmt("%.0f%%", 100 * g.area_ratio) + " of the area";
  if (std::fabs(g.angle) >= 0.3)
    t += (t.empty() ? "" : ", ") + std::string("turned ") + Fmt("%.1f", std::fabs(g.angle)) +
         " degrees";
  m.transform = t.empty() ? "aligned" : t;
  const std::string evidence =
      DescribeGeometry(g) + "; PDQ " + std::to_string(m.distance) + " bits";
  const auto hue =
      HueAgreement(a.fingerprints.signature, b.fingerprints.signature, Dihedral::kOriginal);
  if (copy && hue && *hue < o.min_hue_agreement) {
    m.kind = MatchKind::kSimilar;
    m.reason = "the pictures align (" + evidence + ") but the colours do not (hue agreement " +
               Fmt("%.2f", *hue) + "): another edition or grading; a person must confirm";
  } else if (auto gap = copy ? ExposureGap(a, b, o) : std::nullopt) {
    m.kind = MatchKind::kSimilar;
    m.reason = "the pictures align (" + evidence + "), but the camera recorded them " +
               Fmt("%.1f", *gap) + " s apart: two exposures of one scene; a person must confirm";
  } else if (copy) {
    m.kind = MatchKind::kNear;
    m.reason = "near copy, verified geometrically: " + evidence;
  } else {
    m.kind = MatchKind::kSimilar;
    m.reason = std::string(g.area_ratio < o.geometry.min_area_ratio
                               ? "one is a detail of the other"
                               : "the same scene, framed differently (a second shot?)") +
               ": " + evidence + "; a person must confirm";
  }
  return m;
}

bool RanksBefore(const MatchInput& a, const MatchInput& b) {
  if (a.source_priority != b.source_priority) return a.source_priority > b.source_priority;
  const int64_t pa = int64_t(a.info.width) * a.info.height,
                pb = int64_t(b.info.width) * b.info.height;
  if (pa != pb) return pa > pb;
  if (a.info.bit_depth != b.info.bit_depth) return a.info.bit_depth > b.info.bit_depth;
  auto lossless = [](const std::string& f) { return f == "png" || f == "tiff"; };
  if (lossless(a.info.format) != lossless(b.info.format)) return lossless(a.info.format);
  if (a.file_size != b.file_size) return a.file_size > b.file_size;
  const std::string& ca = a.metadata.capture_time;
  const std::string& cb = b.metadata.capture_time;
  if (ca.empty() != cb.empty()) return !ca.empty();
  if (ca != cb) return ca < cb;
  return a.file_id < b.file_id;
}

std::vector<Cluster> BuildClusters(const std::vector<MatchInput>& files,
                                   const std::vector<Match>& matches) {
  std::unordered_map<int64_t, const MatchInput*> by_id;
  for (const auto& f : files) by_id[f.file_id] = &f;
  std::unordered_map<int64_t, std::vector<const Match*>> adj;
  for (const auto& m : matches) {
    if (!IsAutomatic(m.kind) || !by_id.count(m.file_a) || !by_id.count(m.file_b)) continue;
    adj[m.file_a].push_back(&m);
    adj[m.file_b].push_back(&m);
  }
  std::vector<const MatchInput*> order;
  order.reserve(adj.size());
  for (const auto& [id, _] : adj) order.push_back(by_id[id]);
  std::sort(order.begin(), order.end(),
            [](const MatchInput* x, const MatchInput* y) { return RanksBefore(*x, *y); });
  std::set<int64_t> assigned;
  std::vector<Cluster> out;
  for (const MatchInput* master : order) {
    if (assigned.count(master->file_id)) continue;
    Cluster c;
    c.master_file_id = master->file_id;
    c.members.push_back({master->file_id, true, MatchKind::kExact, 0});
    std::vector<const Match*> links = adj[master->file_id];
    std::sort(links.begin(), links.end(), [&](const Match* x, const Match* y) {
      const int64_t ox = x->file_a == master->file_id ? x->file_b : x->file_a;
      const int64_t oy = y->file_a == master->file_id ? y->file_b : y->file_a;
      return RanksBefore(*by_id[ox], *by_id[oy]);
    });
    for (const Match* m : links) {
      const int64_t other = m->file_a == master->file_id ? m->file_b : m->file_a;
      if (assigned.count(other)) continue;
      c.members.push_back({other, false, m->kind, m->distance});
    }
    if (c.members.size() < 2) continue;  // every copy of it already sits with a better master
    for (const auto& mem : c.members) assigned.insert(mem.file_id);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace doppel

// doppel's shared nouns: the catalogued image (its fingerprints, what its
// header says, its metadata), the relations the matcher finds between two
// images and the clusters it groups them into. Plain values and the names
// of their vocabularies (src/model/model.cc), so the catalogue, the matcher,
// the scan and the front ends can all speak of them without depending on
// each other (docs/catalogue.md, docs/matching.md). scripts/check-includes
// keeps this header free of the components.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "doppel/digest.h"
#include "doppel/pdq.h"

namespace doppel {

// Where the metadata-insensitive content hash came from (docs/fingerprints.md).
enum class ContentHashKind : uint8_t {
  kJpegSegments = 1,  // JPEG: every segment but APPn and COM, up to EOI
  kPngChunks = 2,     // PNG: critical chunks (IHDR, PLTE, IDAT, IEND) and tRNS
  kPixels = 3,        // other formats: the decoded first page's pixels
};
const char* ContentHashKindName(ContentHashKind k);

// --- The matcher's finer look at a picture (docs/matching.md) ---

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

using Thumb = std::array<uint8_t, kThumbSide * kThumbSide>;

// --- One catalogued image ---

// What a file's header and decoder say about it.
struct ImageInfo {
  std::string format;  // "jpeg", "png", "tiff", "webp", "gif", "heif", "jxl"
  int width = 0;       // stored pixel width (before EXIF orientation)
  int height = 0;
  int bands = 0;            // channels including alpha
  int bit_depth = 0;        // bits per channel: 8, 16, 32
  int pages = 1;            // multi-page files: page count (only page 1 is hashed)
  int orientation = 1;      // EXIF orientation 1..8, applied before hashing
  bool has_alpha = false;   // composited over white before hashing
  std::string colourspace;  // "srgb", "b-w", "cmyk", "lab", "rgb16", "grey16", ...
};

// Metadata that later decides which copy is authoritative. Absent fields are
// empty/nullopt. Text is UTF-8 as exiv2 reports it.
struct ImageMetadata {
  std::string capture_time;         // ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fff][+hh:mm]"
  std::string capture_time_source;  // the tag it came from, e.g. "Exif.Photo.DateTimeOriginal"
  std::string make;
  std::string model;
  std::string artist;
  std::string copyright;
  std::optional<double> gps_latitude;   // degrees, + north
  std::optional<double> gps_longitude;  // degrees, + east
  std::optional<double> gps_altitude;   // metres
  std::string title;
  std::vector<std::string> keywords;  // de-duplicated, in file order
  std::vector<std::string> warnings;  // non-fatal problems reading metadata
};

struct Fingerprints {
  Digest sha256{};        // of the file's bytes
  Digest content_hash{};  // ignores metadata; see ContentHashKind
  ContentHashKind content_kind = ContentHashKind::kPixels;
  PdqResult pdq;  // of the oriented, flattened sRGB picture
  int pdq_pipeline = kPdqPipelineVersion;
  Signature signature;  // thumbnail and borders, for the matcher's finer check
  // Local words (doppel/local_words.h): sorted, without repeats; the
  // candidate stage that finds crops, turned and overlaid copies.
  std::vector<uint32_t> local_words;
};

struct ImageRecord {
  Fingerprints fingerprints;
  ImageInfo info;
  ImageMetadata metadata;
  int64_t file_size = 0;
  int64_t mtime_ns = 0;
};

// --- Relations and clusters (docs/matching.md) ---

enum class MatchKind : uint8_t {
  kExact = 0,     // same SHA-256: the same file
  kMetadata = 1,  // same content hash: same picture, other metadata
  kNear = 2,      // PDQ within the threshold and the finer check agrees
  kSimilar = 3,   // for review only, never merged automatically
};
const char* MatchKindName(MatchKind k);  // "exact", "metadata", "near", "similar"
std::optional<MatchKind> ParseMatchKind(std::string_view s);
inline bool IsAutomatic(MatchKind k) { return k != MatchKind::kSimilar; }

// What the matcher knows of one catalogued image.
struct MatchInput {
  int64_t file_id = 0;
  std::string source;  // name
  std::string path;    // relative to the source root, raw bytes
  int source_priority = 0;
  Fingerprints fingerprints;  // hashes, PDQ with variants, signature
  ImageInfo info;
  ImageMetadata metadata;
  int64_t file_size = 0;
  bool already_matched = false;  // compared by an earlier `doppel match`
};

// The matcher's view of a file analysed outside the catalogue (an upload,
// `doppel explain`, `doppel calibrate`): no source, no path.
inline MatchInput MatchInputFrom(const ImageRecord& r, int64_t file_id = 0) {
  MatchInput m;
  m.file_id = file_id;
  m.fingerprints = r.fingerprints;
  m.info = r.info;
  m.metadata = r.metadata;
  m.file_size = r.file_size;
  return m;
}

// One relation between two files, with its evidence.
struct Match {
  int64_t file_a = 0, file_b = 0;  // file_a < file_b
  MatchKind kind = MatchKind::kSimilar;
  int distance = 0;        // PDQ bits between the best-aligned hashes
  std::string transform;   // "original", "rotate90", ..., "inside borders"
  double correlation = 0;  // the finer check: thumbnail correlation, -1..1
  std::string reason;      // in plain words
};

struct ClusterMember {
  int64_t file_id = 0;
  bool master = false;
  MatchKind relation = MatchKind::kExact;  // to the master (ignored for the master)
  int distance = 0;
};
struct Cluster {
  int64_t id = 0;
  int64_t master_file_id = 0;
  std::vector<ClusterMember> members;  // master first
};

}  // namespace doppel

// Fingerprints and metadata of one image file: what a scan stores in the
// catalogue and `doppel hash` prints.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "doppel/pdq.h"
#include "doppel/signature.h"
#include "doppel/status.h"

namespace doppel {

using Digest = std::array<uint8_t, 32>;  // a SHA-256 value
std::string DigestHex(const Digest& d);
std::optional<Digest> DigestFromHex(const std::string& hex);

// Where the metadata-insensitive content hash came from (docs/fingerprints.md).
enum class ContentHashKind : uint8_t {
  kJpegSegments = 1,  // JPEG: every segment but APPn and COM, up to EOI
  kPngChunks = 2,     // PNG: critical chunks (IHDR, PLTE, IDAT, IEND) and tRNS
  kPixels = 3,        // other formats: the decoded first page's pixels
};
const char* ContentHashKindName(ContentHashKind k);

// What a file's header and decoder say about it.
struct ImageInfo {
  std::string format;       // "jpeg", "png", "tiff", "webp", "gif", "heif", "jxl"
  int width = 0;            // stored pixel width (before EXIF orientation)
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
  std::vector<std::string> keywords;    // de-duplicated, in file order
  std::vector<std::string> warnings;    // non-fatal problems reading metadata
};

struct Fingerprints {
  Digest sha256{};        // of the file's bytes
  Digest content_hash{};  // ignores metadata; see ContentHashKind
  ContentHashKind content_kind = ContentHashKind::kPixels;
  PdqResult pdq;          // of the oriented, flattened sRGB picture
  int pdq_pipeline = kPdqPipelineVersion;
  Signature signature;    // thumbnail and borders, for the matcher's finer check
};

struct ImageRecord {
  Fingerprints fingerprints;
  ImageInfo info;
  ImageMetadata metadata;
  int64_t file_size = 0;
  int64_t mtime_ns = 0;
};

// Per decode: with two decodes at once (the default --jobs on two cores, or
// two gate requests) a process stays under 512 MB.
constexpr int64_t kDefaultMaxDecodeBytes = 192ll << 20;

struct AnalyseOptions {
  // Refuse images with more pixels (width*height of page 1) than this before
  // decoding anything: decompression bombs get kTooLarge.
  int64_t max_pixels = 1'000'000'000;
  // Refuse images whose decoder would hold more memory than this at once,
  // estimated from the header before decoding (progressive JPEG's coefficient
  // buffer, whole-page WebP/HEIF/JPEG XL/GIF/interlaced PNG, huge TIFF
  // strips): kTooLarge. Sequential JPEG, PNG and TIFF stream in strips and
  // stay far below it. 0 = no limit. docs/fingerprints.md, "Decoding cost".
  int64_t max_decode_bytes = kDefaultMaxDecodeBytes;
  // Files up to this size are read once into memory and hashed, parsed and
  // decoded from there; larger ones are streamed (read twice, never held).
  int64_t max_buffered_bytes = 64ll << 20;
  // Read EXIF/XMP/IPTC with exiv2.
  bool read_metadata = true;
  // Checked between stages; when it returns true the analysis stops with kCancelled.
  std::function<bool()> cancelled;
  // Fault injection for tests: called with the path after the file's bytes
  // were read and before the final check that the file did not change.
  std::function<void(const std::string&)> test_after_read;
};

// Must be called once before any other function here, from one thread
// (initialises libvips and exiv2, mutes their console output). Idempotent.
Status InitImaging();

// Reads, fingerprints and describes one image file. On failure the Status says
// what is wrong with the file (kCorruption, kUnsupported, kTooLarge, kIOError,
// kChanged ...); the message names no path: callers prefix it. Thread-safe.
Result<ImageRecord> AnalyseFile(const std::string& path, const AnalyseOptions& options);

// Same for bytes already in memory (uploads). mtime_ns is left 0.
Result<ImageRecord> AnalyseBuffer(const uint8_t* data, size_t size, const AnalyseOptions& options);

}  // namespace doppel

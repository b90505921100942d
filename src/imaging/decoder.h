// The libvips adapter: decodes page 1 of an image at reduced size where the
// format allows (JPEG shrink-on-load), streams it top to bottom in strips, and
// produces the luminance image PDQ hashes: the reference's 512x512
// nearest-neighbour squash of the flattened sRGB picture, EXIF orientation
// applied. Never holds the full-size picture in memory for JPEG, PNG and
// strip/tile TIFF; other formats' memory is bounded by the pixel limit.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "doppel/fingerprint.h"
#include "doppel/status.h"

namespace doppel {

struct DecodeInput {
  // Either bytes in memory (data/size) or a file path.
  const uint8_t* data = nullptr;
  size_t size = 0;
  std::string path;
  int64_t max_pixels = 0;  // 0 = no limit
  // Refuse files whose decoder would hold more than this many bytes at once
  // (estimated from the header before any pixel is decoded; see
  // EstimateDecodeBytes). 0 = no limit.
  int64_t max_decode_bytes = 0;
  bool hash_pixels = false;  // also hash the decoded full-size pixels (ContentHashKind::kPixels)
  std::function<bool()> cancelled;
};

struct DecodedImage {
  ImageInfo info;
  std::vector<float> luma;  // luma_width * luma_height, oriented
  int luma_width = 0, luma_height = 0;
  // The picture as 64 x 64 area averages (no aliasing: what a resized copy
  // looks like), oriented; smaller pictures keep their own size.
  std::vector<float> smooth;
  int smooth_width = 0, smooth_height = 0;
  // Mean chroma (Cb, Cr, -128..127) of a 4 x 4 grid of the oriented picture,
  // cell (i, j) at [2 * (4 * i + j)]; all zero for grey pictures.
  std::array<float, 32> chroma{};
  // Grey area averages with the picture's own aspect, long side at most
  // kLocalSide, oriented: what local features (doppel/local_words.h) are
  // computed on. Empty for pictures smaller than 16 pixels on a side.
  std::vector<float> local;
  int local_width = 0, local_height = 0;
  Digest pixel_digest{};  // set when hash_pixels
};

// Once per process (initialises libvips: no operation cache, one thread per
// pipeline, untrusted loaders blocked, warnings kept off the console).
Status InitVips();

Result<DecodedImage> DecodeForPdq(const DecodeInput& input);

// What decoding page 1 of a file will cost, from its header alone.
struct DecodeCost {
  std::string format;  // as ImageInfo::format
  int width = 0, height = 0;
  int64_t bytes = 0;        // estimated peak memory held by the loader
  int jpeg_scans = 0;       // JPEG: scans (SOS markers) before EOI
  bool full_frame = false;  // the loader holds the whole page (not streamed)
};

// JPEG files with more scans than this are refused: libjpeg walks every
// block of the picture once per scan, so scans multiply decoding time.
constexpr int kMaxJpegScans = 100;

// The allowlisted format of the input from its signature ("jpeg", "png",
// ...), or kUnsupported. Reads nothing past the signature.
Result<std::string> SniffFormat(const DecodeInput& input);

// Reads the header (and for JPEG the marker layout) and estimates the cost;
// kUnsupported for formats doppel does not decode.
Result<DecodeCost> EstimateDecodeCost(const DecodeInput& input);

// kTooLarge, naming the limit and how to raise it, when `cost` exceeds the
// input's pixel or decode-memory limit or kMaxJpegScans.
Status CheckDecodeCost(const DecodeCost& cost, const DecodeInput& input);

// Applies EXIF orientation (1..8) to a row-major float image in place;
// width/height are updated (swapped for 5..8).
void ApplyOrientation(std::vector<float>& pixels, int& width, int& height, int orientation);

}  // namespace doppel

// Small renditions of a picture for people and for the matcher's geometric
// check: decoded through the same guarded libvips path as fingerprinting
// (allowlisted loaders, damaged data refused, pixel limit from the header),
// EXIF orientation applied, shrunk on load where the format allows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "doppel/status.h"

namespace doppel {

struct Rendition {
  int width = 0, height = 0;
  int bands = 0;                            // 3 (sRGB) or 1 (grey)
  std::vector<uint8_t> pixels;              // row-major, interleaved, width * height * bands
  std::string format;                       // "jpeg", "png", ... of the source
  int source_width = 0, source_height = 0;  // of the stored (un-oriented) picture
};

struct RenditionOptions {
  int max_side = 256;                  // longest side at most this (never enlarged)
  bool grey = false;                   // one band of luminance instead of sRGB
  int64_t max_pixels = 1'000'000'000;  // refuse bigger pictures (kTooLarge)
  // Refuse pictures whose decoder would need more memory (kTooLarge; see
  // AnalyseOptions::max_decode_bytes). 0 = no limit.
  int64_t max_decode_bytes = 192ll << 20;
};

// Page 1 of an image file or of bytes in memory. Thread-safe; call
// InitImaging() first. Errors name no path: callers prefix it.
Result<Rendition> RenderFile(const std::string& path, const RenditionOptions& options);
Result<Rendition> RenderBuffer(const uint8_t* data, size_t size, const RenditionOptions& options);

// Baseline JPEG bytes of a rendition (no metadata), quality 1..100.
Result<std::string> EncodeJpeg(const Rendition& r, int quality = 80);

}  // namespace doppel

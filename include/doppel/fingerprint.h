// Analysing one image file: its fingerprints and metadata (the ImageRecord of
// doppel/model.h), what a scan stores in the catalogue and `doppel hash` prints.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "doppel/model.h"
#include "doppel/status.h"

namespace doppel {

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

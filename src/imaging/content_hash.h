// Metadata-insensitive content hashes of JPEG and PNG byte streams.
//
// These parsers read untrusted bytes: they never read past what they were
// given, never allocate per byte, and report malformed structure as
// kCorruption. They are fed incrementally (any chunking gives the same
// result), so a file can be hashed while it is streamed from disk.
//
// JPEG (ContentHashKind::kJpegSegments): SOI, then every marker segment except
// APP0..APP15 (0xFFE0..0xFFEF) and COM (0xFFFE) is hashed as its raw bytes
// (marker, length, payload); entropy-coded data after each SOS is hashed as it
// is (stuffed bytes and RSTn markers included); hashing stops at EOI, so
// trailing bytes (camera trailers, appended previews) are ignored. Fill bytes
// (0xFF runs before a marker) are not hashed.
//
// PNG (ContentHashKind::kPngChunks): the 8-byte signature, then for IHDR, PLTE,
// tRNS and IEND the chunk type, length and data; all IDAT chunks' data is
// hashed as one stream after one "IDAT" tag, so re-chunking the same zlib stream
// does not change the hash. CRCs and ancillary chunks (tEXt, iTXt, zTXt, eXIf,
// tIME, pHYs, iCCP, gAMA, ...) are ignored. Hashing stops at IEND.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "doppel/fingerprint.h"
#include "doppel/status.h"

namespace doppel {

// Which structural hasher (if any) applies to bytes starting with `head`.
// Returns kJpegSegments for FF D8 FF, kPngChunks for the PNG signature, else
// kPixels (no structural hash: hash the decoded pixels instead).
ContentHashKind DetectContentHashKind(const uint8_t* head, size_t size);

class StructuralHasher {
 public:
  virtual ~StructuralHasher() = default;
  // Feeds the next bytes. After an error or the end marker, further input is ignored.
  virtual void Update(const uint8_t* data, size_t size) = 0;
  // The SHA-256 of the hashed structure, or kCorruption if the stream was
  // malformed or ended before EOI/IEND.
  virtual Result<Digest> Finish() = 0;
};

// kind must be kJpegSegments or kPngChunks.
std::unique_ptr<StructuralHasher> MakeStructuralHasher(ContentHashKind kind);

// Final content hash: SHA-256 of a domain tag for the kind, the EXIF
// orientation (it changes the displayed picture) and the inner digest.
Digest CombineContentHash(ContentHashKind kind, int orientation, const Digest& inner);

}  // namespace doppel

#include "imaging/content_hash.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "util/sha256.h"

namespace doppel {

namespace {

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};

std::string Format(const char* fmt, unsigned long long a, unsigned long long b = 0) {
  char buf[128];
  std::snprintf(buf, sizeof buf, fmt, a, b);
  return buf;
}

// Shared plumbing: the first error wins and freezes the state machine, and
// Finish() may be called more than once (it returns the same answer).
class HasherBase : public StructuralHasher {
 protected:
  void Fail(std::string message) {
    if (error_.ok()) error_ = Corruption(std::move(message));
  }
  bool failed() const { return !error_.ok(); }

  Sha256 sha_;
  Status error_;
  uint64_t fed_ = 0;  // bytes seen before the current Update() call
  std::optional<Result<Digest>> result_;
};

// JPEG: see the header for what is hashed. The parser follows libjpeg's
// tolerance where decoders agree the picture is unaffected: bytes between
// segments that are not a marker ("extraneous bytes before marker", a libjpeg
// warning, not an error) are skipped unhashed, like fill bytes. Everything a
// decoder would reject outright (no SOI, a length below 2, no EOI) is
// kCorruption.
class JpegHasher final : public HasherBase {
 public:
  void Update(const uint8_t* data, size_t size) override;
  Result<Digest> Finish() override;

 private:
  enum class State : uint8_t {
    kSoi0,        // want FF
    kSoi1,        // want D8
    kBetween,     // between segments: want FF
    kMarkerCode,  // after FF: more FF (fill) or the marker code
    kLengthHigh,  // first byte of a segment length
    kLengthLow,   // second byte of a segment length
    kPayload,     // segment payload, hashed unless APPn/COM
    kEntropy,     // entropy-coded data after SOS
    kEntropyFF,   // entropy data just saw FF: stuffing, RSTn, fill or marker
    kDone,        // EOI reached; the rest is ignored
  };

  static bool IsStandalone(uint8_t m) { return m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01; }
  static bool IsSkipped(uint8_t m) { return (m >= 0xE0 && m <= 0xEF) || m == 0xFE; }

  void StartMarker(uint8_t m, uint64_t offset);
  void EndSegment() {
    if (marker_ == 0xDA) seen_sos_ = true;
    state_ = marker_ == 0xDA ? State::kEntropy : State::kBetween;
  }

  State state_ = State::kSoi0;
  uint8_t marker_ = 0;       // code of the segment being read
  uint8_t length_high_ = 0;  // carried over when the length straddles two Update() calls
  bool skip_ = false;        // current segment is APPn/COM
  bool seen_sos_ = false;
  uint32_t remaining_ = 0;  // payload bytes left in the current segment
  uint64_t marker_offset_ = 0;
};

void JpegHasher::StartMarker(uint8_t m, uint64_t offset) {
  marker_offset_ = offset;
  if (m == 0xD9) {
    // A stream with no scan has no picture; decoders reject it too.
    if (!seen_sos_)
      return Fail(Format("corrupt JPEG: EOI at offset %llu before any scan (SOS)", offset));
    const uint8_t eoi[2] = {0xFF, 0xD9};
    sha_.Update(eoi, 2);
    state_ = State::kDone;
    return;
  }
  if (IsStandalone(m)) {
    const uint8_t marker[2] = {0xFF, m};
    sha_.Update(marker, 2);
    state_ = State::kBetween;
    return;
  }
  marker_ = m;
  skip_ = IsSkipped(m);
  state_ = State::kLengthHigh;
}

void JpegHasher::Update(const uint8_t* data, size_t size) {
  const uint8_t* p = data;
  const uint8_t* const end = data + size;
  auto offset = [&](const uint8_t* at) { return fed_ + static_cast<uint64_t>(at - data); };
  while (p < end && !failed() && state_ != State::kDone) {
    switch (state_) {
      case State::kSoi0:
      case State::kSoi1: {
        const uint8_t want = state_ == State::kSoi0 ? 0xFF : 0xD8;
        if (*p != want) {
          Fail("corrupt JPEG: no SOI marker at start");
          break;
        }
        ++p;
        if (state_ == State::kSoi0) {
          state_ = State::kSoi1;
        } else {
          const uint8_t soi[2] = {0xFF, 0xD8};
          sha_.Update(soi, 2);
          state_ = State::kBetween;
        }
        break;
      }
      case State::kBetween: {
        const void* ff = std::memchr(p, 0xFF, static_cast<size_t>(end - p));
        if (!ff) {
          p = end;
        } else {
          p = static_cast<const uint8_t*>(ff) + 1;
          state_ = State::kMarkerCode;
        }
        break;
      }
      case State::kMarkerCode: {
        const uint8_t m = *p;
        const uint64_t at = offset(p) - 1;
        ++p;
        if (m == 0xFF) break;  // fill
        if (m == 0x00) {
          // libjpeg discards FF 00 outside a scan as garbage; so do we.
          state_ = State::kBetween;
          break;
        }
        StartMarker(m, at);
        break;
      }
      case State::kLengthHigh:
        length_high_ = *p++;
        state_ = State::kLengthLow;
        break;
      case State::kLengthLow: {
        const uint8_t low = *p++;
        const uint32_t length = (uint32_t{length_high_} << 8) | low;
        if (length < 2) {
          Fail(Format("corrupt JPEG: segment length %llu at offset %llu", length, marker_offset_));
          break;
        }
        if (!skip_) {
          const uint8_t header[4] = {0xFF, marker_, length_high_, low};
          sha_.Update(header, 4);
        }
        remaining_ = length - 2;
        if (remaining_ == 0)
          EndSegment();
        else
          state_ = State::kPayload;
        break;
      }
      case State::kPayload: {
        const size_t n = std::min<size_t>(remaining_, static_cast<size_t>(end - p));
        if (!skip_) sha_.Update(p, n);
        p += n;
        remaining_ -= static_cast<uint32_t>(n);
        if (remaining_ == 0) EndSegment();
        break;
      }
      case State::kEntropy: {
        const void* ff = std::memchr(p, 0xFF, static_cast<size_t>(end - p));
        const uint8_t* stop = ff ? static_cast<const uint8_t*>(ff) : end;
        sha_.Update(p, static_cast<size_t>(stop - p));
        p = stop;
        if (ff) {
          ++p;  // the FF is hashed only once we know it is data, not fill
          state_ = State::kEntropyFF;
        }
        break;
      }
      case State::kEntropyFF: {
        const uint8_t m = *p;
        const uint64_t at = offset(p) - 1;
        ++p;
        if (m == 0x00 || (m >= 0xD0 && m <= 0xD7)) {
          const uint8_t pair[2] = {0xFF, m};
          sha_.Update(pair, 2);
          state_ = State::kEntropy;
        } else if (m != 0xFF) {
          StartMarker(m, at);
        }
        break;
      }
      case State::kDone:
        break;
    }
  }
  fed_ += size;
}

Result<Digest> JpegHasher::Finish() {
  if (!result_) {
    if (failed()) {
      result_.emplace(error_);
    } else if (state_ != State::kDone) {
      result_.emplace(Corruption(Format("truncated JPEG: no EOI marker after %llu bytes", fed_)));
    } else {
      result_.emplace(sha_.Finish());
    }
  }
  return *result_;
}

class PngHasher final : public HasherBase {
 public:
  void Update(const uint8_t* data, size_t size) override;
  Result<Digest> Finish() override;

 private:
  enum class State : uint8_t { kSignature, kChunkHeader, kChunkData, kCrc, kDone };

  void OnChunkHeader(uint64_t offset);
  void EndChunkData();

  State state_ = State::kSignature;
  uint8_t header_[8] = {};  // length + type; filled across Update() calls
  size_t have_ = 0;         // bytes of signature / header_ / CRC consumed so far
  uint32_t remaining_ = 0;  // data bytes left in the current chunk
  bool hash_data_ = false;
  bool is_iend_ = false;
  bool seen_ihdr_ = false;
  bool seen_idat_ = false;
};

void PngHasher::OnChunkHeader(uint64_t offset) {
  const uint32_t length = (uint32_t{header_[0]} << 24) | (uint32_t{header_[1]} << 16) |
                          (uint32_t{header_[2]} << 8) | header_[3];
  const uint8_t* type = header_ + 4;
  if (length > 0x7FFFFFFFu) {
    return Fail(
        Format("corrupt PNG: chunk length %llu at offset %llu exceeds 2^31-1", length, offset));
  }
  for (int i = 0; i < 4; ++i) {
    const uint8_t c = type[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
      return Fail(Format("corrupt PNG: invalid chunk type at offset %llu", offset));
    }
  }
  auto is = [&](const char* name) { return std::memcmp(type, name, 4) == 0; };
  if (!seen_ihdr_) {
    if (!is("IHDR")) return Fail("corrupt PNG: first chunk is not IHDR");
    if (length != 13) return Fail(Format("corrupt PNG: IHDR length %llu, expected 13", length));
    seen_ihdr_ = true;
  } else if (is("IHDR")) {
    return Fail(Format("corrupt PNG: second IHDR chunk at offset %llu", offset));
  }

  is_iend_ = is("IEND");
  if (is_iend_ && !seen_idat_) {
    return Fail(Format("corrupt PNG: IEND at offset %llu before any IDAT", offset));
  }
  if (is("IDAT")) {
    // One tag for the whole zlib stream, so splitting it differently into
    // chunks leaves the hash unchanged.
    if (!seen_idat_) sha_.Update("IDAT", 4);
    seen_idat_ = true;
    hash_data_ = true;
  } else if (is("IHDR") || is("PLTE") || is("tRNS") || is_iend_) {
    sha_.Update(type, 4);
    sha_.Update(header_, 4);
    hash_data_ = true;
  } else {
    hash_data_ = false;
  }
  remaining_ = length;
  state_ = State::kChunkData;
  if (remaining_ == 0) EndChunkData();
}

void PngHasher::EndChunkData() {
  if (is_iend_) {
    // IEND's CRC is not needed: a file cut just before it is still whole.
    state_ = State::kDone;
  } else {
    state_ = State::kCrc;
    have_ = 0;
  }
}

void PngHasher::Update(const uint8_t* data, size_t size) {
  const uint8_t* p = data;
  const uint8_t* const end = data + size;
  while (p < end && !failed() && state_ != State::kDone) {
    const size_t avail = static_cast<size_t>(end - p);
    switch (state_) {
      case State::kSignature:
        if (*p != kPngSignature[have_]) {
          Fail("corrupt PNG: bad signature");
          break;
        }
        ++p;
        if (++have_ == sizeof kPngSignature) {
          sha_.Update(kPngSignature, sizeof kPngSignature);
          state_ = State::kChunkHeader;
          have_ = 0;
        }
        break;
      case State::kChunkHeader: {
        const size_t n = std::min(sizeof header_ - have_, avail);
        std::memcpy(header_ + have_, p, n);
        p += n;
        have_ += n;
        if (have_ == sizeof header_) {
          OnChunkHeader(fed_ + static_cast<uint64_t>(p - data) - sizeof header_);
        }
        break;
      }
      case State::kChunkData: {
        const size_t n = std::min<size_t>(remaining_, avail);
        if (hash_data_) sha_.Update(p, n);
        p += n;
        remaining_ -= static_cast<uint32_t>(n);
        if (remaining_ == 0) EndChunkData();
        break;
      }
      case State::kCrc: {
        const size_t n = std::min<size_t>(4 - have_, avail);
        p += n;
        have_ += n;
        if (have_ == 4) {
          state_ = State::kChunkHeader;
          have_ = 0;
        }
        break;
      }
      case State::kDone:
        break;
    }
  }
  fed_ += size;
}

Result<Digest> PngHasher::Finish() {
  if (!result_) {
    if (failed()) {
      result_.emplace(error_);
    } else if (state_ != State::kDone) {
      result_.emplace(Corruption(Format("truncated PNG: no IEND chunk after %llu bytes", fed_)));
    } else {
      result_.emplace(sha_.Finish());
    }
  }
  return *result_;
}

}  // namespace

ContentHashKind DetectContentHashKind(const uint8_t* head, size_t size) {
  if (size >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF) {
    return ContentHashKind::kJpegSegments;
  }
  if (size >= sizeof kPngSignature && std::memcmp(head, kPngSignature, sizeof kPngSignature) == 0) {
    return ContentHashKind::kPngChunks;
  }
  return ContentHashKind::kPixels;
}

std::unique_ptr<StructuralHasher> MakeStructuralHasher(ContentHashKind kind) {
  switch (kind) {
    case ContentHashKind::kJpegSegments:
      return std::make_unique<JpegHasher>();
    case ContentHashKind::kPngChunks:
      return std::make_unique<PngHasher>();
    case ContentHashKind::kPixels:
      break;
  }
  return nullptr;  // a caller bug: pixels have no structural hasher
}

Digest CombineContentHash(ContentHashKind kind, int orientation, const Digest& inner) {
  const char* tag = "doppel-content-v1:pixels";
  switch (kind) {
    case ContentHashKind::kJpegSegments:
      tag = "doppel-content-v1:jpeg";
      break;
    case ContentHashKind::kPngChunks:
      tag = "doppel-content-v1:png";
      break;
    case ContentHashKind::kPixels:
      break;
  }
  Sha256 sha;
  sha.Update(tag, std::strlen(tag));
  const uint8_t o = static_cast<uint8_t>(orientation);
  sha.Update(&o, 1);
  sha.Update(inner.data(), inner.size());
  return sha.Finish();
}

}  // namespace doppel

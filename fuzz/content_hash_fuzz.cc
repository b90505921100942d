// libFuzzer target: the JPEG and PNG structural hashers must never crash, and
// must give the same answer (digest or error message) however the bytes are
// split across Update() calls.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "imaging/content_hash.h"

namespace {

using doppel::ContentHashKind;
using doppel::Digest;
using doppel::Result;

Result<Digest> Hash(ContentHashKind kind, const std::string& bytes,
                    const std::vector<size_t>& cuts) {
  auto h = doppel::MakeStructuralHasher(kind);
  size_t pos = 0;
  for (size_t cut : cuts) {
    h->Update(reinterpret_cast<const uint8_t*>(bytes.data()) + pos, cut - pos);
    pos = cut;
  }
  h->Update(reinterpret_cast<const uint8_t*>(bytes.data()) + pos, bytes.size() - pos);
  return h->Finish();
}

void ExpectSame(const Result<Digest>& a, const Result<Digest>& b) {
  const bool same = a.ok() == b.ok() && (a.ok() ? a.value() == b.value()
                                                : a.status().code() == b.status().code() &&
                                                      a.status().message() == b.status().message());
  if (!same) std::abort();
  if (!a.ok() && a.status().code() != doppel::StatusCode::kCorruption) std::abort();
}

// The split point must be a function of the input, or crashes would not
// reproduce; FNV-1a spreads it over the whole range.
uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

void Check(ContentHashKind kind, const std::string& bytes) {
  const Result<Digest> whole = Hash(kind, bytes, {});
  const uint64_t r = Fnv1a(bytes);
  const size_t split = bytes.empty() ? 0 : r % (bytes.size() + 1);
  ExpectSame(whole, Hash(kind, bytes, {split}));
  // Many short pieces make headers straddle boundaries everywhere.
  std::vector<size_t> cuts;
  for (size_t pos = 0, step = 1 + (r >> 32) % 3; pos + step < bytes.size(); pos += step)
    cuts.push_back(pos + step);
  ExpectSame(whole, Hash(kind, bytes, cuts));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  (void)doppel::DetectContentHashKind(data, size);
  Check(ContentHashKind::kJpegSegments, bytes);
  Check(ContentHashKind::kPngChunks, bytes);
  // With the magic prepended, random inputs get past the first check and
  // exercise the state machines themselves.
  Check(ContentHashKind::kJpegSegments, std::string("\xFF\xD8", 2) + bytes);
  Check(ContentHashKind::kPngChunks, std::string("\x89PNG\r\n\x1a\n", 8) + bytes);
  return 0;
}

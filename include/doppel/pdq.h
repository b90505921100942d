// PDQ perceptual hash (Meta's 256-bit DCT hash), as ../shared/docs/pdq.md and
// docs/fingerprints.md describe it, with its eight dihedral variants.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace doppel {

// A 256-bit PDQ hash. Bit k (k = 16*i + j, i the vertical and j the horizontal
// DCT frequency index) lives in words[k >> 4] at bit position k & 15.
struct PdqHash {
  std::array<uint16_t, 16> words{};

  bool bit(int k) const { return (words[k >> 4] >> (k & 15)) & 1; }
  void set_bit(int k) { words[k >> 4] |= uint16_t(1u << (k & 15)); }
  // 64 lowercase hex digits, word 15 first (the reference tool's format).
  std::string ToHex() const;
  // Parses 64 hex digits (either case); nullopt if malformed.
  static std::optional<PdqHash> FromHex(std::string_view hex);
  // The 32 bytes in hex order (most significant first), for storage.
  std::array<uint8_t, 32> ToBytes() const;
  static PdqHash FromBytes(const uint8_t* bytes32);

  friend bool operator==(const PdqHash&, const PdqHash&) = default;
};
static_assert(sizeof(PdqHash) == 32, "PdqHash must stay a packed 256-bit value");

inline int HammingDistance(const PdqHash& a, const PdqHash& b) {
  int d = 0;
  for (int i = 0; i < 16; ++i) d += std::popcount(unsigned(a.words[i] ^ b.words[i]));
  return d;
}

// The eight symmetries of the square, in the order of the reference tool's
// dihedral output and of ../shared/testdata/pdq/dih/.
enum class Dihedral : uint8_t {
  kOriginal = 0,
  kRotate90 = 1,
  kRotate180 = 2,
  kRotate270 = 3,
  kFlipX = 4,       // top-bottom
  kFlipY = 5,       // left-right mirror
  kFlipPlus1 = 6,   // main-diagonal transpose
  kFlipMinus1 = 7,  // anti-diagonal transpose
};
const char* DihedralName(Dihedral d);

struct PdqResult {
  PdqHash hash;                     // of the picture as it is
  int quality = 0;                  // 0..100; <= 49 is too featureless to trust alone
  std::array<PdqHash, 8> dihedral;  // [0] == hash; [k] = hash of transform k
};

// Hashes a luminance image (row-major, width*height floats, values 0..255).
// Images with a side < 5 give the all-zero hash with quality 0. The caller
// applies the reference's 512x512 squash (or not) before calling; this
// function does the blur, decimation, DCT and thresholding. Thread-safe; uses
// about 1 KiB of stack plus a scratch buffer of width*height floats.
PdqResult PdqFromLuminance(const float* luma, int width, int height);

// The PDQ pipeline version stored beside every perceptual hash: hashes from
// different pipelines are never compared. See docs/fingerprints.md.
inline constexpr int kPdqPipelineVersion = 1;

}  // namespace doppel

// Local words: a picture's local features as a small set of integers, so
// that pictures sharing a part of their content (a crop, a turned or
// overlaid copy, a shot taken a moment later) can be found among millions
// without comparing every pair and without the global hash bringing them
// close. docs/matching.md ("Local-word candidates") has the design and the
// measurements behind each constant.
//
// At scan time: ORB keypoints on a grey rendition (long side kLocalSide,
// area averages, the picture's own aspect), the kLocalKeypoints strongest
// kept; each descriptor gives kLocalTables words, each word kLocalBits bits
// sampled at fixed positions of the 256-bit descriptor (bit-sampling
// locality-sensitive hashing: two descriptors that differ in few bits often
// agree on all sampled bits of at least one table). At match time: an
// inverted file over the words returns, for every file, the files sharing
// at least a few words with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "doppel/status.h"

namespace doppel {

inline constexpr int kLocalSide = 320;
inline constexpr int kLocalKeypoints = 200;
inline constexpr int kLocalTables = 6;
inline constexpr int kLocalBits = 32;
// Bump when anything above or in the extractor changes: catalogued words of
// another version are stale, and the next scan computes them again.
inline constexpr int kLocalWordsVersion = 1;

// Sorted, without repeats; at most kLocalKeypoints * kLocalTables words.
using LocalWords = std::vector<uint32_t>;

// Words of a grey picture (row-major, 0..255 as floats, any size; pictures
// larger than kLocalSide are reduced first). A featureless picture (a flat
// colour, a blank page) has no words.
LocalWords ComputeLocalWords(const float* grey, int width, int height);

// Words two sets have in common (both sorted).
int SharedLocalWords(const LocalWords& a, const LocalWords& b);

// The catalogue's form: little-endian uint32 values, in order.
std::vector<uint8_t> EncodeLocalWords(const LocalWords& words);
Result<LocalWords> DecodeLocalWords(std::span<const uint8_t> bytes);

// --- The inverted file (src/local/local_index.cc) ---

struct LocalCandidateOptions {
  // A pair is a candidate when it shares at least this many words
  // (`doppel match` takes it from MatchOptions::min_shared_words).
  int min_shared = 4;
  // Words held by more files than this are ignored (textures, text glyphs,
  // flat areas: they say little about which pictures share content).
  int max_files_per_word = 64;
  // Memory for the postings of one pass; more words than fit are handled
  // in several passes over the files (each pass keeps a share of the words).
  int64_t memory_bytes = int64_t(512) << 20;
  const std::atomic<bool>* cancel = nullptr;
};

struct LocalCandidate {
  uint32_t a = 0, b = 0;  // file indexes, a < b
  int shared = 0;         // words in common (those held by few files)
};

struct LocalCandidateStats {
  int64_t files = 0, words = 0;  // words over all files
  int passes = 0;
  int64_t pairs_counted = 0;  // pair occurrences counted before the threshold
  int64_t stop_words = 0;     // words ignored as too common
};

// Visits every file's words: `visit(file_index, words)` for each file with
// words, indexes in [0, files). Called once per pass.
using LocalWordSource =
    std::function<Status(const std::function<void(uint32_t, std::span<const uint32_t>)>& visit)>;

// The pairs (a, b) sharing at least min_shared words, with a or b fresh
// (fresh.size() == files; an empty vector means every file is fresh),
// strongest first (then by a, b: the same order on every run). Memory is
// bounded by options.memory_bytes plus the pairs counted.
Result<std::vector<LocalCandidate>> FindLocalCandidates(const LocalWordSource& source,
                                                        uint32_t files,
                                                        const std::vector<bool>& fresh,
                                                        const LocalCandidateOptions& options,
                                                        LocalCandidateStats* stats = nullptr);

}  // namespace doppel

// ComputeLocalWords: ORB keypoints on the scan's grey rendition, quantised
// by bit sampling (the OpenCV adapter: every cv::Exception is caught here).
#include <opencv2/core.hpp>
#include <opencv2/features2d.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <numeric>

#include "doppel/local_words.h"

namespace doppel {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint32_t Mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  x *= 0x846CA68Bu;
  x ^= x >> 16;
  return x;
}

// The sampled bit positions: for each table, kLocalBits distinct positions
// of the 256-bit descriptor, from a fixed seed with our own shuffle (the
// standard library's shuffle may differ between implementations, and the
// words must not).
using Positions = std::array<std::array<uint8_t, kLocalBits>, kLocalTables>;
const Positions& SampledBits() {
  static const Positions positions = [] {
    Positions p{};
    uint64_t state = 0x646F7070656C4C57ull;  // "doppelLW"
    for (auto& table : p) {
      std::array<uint8_t, 256> all;
      std::iota(all.begin(), all.end(), 0);
      for (int i = 255; i > 0; --i) std::swap(all[i], all[SplitMix64(state) % uint64_t(i + 1)]);
      std::copy_n(all.begin(), kLocalBits, table.begin());
    }
    return p;
  }();
  return positions;
}

}  // namespace

LocalWords ComputeLocalWords(const float* grey, int width, int height) {
  LocalWords words;
  if (!grey || width < 16 || height < 16) return words;
  static std::once_flag once;
  std::call_once(once, [] { cv::setNumThreads(1); });
  try {
    cv::Mat f(height, width, CV_32F, const_cast<float*>(grey));
    cv::Mat g;
    f.convertTo(g, CV_8U);
    const int longest = std::max(width, height);
    if (longest > kLocalSide) {
      const double s = double(kLocalSide) / longest;
      cv::resize(g, g, cv::Size(), s, s, cv::INTER_AREA);
    }
    // Local contrast equalised: smooth pictures (skies, sand) still yield
    // keypoints, and a darker or re-graded copy yields the same ones.
    cv::Mat detect;
    cv::createCLAHE(/*clipLimit=*/3.0, cv::Size(8, 8))->apply(g, detect);
    auto orb = cv::ORB::create(/*nfeatures=*/2 * kLocalKeypoints, /*scaleFactor=*/1.2f,
                               /*nlevels=*/6, /*edgeThreshold=*/15, /*firstLevel=*/0,
                               /*WTA_K=*/2, cv::ORB::HARRIS_SCORE, /*patchSize=*/15,
                               /*fastThreshold=*/7);
    std::vector<cv::KeyPoint> kps;
    cv::Mat desc;
    orb->detectAndCompute(detect, cv::noArray(), kps, desc);
    if (desc.empty()) return words;
    // The strongest keypoints (ties by position: the same words every run).
    std::vector<int> order(kps.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      if (kps[a].response != kps[b].response) return kps[a].response > kps[b].response;
      if (kps[a].pt.y != kps[b].pt.y) return kps[a].pt.y < kps[b].pt.y;
      return kps[a].pt.x < kps[b].pt.x;
    });
    if (order.size() > size_t(kLocalKeypoints)) order.resize(kLocalKeypoints);
    const Positions& bits = SampledBits();
    words.reserve(order.size() * kLocalTables);
    for (int k : order) {
      const uint8_t* d = desc.ptr<uint8_t>(k);
      for (int t = 0; t < kLocalTables; ++t) {
        uint32_t v = 0;
        for (uint8_t b : bits[size_t(t)]) v = (v << 1) | ((d[b >> 3] >> (b & 7)) & 1u);
        words.push_back(Mix32(v ^ (uint32_t(t + 1) * 0x9E3779B9u)));
      }
    }
  } catch (const cv::Exception&) {
    return {};  // an extractor failure costs this stage only; the hashes still stand
  }
  std::sort(words.begin(), words.end());
  words.erase(std::unique(words.begin(), words.end()), words.end());
  return words;
}

int SharedLocalWords(const LocalWords& a, const LocalWords& b) {
  int n = 0;
  for (size_t i = 0, j = 0; i < a.size() && j < b.size();) {
    if (a[i] < b[j]) {
      ++i;
    } else if (b[j] < a[i]) {
      ++j;
    } else {
      ++n, ++i, ++j;
    }
  }
  return n;
}

std::vector<uint8_t> EncodeLocalWords(const LocalWords& words) {
  std::vector<uint8_t> out(words.size() * 4);
  for (size_t i = 0; i < words.size(); ++i)
    for (int k = 0; k < 4; ++k) out[4 * i + k] = uint8_t(words[i] >> (8 * k));
  return out;
}

Result<LocalWords> DecodeLocalWords(std::span<const uint8_t> bytes) {
  if (bytes.size() % 4 != 0)
    return Corruption("local words: " + std::to_string(bytes.size()) +
                      " bytes is not a whole number of words");
  LocalWords out(bytes.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= uint32_t(bytes[4 * i + k]) << (8 * k);
    out[i] = v;
    if (i > 0 && out[i] <= out[i - 1])
      return Corruption("local words are not in strictly increasing order");
  }
  return out;
}

}  // namespace doppel

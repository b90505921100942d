// An exact in-memory index of PDQ hashes for Hamming-radius search.
//
// Multi-index hashing (Norouzi, Punjani, Fleet): the 256 bits are cut into 16
// slots of 16 bits; two hashes within r bits agree within floor(r / 16) bits
// on at least one slot. Each slot has a direct-addressed table (65,536
// buckets: offsets and ids, no hashing). Radii with floor(r / 16) <= 1
// (r <= 31, PDQ's matching range) use the tables; larger radii use a SIMD
// brute-force scan. Both return exactly what a plain scan returns.
//
// Memory: 32 bytes per hash, 64 bytes of ids, 4 bytes of visited stamps,
// plus 4 MiB of bucket offsets: under 128 bytes per hash from ~130,000 on.
// Thread-safety: const methods may run concurrently (each caller brings its
// own QueryScratch); Add/Build need exclusive access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "doppel/pdq.h"

namespace doppel {

struct Neighbour {
  uint32_t index;  // position in the index (the order hashes were added)
  uint16_t distance;
  friend bool operator==(const Neighbour&, const Neighbour&) = default;
};

// Per-thread scratch for queries (a visited stamp per indexed hash).
class QueryScratch {
 public:
  QueryScratch() = default;

 private:
  friend class PdqIndex;
  std::vector<uint32_t> stamp_;
  uint32_t epoch_ = 0;
};

class PdqIndex {
 public:
  enum class Method { kAuto, kMultiIndex, kBruteForce };

  PdqIndex();
  ~PdqIndex();
  PdqIndex(PdqIndex&&) noexcept;
  PdqIndex& operator=(PdqIndex&&) noexcept;

  // Replaces the contents; index i is hashes[i].
  void Build(std::vector<PdqHash> hashes);
  // Appends one hash (index = size() before the call). New hashes are
  // searched by brute force until the tail is large enough to fold into the
  // tables (amortised O(1) per Add).
  uint32_t Add(const PdqHash& h);

  size_t size() const;
  const PdqHash& hash(uint32_t index) const;
  size_t MemoryBytes() const;

  // Every indexed hash within `radius` of q, in increasing index order.
  void Query(const PdqHash& q, int radius, std::vector<Neighbour>& out, QueryScratch& scratch,
             Method method = Method::kAuto) const;

  // Every pair (a < b) of indexed hashes within `radius`, each reported once,
  // in no particular order. `threads` workers; `emit` is called from one
  // thread at a time.
  void SelfJoin(int radius, int threads,
                const std::function<void(uint32_t a, uint32_t b, int distance)>& emit,
                Method method = Method::kAuto) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The distance kernel: out[i] = HammingDistance(q, hashes[i]) for i < n.
// Picks AVX-512 VPOPCNTDQ when the CPU has it, else a POPCNT scalar loop,
// else a portable one.
void HammingDistances(const PdqHash& q, const PdqHash* hashes, size_t n, uint16_t* out);

// Every kernel this build holds, so tests can check each one the CPU runs
// against an independent oracle. Calling a kernel whose `supported` is false
// is undefined (the CPU lacks its instructions).
struct HammingKernel {
  const char* name;
  void (*fn)(const PdqHash& q, const PdqHash* hashes, size_t n, uint16_t* out);
  bool supported;  // this CPU has the kernel's instructions
  bool selected;   // HammingDistances uses this one
};
std::vector<HammingKernel> HammingKernels();

}  // namespace doppel

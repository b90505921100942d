// Multi-index hashing over PDQ (docs/index.md), with a brute-force twin.
#include <algorithm>
#include <bit>
#include <mutex>
#include <thread>

#include "doppel/index.h"
#include "util/parallel.h"

namespace doppel {
namespace {

constexpr int kSlots = 16;
constexpr uint32_t kBuckets = 1u << 16;
constexpr size_t kBlock = 4096;  // brute-force block (distances buffer)
constexpr size_t kMinTableSize = 2048;

// floor(r / 16): how far a slot may differ for a pair to still be within r.
int SlotRadius(int radius) { return radius < 0 ? -1 : radius / kSlots; }

struct Tables {
  // For each slot: offsets[kBuckets + 1] and the ids sorted by that slot's key.
  std::vector<uint32_t> offsets;  // kSlots * (kBuckets + 1)
  std::vector<uint32_t> ids;      // kSlots * count
  uint32_t count = 0;             // hashes [0, count) are in the tables

  void Build(const std::vector<PdqHash>& hashes, uint32_t n) {
    count = n;
    offsets.assign(size_t(kSlots) * (kBuckets + 1), 0);
    ids.resize(size_t(kSlots) * n);
    for (int s = 0; s < kSlots; ++s) {
      uint32_t* off = &offsets[size_t(s) * (kBuckets + 1)];
      for (uint32_t i = 0; i < n; ++i) ++off[hashes[i].words[s] + 1];
      for (uint32_t b = 0; b < kBuckets; ++b) off[b + 1] += off[b];
      std::vector<uint32_t> fill(off, off + kBuckets);
      uint32_t* slot_ids = &ids[size_t(s) * n];
      for (uint32_t i = 0; i < n; ++i) slot_ids[fill[hashes[i].words[s]]++] = i;
    }
  }
  std::pair<const uint32_t*, const uint32_t*> Bucket(int s, uint32_t key) const {
    const uint32_t* off = &offsets[size_t(s) * (kBuckets + 1)];
    const uint32_t* base = &ids[size_t(s) * count];
    return {base + off[key], base + off[key + 1]};
  }
};

}  // namespace

struct PdqIndex::Impl {
  std::vector<PdqHash> hashes;
  Tables tables;

  void MaybeRebuild() {
    const size_t tail = hashes.size() - tables.count;
    if (hashes.size() >= kMinTableSize && tail > std::max<size_t>(1024, tables.count / 8))
      tables.Build(hashes, uint32_t(hashes.size()));
  }
};

PdqIndex::PdqIndex() : impl_(std::make_unique<Impl>()) {}
PdqIndex::~PdqIndex() = default;
PdqIndex::PdqIndex(PdqIndex&&) noexcept = default;
PdqIndex& PdqIndex::operator=(PdqIndex&&) noexcept = default;

void PdqIndex::Build(std::vector<PdqHash> hashes) {
  impl_->hashes = std::move(hashes);
  impl_->tables.Build(impl_->hashes, uint32_t(impl_->hashes.size()));
}

uint32_t PdqIndex::Add(const PdqHash& h) {
  impl_->hashes.push_back(h);
  impl_->MaybeRebuild();
  return uint32_t(impl_->hashes.size() - 1);
}

size_t PdqIndex::size() const { return impl_->hashes.size(); }
const PdqHash& PdqIndex::hash(uint32_t index) const { return impl_->hashes[index]; }

size_t PdqIndex::MemoryBytes() const {
  return impl_->hashes.capacity() * sizeof(PdqHash) + impl_->tables.offsets.capacity() * 4 +
         impl_->tables.ids.capacity() * 4 +
         impl_->hashes.size() * 4 /* one query's visited stamps */;
}

void PdqIndex::Query(const PdqHash& q, int radius, std::vector<Neighbour>& out,
                     QueryScratch& scratch, Method method) const {
  out.clear();
  if (radius < 0) return;
  const auto& H = impl_->hashes;
  const Tables& T = impl_->tables;
  const int rs = SlotRadius(radius);
  // Probing enumerates sum_{k<=rs} C(16, k) keys per slot: beyond rs = 3 a
  // scan always wins, so even a forced kMultiIndex scans there.
  const bool mih = T.count > 0 && rs <= 3 &&
                   (method == Method::kMultiIndex ||
                    (method == Method::kAuto && rs <= 1 && T.count >= kMinTableSize));
  uint16_t dist[kBlock];
  size_t brute_from = 0;
  if (mih) {
    if (scratch.stamp_.size() < T.count) scratch.stamp_.resize(T.count, 0);
    if (++scratch.epoch_ == 0) {  // wrapped: forget every stamp
      std::fill(scratch.stamp_.begin(), scratch.stamp_.end(), 0);
      scratch.epoch_ = 1;
    }
    const uint32_t epoch = scratch.epoch_;
    auto probe = [&](int s, uint32_t key) {
      auto [b, e] = T.Bucket(s, key);
      for (const uint32_t* p = b; p < e; ++p) {
        const uint32_t id = *p;
        if (scratch.stamp_[id] == epoch) continue;
        scratch.stamp_[id] = epoch;
        const int d = HammingDistance(q, H[id]);
        if (d <= radius) out.push_back({id, uint16_t(d)});
      }
    };
    // Enumerate every key within rs bits of the query's slot value.
    for (int s = 0; s < kSlots; ++s) {
      const uint32_t key = q.words[s];
      probe(s, key);
      if (rs >= 1)
        for (int b1 = 0; b1 < 16; ++b1) {
          probe(s, key ^ (1u << b1));
          if (rs >= 2)
            for (int b2 = b1 + 1; b2 < 16; ++b2) {
              probe(s, key ^ (1u << b1) ^ (1u << b2));
              if (rs >= 3)
                for (int b3 = b2 + 1; b3 < 16; ++b3)
                  probe(s, key ^ (1u << b1) ^ (1u << b2) ^ (1u << b3));
            }
        }
    }
    brute_from = T.count;  // the tail not yet in the tables
  }
  for (size_t i = brute_from; i < H.size(); i += kBlock) {
    const size_t n = std::min(kBlock, H.size() - i);
    HammingDistances(q, &H[i], n, dist);
    for (size_t k = 0; k < n; ++k)
      if (dist[k] <= radius) out.push_back({uint32_t(i + k), dist[k]});
  }
  std::sort(out.begin(), out.end(),
            [](const Neighbour& a, const Neighbour& b) { return a.index < b.index; });
}

void PdqIndex::SelfJoin(int radius, int threads,
                        const std::function<void(uint32_t, uint32_t, int)>& emit,
                        Method method) const {
  if (radius < 0) return;
  const auto& H = impl_->hashes;
  const uint32_t n = uint32_t(H.size());
  const int rs = SlotRadius(radius);
  const bool mih =
      method == Method::kMultiIndex || (method == Method::kAuto && rs <= 1 && n >= kMinTableSize);
  threads = std::max(1, threads);
  std::mutex emit_mu;
  struct Pair {
    uint32_t a, b;
    uint16_t d;
  };

  auto flush = [&](std::vector<Pair>& found) {
    std::lock_guard lk(emit_mu);
    for (const Pair& p : found) emit(p.a, p.b, p.d);
    found.clear();
  };

  if (mih && rs <= 1) {
    // Per slot: a copy of the hashes in key order, so a bucket and its
    // one-bit neighbours are contiguous; compare within the bucket and with
    // each neighbour above it. A pair is reported only in the first slot in
    // which it qualifies, so no global set is needed to de-duplicate.
    RunWorkers(threads, [&](int t) {
      std::vector<PdqHash> sorted(n);
      std::vector<uint32_t> sid(n), off(kBuckets + 1);
      std::vector<uint16_t> dist;
      std::vector<Pair> found;
      for (int s = t; s < kSlots; s += threads) {
        std::fill(off.begin(), off.end(), 0);
        for (uint32_t i = 0; i < n; ++i) ++off[H[i].words[s] + 1];
        for (uint32_t b = 0; b < kBuckets; ++b) off[b + 1] += off[b];
        {
          std::vector<uint32_t> fill(off.begin(), off.end() - 1);
          for (uint32_t i = 0; i < n; ++i) {
            const uint32_t pos = fill[H[i].words[s]]++;
            sorted[pos] = H[i];
            sid[pos] = i;
          }
        }
        auto earlier_slot_qualifies = [&](const PdqHash& x, const PdqHash& y) {
          for (int e = 0; e < s; ++e)
            if (std::popcount(unsigned(x.words[e] ^ y.words[e])) <= rs) return true;
          return false;
        };
        auto compare = [&](uint32_t i, uint32_t from, uint32_t to) {
          if (from >= to) return;
          dist.resize(to - from);
          HammingDistances(sorted[i], &sorted[from], to - from, dist.data());
          for (uint32_t k = 0; k < to - from; ++k) {
            if (dist[k] > radius) continue;
            const uint32_t j = from + k;
            if (earlier_slot_qualifies(sorted[i], sorted[j])) continue;
            found.push_back({std::min(sid[i], sid[j]), std::max(sid[i], sid[j]), dist[k]});
          }
        };
        for (uint32_t b = 0; b < kBuckets; ++b) {
          const uint32_t lo = off[b], hi = off[b + 1];
          if (lo == hi) continue;
          for (uint32_t i = lo; i < hi; ++i) compare(i, i + 1, hi);
          if (rs >= 1)
            for (int bit = 0; bit < 16; ++bit) {
              const uint32_t nb = b ^ (1u << bit);
              if (nb < b) continue;
              for (uint32_t i = lo; i < hi; ++i) compare(i, off[nb], off[nb + 1]);
            }
          if (found.size() > 65536) flush(found);
        }
      }
      flush(found);
    });
  } else {
    // Brute force: row i against every later row, rows dealt round-robin.
    RunWorkers(threads, [&](int t) {
      std::vector<uint16_t> dist(kBlock);
      std::vector<Pair> found;
      for (uint32_t i = uint32_t(t); i < n; i += uint32_t(threads)) {
        for (uint32_t from = i + 1; from < n; from += kBlock) {
          const uint32_t len = std::min<uint32_t>(kBlock, n - from);
          HammingDistances(H[i], &H[from], len, dist.data());
          for (uint32_t k = 0; k < len; ++k)
            if (dist[k] <= radius) found.push_back({i, from + k, dist[k]});
        }
        if (found.size() > 65536) flush(found);
      }
      flush(found);
    });
  }
}

}  // namespace doppel

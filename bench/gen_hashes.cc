// Writes the speed benchmark's input for `doppel match-hashes`: N random PDQ
// hashes, P of which are planted near copies of others at distances 0..31
// (uniform), one "HEX,ID" line each; and the planted pairs as "ID_A,ID_B,D".
//   gen-hashes N P SEED HASHES_OUT PLANTED_OUT
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <vector>

#include "doppel/pdq.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: gen-hashes N PLANTED SEED HASHES_OUT PLANTED_OUT\n");
    return 2;
  }
  const long n = std::atol(argv[1]), planted = std::atol(argv[2]);
  if (n <= 0 || planted < 0 || 2 * planted > n) {
    std::fprintf(stderr, "gen-hashes: need N > 0 and 0 <= 2 * PLANTED <= N\n");
    return 2;
  }
  std::mt19937_64 rng(std::strtoull(argv[3], nullptr, 10));
  std::vector<doppel::PdqHash> hs(static_cast<size_t>(n));
  for (auto& h : hs)
    for (auto& w : h.words) w = uint16_t(rng());
  FILE* truth = std::fopen(argv[5], "w");
  if (!truth) return 1;
  // Hash 2k+1 is hash 2k with d random bits flipped, for the first PLANTED k;
  // then the order is shuffled so pairs are not neighbours in the file.
  std::vector<long> order(static_cast<size_t>(n));
  for (long i = 0; i < n; ++i) order[size_t(i)] = i;
  for (long k = 0; k < planted; ++k) {
    const int d = int(rng() % 32);
    doppel::PdqHash h = hs[size_t(2 * k)];
    std::set<int> bits;
    while (int(bits.size()) < d) bits.insert(int(rng() % 256));
    for (int b : bits) h.words[size_t(b >> 4)] ^= uint16_t(1u << (b & 15));
    hs[size_t(2 * k + 1)] = h;
  }
  std::shuffle(order.begin(), order.end(), rng);  // order[pos] = hash written at line pos
  std::vector<long> pos_of(static_cast<size_t>(n));
  for (long p = 0; p < n; ++p) pos_of[size_t(order[size_t(p)])] = p;
  FILE* out = std::fopen(argv[4], "w");
  if (!out) return 1;
  for (long p = 0; p < n; ++p)
    std::fprintf(out, "%s,h%ld\n", hs[size_t(order[size_t(p)])].ToHex().c_str(), p);
  for (long k = 0; k < planted; ++k) {
    long a = pos_of[size_t(2 * k)], b = pos_of[size_t(2 * k + 1)];
    if (a > b) std::swap(a, b);
    std::fprintf(truth, "h%ld,h%ld,%d\n", a, b,
                 doppel::HammingDistance(hs[size_t(2 * k)], hs[size_t(2 * k + 1)]));
  }
  return std::fclose(out) == 0 && std::fclose(truth) == 0 ? 0 : 1;
}

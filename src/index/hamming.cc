// Distance kernels: a POPCNT scalar loop and an AVX-512 VPOPCNTDQ one,
// chosen once at run time. tests/index_test.cc checks they agree.
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on _mm512_undefined
// inside inlined intrinsics (a known false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "doppel/index.h"

namespace doppel {
namespace {

// One body, compiled twice: with the POPCNT instruction and without (for
// CPUs older than x86-64-v2).
#define DOPPEL_SCALAR_BODY                                                                      \
  uint64_t qw[4];                                                                               \
  std::memcpy(qw, q.words.data(), 32);                                                          \
  for (size_t i = 0; i < n; ++i) {                                                              \
    uint64_t w[4];                                                                              \
    std::memcpy(w, h[i].words.data(), 32);                                                      \
    out[i] = uint16_t(__builtin_popcountll(w[0] ^ qw[0]) + __builtin_popcountll(w[1] ^ qw[1]) + \
                      __builtin_popcountll(w[2] ^ qw[2]) + __builtin_popcountll(w[3] ^ qw[3])); \
  }

void Generic(const PdqHash& q, const PdqHash* h, size_t n, uint16_t* out) { DOPPEL_SCALAR_BODY }

__attribute__((target("popcnt"))) void Scalar(const PdqHash& q, const PdqHash* h, size_t n,
                                              uint16_t* out) {
  DOPPEL_SCALAR_BODY
}

// Two hashes per 512-bit register: XOR, per-qword popcount, then fold the
// four qwords of each half into its lowest lane.
__attribute__((target("avx512f,avx512vpopcntdq"))) void Avx512(const PdqHash& q, const PdqHash* h,
                                                               size_t n, uint16_t* out) {
  const __m512i qq =
      _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.words.data())));
  size_t i = 0;
  for (; i + 2 <= n; i += 2) {
    __m512i c = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(h + i), qq));
    c = _mm512_add_epi64(c, _mm512_shuffle_epi32(c, _MM_PERM_BADC));  // q0+q1, q2+q3 per 128 bits
    c = _mm512_add_epi64(
        c, _mm512_shuffle_i64x2(c, c, _MM_SHUFFLE(2, 3, 0, 1)));  // + the other 128 bits
    out[i] = uint16_t(_mm_cvtsi128_si32(_mm512_castsi512_si128(c)));
    out[i + 1] = uint16_t(_mm_cvtsi128_si32(_mm512_extracti32x4_epi32(c, 2)));
  }
  if (i < n) Scalar(q, h + i, n - i, out + i);
}

using Kernel = void (*)(const PdqHash&, const PdqHash*, size_t, uint16_t*);

Kernel Pick() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq")) return Avx512;
  if (__builtin_cpu_supports("popcnt")) return Scalar;
  return Generic;
}

const Kernel kKernel = Pick();

}  // namespace

void HammingDistances(const PdqHash& q, const PdqHash* hashes, size_t n, uint16_t* out) {
  kKernel(q, hashes, n, out);
}
std::vector<HammingKernel> HammingKernels() {
  __builtin_cpu_init();
  const bool avx512 =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
  return {{"avx512-vpopcntdq", Avx512, avx512, kKernel == Avx512},
          {"popcnt", Scalar, bool(__builtin_cpu_supports("popcnt")), kKernel == Scalar},
          {"generic", Generic, true, kKernel == Generic}};
}

}  // namespace doppel

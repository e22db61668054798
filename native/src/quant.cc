// Kernel family 'quant': matmul with weight-only quantized matrices (int8 per output channel, 4-bit in groups with a
// scale and zero point each; the layout is QuantWeight in src/core/kernels.ts) and its N-API entry point.
// Decoding (batch 1 or a few rows): a GEMV threaded over output channels that decodes each weight in registers,
// so a token reads 1 or ½ byte per weight instead of 4 — decoding is bound by memory bandwidth, so that is the gain.
// Prefill, training and the input gradient (many rows): blocks of rows of W are decoded into an fp32 tile and
// multiplied by the fp32 GEMM (gemm.cc), so the arithmetic runs at GEMM speed and W is never expanded whole.
// Where the CPU has AVX-512 VNNI, decoding rounds the activations to int8 per 64 inputs and multiplies with vpdpbusd
// (below): with fp32 FMAs the GEMV was compute-bound, not bandwidth-bound, at batch 1. Not here: quantizing (TypeScript).
#include <omp.h>
#include <algorithm>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "checks.h"
#include "napi_util.h"
#include "simd.h"
#include "threads.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMF_X86 1
#endif

namespace lmf {

// gemm.cc: C (+)= op(A)·op(B), contiguous, batched.
void sgemmBatched(const float* a, const float* b, float* c, int64_t batch, int64_t M, int64_t N, int64_t K,
                  bool transA, bool transB, int64_t aBatchStride, int64_t bBatchStride, bool accumulate);

namespace {

struct QW {
  const uint8_t* q;
  const float* s;
  const float* z;  // null for int8
  int64_t N, K, G;
  int bits;
  int64_t groups() const { return K / G; }
};

// ---- portable bodies ----

// Row n of W decoded into dst (K floats).
void decodeRowGeneric(const QW& w, int64_t n, float* dst) {
  if (w.bits == 8) {
    const int8_t* q = reinterpret_cast<const int8_t*>(w.q) + n * w.K;
    const float s = w.s[n];
    for (int64_t k = 0; k < w.K; k++) dst[k] = s * static_cast<float>(q[k]);
    return;
  }
  const uint8_t* q = w.q + n * w.K / 2;
  for (int64_t b = 0; b < w.K / 32; b++) {
    const int64_t g = n * w.groups() + (b * 32) / w.G;
    const float s = w.s[g], z = w.z[g];
    for (int i = 0; i < 16; i++) {
      const uint8_t v = q[b * 16 + i];
      dst[b * 32 + i] = s * (static_cast<float>(v & 15) - z);
      dst[b * 32 + 16 + i] = s * (static_cast<float>(v >> 4) - z);
    }
  }
}

// Σ_k x[k]·q[k] over int8 codes (the scale is applied by the caller).
float dotI8Generic(const float* x, const int8_t* q, int64_t K) {
  float acc = 0.f;
  for (int64_t k = 0; k < K; k++) acc += x[k] * static_cast<float>(q[k]);
  return acc;
}

// Σ_k x[k]·q[k] over `len` 4-bit codes (len a multiple of 32) starting at packed byte q.
float dotU4Generic(const float* x, const uint8_t* q, int64_t len) {
  float acc = 0.f;
  for (int64_t b = 0; b < len / 32; b++)
    for (int i = 0; i < 16; i++) {
      const uint8_t v = q[b * 16 + i];
      acc += x[b * 32 + i] * static_cast<float>(v & 15) + x[b * 32 + 16 + i] * static_cast<float>(v >> 4);
    }
  return acc;
}

// One output of a 4-bit row: Σ_g s_g·(Σ_{k∈g} q_k x_k − z_g·Σ_{k∈g} x_k), with the group sums of x given.
float rowU4Generic(const float* x, const uint8_t* q, const float* s, const float* z, const float* xsum, int64_t NG, int64_t G) {
  float acc = 0.f;
  for (int64_t g = 0; g < NG; g++) acc += s[g] * (dotU4Generic(x + g * G, q + g * G / 2, G) - z[g] * xsum[g]);
  return acc;
}

#ifdef LMF_X86
// ---- AVX-512 bodies: 16 codes widen to 16 int32 lanes, convert to float, one FMA with x ----
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")

float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

float dotI8Avx512(const float* x, const int8_t* q, int64_t K) {
  __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 64 <= K; k += 64) {
    const __m512i v = _mm512_loadu_si512(q + k);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_castsi512_si128(v))), a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 16), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 1))), a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 32), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 2))), a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k + 48), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm512_extracti32x4_epi32(v, 3))), a3);
  }
  for (; k + 16 <= K; k += 16)
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + k), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k)))), a0);
  float acc = hsum512(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  for (; k < K; k++) acc += x[k] * static_cast<float>(q[k]);
  return acc;
}

// The low and high nibbles of 16 bytes as two vectors of 16 floats (k = i and k = 16 + i of the block).
static inline __attribute__((always_inline)) void unpackU4(const uint8_t* q, __m512* lo, __m512* hi) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
  const __m128i m = _mm_set1_epi8(15);
  *lo = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(v, m)));
  *hi = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m)));
}


// As rowU4Generic, with each group's products kept in a vector, scaled and summed there: one horizontal sum per row.
float rowU4Avx512(const float* x, const uint8_t* q, const float* s, const float* z, const float* xsum, int64_t NG, int64_t G) {
  __m512 tot0 = _mm512_setzero_ps(), tot1 = _mm512_setzero_ps();
  float corr = 0.f;
  for (int64_t g = 0; g < NG; g++) {
    const float* xg = x + g * G;
    const uint8_t* qg = q + g * G / 2;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t b = 0; b < G / 32; b++) {
      __m512 lo, hi;
      unpackU4(qg + b * 16, &lo, &hi);
      a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xg + b * 32), lo, a0);
      a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xg + b * 32 + 16), hi, a1);
    }
    const __m512 sg = _mm512_set1_ps(s[g]);
    tot0 = _mm512_fmadd_ps(sg, a0, tot0);
    tot1 = _mm512_fmadd_ps(sg, a1, tot1);
    corr += s[g] * z[g] * xsum[g];
  }
  return hsum512(_mm512_add_ps(tot0, tot1)) - corr;
}

void decodeRowAvx512(const QW& w, int64_t n, float* dst) {
  if (w.bits == 8) {
    const int8_t* q = reinterpret_cast<const int8_t*>(w.q) + n * w.K;
    const __m512 s = _mm512_set1_ps(w.s[n]);
    int64_t k = 0;
    for (; k + 16 <= w.K; k += 16)
      _mm512_storeu_ps(dst + k, _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + k))))));
    for (; k < w.K; k++) dst[k] = w.s[n] * static_cast<float>(q[k]);
    return;
  }
  const uint8_t* q = w.q + n * w.K / 2;
  for (int64_t b = 0; b < w.K / 32; b++) {
    const int64_t g = n * w.groups() + (b * 32) / w.G;
    const __m512 s = _mm512_set1_ps(w.s[g]), z = _mm512_set1_ps(w.z[g]);
    __m512 lo, hi;
    unpackU4(q + b * 16, &lo, &hi);
    _mm512_storeu_ps(dst + b * 32, _mm512_mul_ps(s, _mm512_sub_ps(lo, z)));
    _mm512_storeu_ps(dst + b * 32 + 16, _mm512_mul_ps(s, _mm512_sub_ps(hi, z)));
  }
}

#pragma GCC pop_options

// ---- AVX-512 VNNI bodies (decoding): activations rounded to int8 per block of 64 inputs, so that one vpdpbusd
// multiplies 64 weights by 64 activations and sums them in fours into 16 int32 lanes. On a CPU shared with other
// work the float path is compute-bound (widen, convert, FMA per 16 weights: ~16 instructions per 64 weights); this
// is ~5 (int8) or ~8 (4-bit) per 64. The cost is rounding each activation to 1/254 of its block's largest.
// Rows of W follow each other in memory: fetching 4 KiB ahead keeps loads in flight while a row is summed (the
// hardware prefetcher alone left the GEMV at ~2 GB/s on a busy machine).
constexpr int64_t kPrefetchBytes = 4096;

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,prefer-vector-width=512")

// One int8-weight row: s_n·(Σ_b sx_b·Σ_{k∈b} (q_k + 128)·xq_k − corr), corr = 128·Σ_b sx_b·Σ_{k∈b} xq_k (per x row).
float rowI8Vnni(const int8_t* xq, const float* sx, float corr, const int8_t* q, int64_t K, float s) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 tot = _mm512_setzero_ps();
  for (int64_t b = 0; b < K / 64; b++) {
    _mm_prefetch(reinterpret_cast<const char*>(q + b * 64 + kPrefetchBytes), _MM_HINT_T0);
    const __m512i w = _mm512_xor_si512(_mm512_loadu_si512(q + b * 64), flip);  // int8 → unsigned code + 128
    const __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, _mm512_loadu_si512(xq + b * 64));
    tot = _mm512_fmadd_ps(_mm512_set1_ps(sx[b]), _mm512_cvtepi32_ps(acc), tot);
  }
  return s * (_mm512_reduce_add_ps(tot) - corr);
}

// 4-bit rows, R at a time: y_r = Σ_b f_rb·(Σ_{k∈b} q_k·xq_k) − Σ_b f_rb·z_g·Σ_{k∈b} xq_k with f_rb = s_rg·sx_b, g the
// group of block b. xq is permuted per 64 to the order in which a 32-byte load's low then high nibbles come: k 0..15,
// 32..47, 16..31, 48..63. The 32 bytes are broadcast to both halves of a register and masked with 0x0F (low half)
// and 0xF0 (high half), so the high nibbles are never shifted: their lanes sum 16·q·xq, which one ×1/16 per lane
// undoes at the end (exact: a power of two). Per 64 weights: one and, one vpdpbusd, one convert and one FMA whose
// factor f_rb is broadcast from memory; R rows share each activation load and hide the FMA chain's latency.
// The f_rb and the zero-point term are formed 16 blocks at a time in vectors before the main loop.
constexpr int64_t kU4Chunk = 64;  // blocks per pass (4096 inputs): f's buffer size

template <int R>
static inline __attribute__((always_inline)) void rowsU4Vnni(const int8_t* xq, const float* sx, const float* xsf, const uint8_t* q,
                                                             const float* s, const float* z, int64_t K, int64_t G, float* y) {
  const int64_t NB = K / 64, NG = K / G, gb = G / 64, rowBytes = K / 2;
  const __m512i mask = _mm512_inserti64x4(_mm512_set1_epi8(15), _mm256_set1_epi8(static_cast<char>(0xf0)), 1);
  alignas(64) float f[R][kU4Chunk];
  __m512 tot[R], corr[R];
  for (int r = 0; r < R; r++) tot[r] = corr[r] = _mm512_setzero_ps();
  for (int64_t c0 = 0; c0 < NB; c0 += kU4Chunk) {
    const int64_t c1 = std::min(NB, c0 + kU4Chunk);
    for (int64_t b0 = c0; b0 < c1; b0 += 16) {
      const __mmask16 mk = c1 - b0 >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << (c1 - b0)) - 1);
      const __m512 sxv = _mm512_maskz_loadu_ps(mk, sx + b0), xsv = _mm512_maskz_loadu_ps(mk, xsf + b0);
      for (int r = 0; r < R; r++) {
        const float* sr = s + r * NG;
        const float* zr = z + r * NG;
        __m512 sv, zv;
        if (gb == 1) {
          sv = _mm512_maskz_loadu_ps(mk, sr + b0);
          zv = _mm512_maskz_loadu_ps(mk, zr + b0);
        } else {  // groups of several blocks: each block's group scale and zero
          alignas(64) float st[16] = {0}, zt[16] = {0};
          for (int64_t i = 0; i < std::min<int64_t>(16, c1 - b0); i++) st[i] = sr[(b0 + i) / gb], zt[i] = zr[(b0 + i) / gb];
          sv = _mm512_load_ps(st);
          zv = _mm512_load_ps(zt);
        }
        const __m512 fv = _mm512_mul_ps(sv, sxv);
        _mm512_store_ps(f[r] + (b0 - c0), fv);
        corr[r] = _mm512_fmadd_ps(_mm512_mul_ps(fv, zv), xsv, corr[r]);
      }
    }
    for (int64_t b = c0; b < c1; b++) {
      const __m512i xv = _mm512_loadu_si512(xq + b * 64);
      if ((b & 1) == 0)
        for (int r = 0; r < R; r++) _mm_prefetch(reinterpret_cast<const char*>(q + r * rowBytes + b * 32 + kPrefetchBytes), _MM_HINT_T0);
      for (int r = 0; r < R; r++) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + r * rowBytes + b * 32));
        const __m512i w = _mm512_and_si512(_mm512_broadcast_i64x4(v), mask);
        const __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, xv);
        tot[r] = _mm512_fmadd_ps(_mm512_set1_ps(f[r][b - c0]), _mm512_cvtepi32_ps(acc), tot[r]);
      }
    }
  }
  const __m512 lanes = _mm512_insertf32x8(_mm512_set1_ps(1.f), _mm256_set1_ps(1.f / 16.f), 1);
  for (int r = 0; r < R; r++) y[r] = _mm512_reduce_add_ps(_mm512_fmsub_ps(tot[r], lanes, corr[r]));
}

// Rows [n0, n1) of a 4-bit W against one quantized activation row: 8 at a time, then the rest one by one.
void rangeU4Vnni(const int8_t* xq, const float* sx, const float* xsf, const uint8_t* q, const float* s, const float* z, int64_t K, int64_t G,
                 int64_t n0, int64_t n1, float* y) {
  const int64_t NG = K / G, rowBytes = K / 2;
  int64_t n = n0;
  for (; n + 8 <= n1; n += 8) rowsU4Vnni<8>(xq, sx, xsf, q + n * rowBytes, s + n * NG, z + n * NG, K, G, y + n);
  for (; n < n1; n++) rowsU4Vnni<1>(xq, sx, xsf, q + n * rowBytes, s + n * NG, z + n * NG, K, G, y + n);
}

// Rounds x (K floats) to int8 per block of 64: scale sx_b = max|x|/127, xq = round(x/sx_b) (to nearest, ties to
// even, as std::nearbyint in the default rounding mode), xs_b = Σ xq over the block. nibbleOrder stores each 64 as
// rowU4 reads them (inputs 0..15, 32..47, 16..31, 48..63).
void quantizeActivations(const float* x, int64_t K, bool nibbleOrder, int8_t* xq, float* sx, int32_t* xs) {
  const __m512 absMask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t b = 0; b < K / 64; b++) {
    const float* xb = x + b * 64;
    __m512 v[4];
    __m512 amax = _mm512_setzero_ps();
    for (int i = 0; i < 4; i++) {
      v[i] = _mm512_loadu_ps(xb + 16 * i);
      amax = _mm512_max_ps(amax, _mm512_and_ps(v[i], absMask));
    }
    const float a = _mm512_reduce_max_ps(amax);
    const __m512 inv = _mm512_set1_ps(a > 0.f ? 127.f / a : 0.f);
    const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
    __m512i sum = _mm512_setzero_si512();
    for (int i = 0; i < 4; i++) {
      const int src = nibbleOrder && (i == 1 || i == 2) ? 3 - i : i;
      // cvtps rounds by MXCSR: to nearest even, as nearbyint.
      const __m512i c = _mm512_min_epi32(hi, _mm512_max_epi32(lo, _mm512_cvtps_epi32(_mm512_mul_ps(v[src], inv))));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + b * 64 + 16 * i), _mm512_cvtepi32_epi8(c));
      sum = _mm512_add_epi32(sum, c);
    }
    sx[b] = a / 127.f;
    xs[b] = _mm512_reduce_add_epi32(sum);
  }
}

#pragma GCC pop_options
#endif

struct Bodies {
  void (*decodeRow)(const QW&, int64_t, float*);
  float (*dotI8)(const float*, const int8_t*, int64_t);
  float (*rowU4)(const float*, const uint8_t*, const float*, const float*, const float*, int64_t, int64_t);
};

const Bodies& bodies() {
  static const Bodies generic{decodeRowGeneric, dotI8Generic, rowU4Generic};
#ifdef LMF_X86
  static const Bodies avx512{decodeRowAvx512, dotI8Avx512, rowU4Avx512};
  if (cpuIsa() == Isa::Avx512) return avx512;
#endif
  return generic;
}

// Rows at most this many take the GEMV path (each weight row, once in L1, serves every x row).
constexpr int64_t kGemvRows = 8;

// Runs rows(n0, n1) over the output channels [0, N) on the threads the policy allows, ~16 KiB of weights a chunk at least.
template <class F>
void splitRows(const QW& w, F&& rows) {
  const int64_t N = w.N;
  const int64_t minRows = std::max<int64_t>(1, (int64_t{16} << 10) / std::max<int64_t>(1, w.bits * w.K / 8));
  // Threads split the rows in dynamically handed-out chunks. The region is timed (RegionClock) like GEMM's, so that
  // on a busy machine the thread policy learns that workers join late and runs decoding on one thread for a while
  // (threads.h): a decode step is ~50 such regions, each otherwise waiting a scheduler slice for a descheduled worker.
  const int64_t want = N / minRows;
  const int nt = want < 2 || omp_in_parallel() ? 1 : static_cast<int>(std::min<int64_t>(threadPolicy().cap(), want));
  if (nt <= 1) {
    rows(0, N);
    return;
  }
  const int64_t chunks = std::min<int64_t>(want, int64_t{8} * nt);
  RegionClock region;
#pragma omp parallel num_threads(nt)
  {
    region.arrive();
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; c++) rows(N * c / chunks, N * (c + 1) / chunks);
  }
  region.finish();
}


// When decoding uses int8 activations (VNNI): 'off', 'decode' (rows ≤ kGemvRows; the default where the CPU has
// avx512vnni) or 'all' (every forward, to measure what the rounding costs on a whole evaluation).
enum class VnniMode : int { Off = 0, Decode = 1, All = 2 };
VnniMode& vnniMode() {
  static VnniMode mode = [] {
#ifdef LMF_X86
    __builtin_cpu_init();
    if (cpuIsa() != Isa::Avx512 || !__builtin_cpu_supports("avx512vnni")) return VnniMode::Off;
    const char* e = std::getenv("LMFORGE_QUANT_VNNI");
    if (e && std::strcmp(e, "off") == 0) return VnniMode::Off;
    if (e && std::strcmp(e, "all") == 0) return VnniMode::All;
    return VnniMode::Decode;
#else
    return VnniMode::Off;
#endif
  }();
  return mode;
}

bool vnniApplies(const QW& w) { return w.K % 64 == 0 && (w.bits == 8 || w.G % 64 == 0); }

#ifdef LMF_X86
// y (M, N) = x (M, K)·Wᵀ with int8 activations: x rounded per row and block of 64 (scale = block max / 127), then
// the same row split over threads as gemv().
void gemvVnni(const QW& w, const float* x, float* y, int64_t M) {
  const int64_t K = w.K, N = w.N, NB = K / 64;
  std::vector<int8_t> xq(M * K);
  std::vector<float> sx(M * NB), xsf(M * NB), corr(M, 0.f);
  std::vector<int32_t> xs(M * NB);
  for (int64_t m = 0; m < M; m++) {
    quantizeActivations(x + m * K, K, w.bits == 4, xq.data() + m * K, sx.data() + m * NB, xs.data() + m * NB);
    for (int64_t b = 0; b < NB; b++) {
      xsf[m * NB + b] = static_cast<float>(xs[m * NB + b]);
      corr[m] += 128.f * sx[m * NB + b] * xsf[m * NB + b];
    }
  }
  auto rows = [&](int64_t n0, int64_t n1) {
    if (w.bits == 8) {
      for (int64_t n = n0; n < n1; n++)
        for (int64_t m = 0; m < M; m++)
          y[m * N + n] = rowI8Vnni(xq.data() + m * K, sx.data() + m * NB, corr[m], reinterpret_cast<const int8_t*>(w.q) + n * K, K, w.s[n]);
      return;
    }
    // Slabs of 8 rows, each against every activation row while its weights are in L1.
    for (int64_t s0 = n0; s0 < n1; s0 += 8)
      for (int64_t m = 0; m < M; m++)
        rangeU4Vnni(xq.data() + m * K, sx.data() + m * NB, xsf.data() + m * NB, w.q, w.s, w.z, K, w.G, s0, std::min(n1, s0 + 8), y + m * N);
  };
  splitRows(w, rows);
}
#endif

// y (M, N) = x (M, K)·Wᵀ for few rows: threads split the output channels; each decodes its rows in registers.
void gemv(const Bodies& f, const QW& w, const float* x, float* y, int64_t M) {
  const int64_t K = w.K, N = w.N, NG = w.groups();
  // 4-bit: Σ_k s(q_k − z)x_k = s·(Σ_k q_k x_k − z·Σ_k x_k), with Σ_k x_k per group computed once here.
  std::vector<float> xsum(w.bits == 4 ? M * NG : 0);
  if (w.bits == 4)
    for (int64_t m = 0; m < M; m++)
      for (int64_t g = 0; g < NG; g++) {
        float s = 0.f;
        for (int64_t k = g * w.G; k < (g + 1) * w.G; k++) s += x[m * K + k];
        xsum[m * NG + g] = s;
      }
  auto rows = [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++) {
      if (w.bits == 8) {
        const int8_t* q = reinterpret_cast<const int8_t*>(w.q) + n * K;
        for (int64_t m = 0; m < M; m++) y[m * N + n] = w.s[n] * f.dotI8(x + m * K, q, K);
        continue;
      }
      for (int64_t m = 0; m < M; m++) y[m * N + n] = f.rowU4(x + m * K, w.q + n * K / 2, w.s + n * NG, w.z + n * NG, xsum.data() + m * NG, NG, w.G);
    }
  };
  splitRows(w, rows);
}

// Rows of W per decoded tile: about 1 MiB of fp32, at least 16 rows.
int64_t tileRows(const QW& w) { return std::min<int64_t>(w.N, std::max<int64_t>(16, (int64_t{1} << 18) / w.K)); }

void decodeTile(const Bodies& f, const QW& w, int64_t n0, int64_t nb, float* tile) {
  parallelFor(nb, 4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) f.decodeRow(w, n0 + i, tile + i * w.K);
  });
}

// y (M, N) = x (M, K)·Wᵀ for many rows: W decoded tile by tile, each tile through the fp32 GEMM.
void forwardTiled(const Bodies& f, const QW& w, const float* x, float* y, int64_t M) {
  const int64_t nbMax = tileRows(w);
  std::vector<float> tile(nbMax * w.K), part(M * nbMax);
  for (int64_t n0 = 0; n0 < w.N; n0 += nbMax) {
    const int64_t nb = std::min(nbMax, w.N - n0);
    decodeTile(f, w, n0, nb, tile.data());
    sgemmBatched(x, tile.data(), part.data(), 1, M, nb, w.K, false, true, 0, 0, false);  // (M, nb)
    for (int64_t m = 0; m < M; m++) std::memcpy(y + m * w.N + n0, part.data() + m * nb, sizeof(float) * nb);
  }
}

// y (M, K) = g (M, N)·W: the input gradient, accumulated tile by tile.
void backwardTiled(const Bodies& f, const QW& w, const float* g, float* y, int64_t M) {
  const int64_t nbMax = tileRows(w);
  std::vector<float> tile(nbMax * w.K), part(M * nbMax);
  for (int64_t n0 = 0; n0 < w.N; n0 += nbMax) {
    const int64_t nb = std::min(nbMax, w.N - n0);
    decodeTile(f, w, n0, nb, tile.data());
    for (int64_t m = 0; m < M; m++) std::memcpy(part.data() + m * nb, g + m * w.N + n0, sizeof(float) * nb);
    sgemmBatched(part.data(), tile.data(), y, 1, M, w.K, nb, false, false, 0, 0, n0 > 0);
  }
}

// quantMatmul(x, xOffset, q, scales, zeros|null, y, M, N, K, bits, groupSize, trans)
napi_value quantMatmul(napi_env env, napi_callback_info info) {
  Args a(env, info, "quantMatmul", 12);
  size_t xLen, qLen, sLen, zLen, yLen;
  float* x = f32Arg(a, 0, "x", &xLen);
  const int64_t xOff = count(a, 1, "xOffset");
  const uint8_t* q = static_cast<const uint8_t*>(typedArg(a, 2, "q", napi_uint8_array, "Uint8Array", &qLen, false));
  const float* s = f32Arg(a, 3, "scales", &sLen);
  const float* z = f32Arg(a, 4, "zeros", &zLen, true);
  float* y = f32Arg(a, 5, "y", &yLen);
  const int64_t M = count(a, 6, "M"), N = count(a, 7, "N"), K = count(a, 8, "K"), bits = count(a, 9, "bits");
  const int64_t G = count(a, 10, "groupSize");
  const bool trans = a.boolean(11);
  if (a.failed) return nullptr;
  if (bits != 8 && bits != 4) { a.fail("bits: expected 8 or 4"); return nullptr; }
  if (bits == 8 && G != K) { a.fail("groupSize: expected K for int8 (one scale per output channel)"); return nullptr; }
  if (bits == 4 && (G < 32 || G % 32 != 0 || K % G != 0)) { a.fail("groupSize: expected a multiple of 32 that divides K"); return nullptr; }
  if (bits == 4 && !z) { a.fail("zeros: expected a Float32Array for 4-bit weights"); return nullptr; }
  const int64_t inner = trans ? N : K, outer = trans ? K : N;
  if (!needLength(a, "x", xLen, xOff + satMul(M, inner), "xOffset + M·inner")) return nullptr;
  if (!needLength(a, "y", yLen, satMul(M, outer), "M·outer")) return nullptr;
  if (!needLength(a, "q", qLen, bits == 8 ? satMul(N, K) : satMul(N, K) / 2, "N·K·bits/8")) return nullptr;
  if (!needLength(a, "scales", sLen, satMul(N, K / std::max<int64_t>(G, 1)), "N·K/groupSize")) return nullptr;
  if (bits == 4 && !needLength(a, "zeros", zLen, satMul(N, K / G), "N·K/groupSize")) return nullptr;
  if (M == 0 || N == 0 || K == 0) {
    std::fill(y, y + M * outer, 0.f);
    return a.undefined();
  }
  const QW w{q, s, bits == 4 ? z : nullptr, N, K, G, static_cast<int>(bits)};
  const Bodies& f = bodies();
  if (trans) backwardTiled(f, w, x + xOff, y, M);
#ifdef LMF_X86
  else if (vnniMode() != VnniMode::Off && vnniApplies(w) && (M <= kGemvRows || vnniMode() == VnniMode::All)) gemvVnni(w, x + xOff, y, M);
#endif
  else if (M <= kGemvRows) gemv(f, w, x + xOff, y, M);
  else forwardTiled(f, w, x + xOff, y, M);
  return a.undefined();
}

// quantVnni(mode?): the int8-activation mode in use ('off' | 'decode' | 'all'); with a mode, switches to it (tests;
// 'decode' and 'all' only where the CPU has avx512vnni).
napi_value quantVnni(napi_env env, napi_callback_info info) {
  Args a(env, info, "quantVnni", 0);
  static const char* names[] = {"off", "decode", "all"};
  if (a.argc >= 1) {
    char buf[16] = {0};
    size_t len = 0;
    if (napi_get_value_string_utf8(env, a.argv[0], buf, sizeof buf, &len) != napi_ok) { a.fail("mode: expected 'off', 'decode' or 'all'"); return nullptr; }
    int want = -1;
    for (int i = 0; i < 3; i++) if (std::strcmp(buf, names[i]) == 0) want = i;
    if (want < 0) { a.fail("mode: expected 'off', 'decode' or 'all'"); return nullptr; }
#ifdef LMF_X86
    const bool can = cpuIsa() == Isa::Avx512 && __builtin_cpu_supports("avx512vnni");
#else
    const bool can = false;
#endif
    if (want != 0 && !can) { a.fail("mode: this CPU has no AVX-512 VNNI"); return nullptr; }
    vnniMode() = static_cast<VnniMode>(want);
  }
  napi_value r;
  napi_create_string_utf8(env, names[static_cast<int>(vnniMode())], NAPI_AUTO_LENGTH, &r);
  return r;
}

}  // namespace

void registerQuant(napi_env env, napi_value exports) {
  defineFunction(env, exports, "quantMatmul", quantMatmul);
  defineFunction(env, exports, "quantVnni", quantVnni);
}

}  // namespace lmf

// Kernel family 'retrieval': exact maximum-inner-product search. ipTopK scores M queries against N passage vectors
// (both row-major fp32, dimension D) and keeps the k best passages per query, without ever holding the M×N score
// matrix: threads take chunks of passages, score them in register tiles of 4 passages × 4 queries (each passage
// row read from memory once per 4 queries; a GEMV when M = 1, a GEMM-like tile otherwise) and push each score into
// a per-thread, per-query min-heap; the heaps are merged at the end. Ties rank the lower passage number first,
// as the TypeScript reference (src/retrieval/topk.ts). Not an approximate index and not the encoder.
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
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
namespace {

// A bounded min-heap of (score, index): the root is the worst kept entry.
struct Heap {
  int k = 0, n = 0;
  float* s = nullptr;
  int32_t* i = nullptr;
  static bool worse(float sa, int32_t ia, float sb, int32_t ib) { return sa < sb || (sa == sb && ia > ib); }
  float threshold() const { return n < k ? -std::numeric_limits<float>::infinity() : s[0]; }
  void push(float score, int32_t index) {
    if (k == 0 || std::isnan(score)) return;
    if (n < k) {
      int c = n++;
      while (c > 0) {
        const int p = (c - 1) >> 1;
        if (!worse(score, index, s[p], i[p])) break;
        s[c] = s[p]; i[c] = i[p]; c = p;
      }
      s[c] = score; i[c] = index;
      return;
    }
    if (!worse(s[0], i[0], score, index)) return;
    int c = 0;
    for (;;) {
      const int l = 2 * c + 1;
      if (l >= n) break;
      const int r = l + 1;
      const int m = r < n && worse(s[r], i[r], s[l], i[l]) ? r : l;
      if (!worse(s[m], i[m], score, index)) break;
      s[c] = s[m]; i[c] = i[m]; c = m;
    }
    s[c] = score; i[c] = index;
  }
};

// Scores passages [n0, n1) against queries [m0, m0 + mb) (mb ≤ 4) into out[(m − m0) · ldo + (n − n0)].
using ScoreTile = void (*)(const float* P, const float* Q, int64_t D, int64_t n0, int64_t n1, int64_t m0, int mb, float* out, int64_t ldo);

void scoreGeneric(const float* P, const float* Q, int64_t D, int64_t n0, int64_t n1, int64_t m0, int mb, float* out, int64_t ldo) {
  for (int64_t n = n0; n < n1; n++) {
    const float* p = P + n * D;
    for (int j = 0; j < mb; j++) {
      const float* q = Q + (m0 + j) * D;
      float acc = 0.f;
      for (int64_t d = 0; d < D; d++) acc += p[d] * q[d];
      out[j * ldo + (n - n0)] = acc;
    }
  }
}

#ifdef LMF_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")

// One query (a GEMV): 8 passages per step share each load of the query; the passage rows stream from memory once.
void scoreOneAvx512(const float* P, const float* q, int64_t D, int64_t n0, int64_t n1, float* out) {
  const int64_t Dv = D & ~int64_t{15};
  const __mmask16 tail = static_cast<__mmask16>((1u << (D - Dv)) - 1u);
  int64_t n = n0;
  for (; n + 8 <= n1; n += 8) {
    __m512 acc[8];
    for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
    const float* p = P + n * D;
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 mask = d < Dv ? static_cast<__mmask16>(0xFFFF) : tail;
      const __m512 qv = _mm512_maskz_loadu_ps(mask, q + d);
      for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, p + r * D + d), qv, acc[r]);
    }
    for (int r = 0; r < 8; r++) out[n + r - n0] = _mm512_reduce_add_ps(acc[r]);
  }
  for (; n < n1; n++) {
    __m512 acc = _mm512_setzero_ps();
    const float* p = P + n * D;
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 mask = d < Dv ? static_cast<__mmask16>(0xFFFF) : tail;
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, p + d), _mm512_maskz_loadu_ps(mask, q + d), acc);
    }
    out[n - n0] = _mm512_reduce_add_ps(acc);
  }
}

// 4 passages × mb queries per register tile: 16 accumulators, 8 loads per 16 FMAs (D in steps of 16, a masked tail).
void scoreAvx512(const float* P, const float* Q, int64_t D, int64_t n0, int64_t n1, int64_t m0, int mb, float* out, int64_t ldo) {
  if (mb == 1) {
    scoreOneAvx512(P, Q + m0 * D, D, n0, n1, out);
    return;
  }
  const float* q0 = Q + m0 * D;
  const float* qj[4];
  for (int j = 0; j < 4; j++) qj[j] = q0 + std::min(j, mb - 1) * D;  // unused query slots repeat the last (ignored)
  const int64_t Dv = D & ~int64_t{15};
  const __mmask16 tail = static_cast<__mmask16>((1u << (D - Dv)) - 1u);
  int64_t n = n0;
  for (; n + 4 <= n1; n += 4) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < 4; j++) acc[r][j] = _mm512_setzero_ps();
    const float* p = P + n * D;
    auto step = [&](int64_t d, __mmask16 mask) {
      __m512 pv[4], qv[4];
      for (int r = 0; r < 4; r++) pv[r] = _mm512_maskz_loadu_ps(mask, p + r * D + d);
      for (int j = 0; j < 4; j++) qv[j] = _mm512_maskz_loadu_ps(mask, qj[j] + d);
      for (int r = 0; r < 4; r++)
        for (int j = 0; j < 4; j++) acc[r][j] = _mm512_fmadd_ps(pv[r], qv[j], acc[r][j]);
    };
    for (int64_t d = 0; d < Dv; d += 16) step(d, 0xFFFF);
    if (tail) step(Dv, tail);
    for (int j = 0; j < mb; j++)
      for (int r = 0; r < 4; r++) out[j * ldo + (n + r - n0)] = _mm512_reduce_add_ps(acc[r][j]);
  }
  for (; n < n1; n++) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const float* p = P + n * D;
    for (int64_t d = 0; d < D; d += 16) {
      const __mmask16 mask = d < Dv ? static_cast<__mmask16>(0xFFFF) : tail;
      const __m512 pv = _mm512_maskz_loadu_ps(mask, p + d);
      for (int j = 0; j < 4; j++) acc[j] = _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(mask, qj[j] + d), acc[j]);
    }
    for (int j = 0; j < mb; j++) out[j * ldo + (n - n0)] = _mm512_reduce_add_ps(acc[j]);
  }
}

#pragma GCC pop_options
#endif

ScoreTile pickScore() {
#ifdef LMF_X86
  if (cpuIsa() == Isa::Avx512) return scoreAvx512;
#endif
  return scoreGeneric;
}

// Passages scored per block: 256 scores × 4 queries stay in L1 while the heaps take them.
constexpr int64_t kBlock = 256;

void ipTopKImpl(const float* P, int64_t N, int64_t D, const float* Q, int64_t M, int k, int32_t* outIdx, float* outScore) {
  const ScoreTile score = pickScore();
  // Enough passages per thread to pay for a parallel region (~64 KiB of vectors each).
  const int64_t minRows = std::max<int64_t>(kBlock, (int64_t{64} << 10) / std::max<int64_t>(1, 4 * D));
  const int64_t want = N / minRows;
  const int nt = want < 2 || omp_in_parallel() ? 1 : static_cast<int>(std::min<int64_t>(threadPolicy().cap(), want));
  // Heaps: one per (thread, query), k slots each.
  std::vector<float> hs(static_cast<size_t>(nt) * M * k);
  std::vector<int32_t> hi(static_cast<size_t>(nt) * M * k);
  std::vector<Heap> heaps(static_cast<size_t>(nt) * M);
  for (int64_t h = 0; h < nt * M; h++) heaps[h] = Heap{k, 0, hs.data() + h * k, hi.data() + h * k};
  const int64_t chunks = nt <= 1 ? 1 : std::min<int64_t>(want, int64_t{8} * nt);
  auto work = [&](int t, int64_t c) {
    const int64_t c0 = N * c / chunks, c1 = N * (c + 1) / chunks;
    float buf[4 * kBlock];
    Heap* mine = heaps.data() + static_cast<int64_t>(t) * M;
    for (int64_t b0 = c0; b0 < c1; b0 += kBlock) {
      const int64_t b1 = std::min(c1, b0 + kBlock);
      for (int64_t m0 = 0; m0 < M; m0 += 4) {
        const int mb = static_cast<int>(std::min<int64_t>(4, M - m0));
        score(P, Q, D, b0, b1, m0, mb, buf, kBlock);
        for (int j = 0; j < mb; j++) {
          Heap& h = mine[m0 + j];
          float thr = h.threshold();
          const float* row = buf + j * kBlock;
          for (int64_t n = b0; n < b1; n++) {
            const float s = row[n - b0];
            if (s >= thr) {  // ≥: an equal score may still win on the lower index
              h.push(s, static_cast<int32_t>(n));
              thr = h.threshold();
            }
          }
        }
      }
    }
  };
  if (nt <= 1) {
    work(0, 0);
  } else {
    RegionClock region;
#pragma omp parallel num_threads(nt)
    {
      region.arrive();
      const int t = omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
      for (int64_t c = 0; c < chunks; c++) work(t, c);
    }
    region.finish();
  }
  // Merge the threads' heaps per query and write the k best, best first (−1 / −∞ where N < k).
  std::vector<float> ms(k);
  std::vector<int32_t> mi(k);
  for (int64_t m = 0; m < M; m++) {
    Heap out{k, 0, ms.data(), mi.data()};
    for (int t = 0; t < nt; t++) {
      const Heap& h = heaps[static_cast<size_t>(t) * M + m];
      for (int e = 0; e < h.n; e++) out.push(h.s[e], h.i[e]);
    }
    std::vector<std::pair<float, int32_t>> v;
    for (int e = 0; e < out.n; e++) v.emplace_back(out.s[e], out.i[e]);
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    for (int e = 0; e < k; e++) {
      outIdx[m * k + e] = e < static_cast<int>(v.size()) ? v[e].second : -1;
      outScore[m * k + e] = e < static_cast<int>(v.size()) ? v[e].first : -std::numeric_limits<float>::infinity();
    }
  }
}

// ipTopK(P, N, D, Q, M, k, outIdx: Int32Array(M·k), outScore: Float32Array(M·k))
napi_value ipTopK(napi_env env, napi_callback_info info) {
  Args a(env, info, "ipTopK", 8);
  size_t lp = 0, lq = 0, li = 0, ls = 0;
  const float* P = a.f32(0, &lp);
  const int64_t N = count(a, 1, "N");
  const int64_t D = count(a, 2, "D");
  const float* Q = a.f32(3, &lq);
  const int64_t M = count(a, 4, "M");
  const int64_t k = count(a, 5, "k");
  int32_t* outIdx = a.i32(6, &li);
  float* outScore = a.f32(7, &ls);
  if (a.failed) return nullptr;
  if (N > INT32_MAX) { a.fail("N: more than 2^31 − 1 passages"); return nullptr; }
  if (k > 1'000'000) { a.fail("k: at most 1,000,000"); return nullptr; }
  if (!needLength(a, "P", lp, satMul(N, D), "N·D") || !needLength(a, "Q", lq, satMul(M, D), "M·D") ||
      !needLength(a, "outIdx", li, satMul(M, k), "M·k") || !needLength(a, "outScore", ls, satMul(M, k), "M·k"))
    return nullptr;
  if (M > 0 && k > 0) ipTopKImpl(P, N, D, Q, M, static_cast<int>(k), outIdx, outScore);
  return a.undefined();
}

}  // namespace

void registerRetrieval(napi_env env, napi_value exports) {
  defineFunction(env, exports, "ipTopK", ipTopK);
}

}  // namespace lmf

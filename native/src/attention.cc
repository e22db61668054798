// Kernel family 'attention' of the native backend: flash-attention-style fused causal/full attention, forward
// and backward, fp32 on CPU. Here: the per-ISA vector vocabularies, the OpenMP drivers and the N-API entry
// points with their bounds checks. The tile math itself is in attention_tiles.inc (included once per ISA).
//
// Memory: never a (Tq, Tk) matrix. The forward keeps per thread one query block (Br, D), one key/value tile
// (Bc, D) and its (Br, Bc) scores; the backward keeps per thread the head's Q, dO and dQ (Tq, D) plus tiles.
//
// Fully masked rows (every score −inf, or causal with no visible key when Tq > Tk): the softmax is 0/0 there.
// We define the row's output as 0, its lse as −inf and its gradients as 0 — what lmforge's reference attention
// documents (core/reference/attention.ts) and what FlashAttention-2 does for fully masked rows — so padded or
// fully masked rows (a left-padded batch) do not poison a training step with NaN. That choice is confined
// to rows with no finite score: a NaN anywhere in a row's scores (from q, k, the mask or scale) still makes the
// row's output and lse NaN, because the running max ignores NaN while exp and the sums carry it.
// Keys a query cannot see (causal, outside a sliding window, past Tk) are left out of every product, so a NaN
// there never reaches it.
// Sliding-window (local) attention: with window w, query i sees keys (i + off − w, i + off]. Key tiles wholly
// outside that band are never packed or multiplied, in the forward and in the backward, so a call costs
// O(Tq·w·D) time instead of O(Tq·Tk·D); the scratch is the same tiles as ever (O(D·(Br + Bc)) forward).
// One difference from the reference, which skips every term whose weight is exactly 0: a key hidden only by
// an additive −inf mask (or whose weight underflows to 0) still enters the tile products with weight 0, so a
// NaN in that key's value row gives 0·NaN = NaN here. NaN inputs are bugs upstream; we surface them.
// Dropout on the probabilities (AttentionArgs.dropout in core/kernels.ts) follows the same rule: a dropped
// probability is an exact 0 weight in the tile products, so it behaves like a masked key there.
#include <omp.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>
#include "threads.h"
#include "checks.h"
#include "dropout_hash.h"
#include "napi_util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMF_X86 1
#endif

// Head rows are short (a ViT's D = 24 floats): GCC would turn the row-copy loops back into memcpy calls, whose
// call and size dispatch cost ~10% of a small-T attention call; keep them as loops in this file.
#pragma GCC optimize("no-tree-loop-distribute-patterns")

namespace lmf {
namespace {

// One head of the forward pass: pointers at the head's row 0, row strides in elements.
struct FwdHead {
  const float *q, *k, *v;
  float* out;
  float* lse;
  const float* mask;  // at (row 0, key 0) of this head, or null
  ptrdiff_t sq, sk, sv, so, smask;
  int D, Dp, Tq, Tk, off;  // off = Tk − Tq: causal query i sees keys j ≤ i + off
  float scale;
  bool causal;
  // Sliding window w (0 = none; set only with causal and w < Tk, where it hides something): query i also needs
  // j > i + off − w. The tile loops skip key tiles below every row's band, as the causal limit skips those above.
  int window;
  // Dropout on the probabilities: P_ij of this head is kept ⇔ dropoutKeep(idx, seedHash, threshold) with
  // idx = (rowBase + i)·Tk + j mod 2^32 and rowBase = (b·H + h)·Tq; kept entries are scaled by dropScale = 1/(1 − p).
  bool dropout;
  uint32_t seedHash, threshold, rowBase;
  float dropScale;
};

struct BwdHead : FwdHead {
  const float* gout;
  float *gk, *gv;
  ptrdiff_t sgo, sgk, sgv;
};

// The tile kernels of one instruction set (filled in by attention_tiles.inc).
struct TileKernels {
  int W;
  int Bc;  // keys per tile
  size_t (*forwardScratchFloats)(int Dp);
  void (*forwardBlock)(const FwdHead& h, int i0, int br, float* scratch);
  size_t (*backwardScratchFloats)(int Dp);
  void (*backwardKeys)(const BwdHead& h, int kb0, int kbStep, const float* Qp, const float* dOp, const float* Di,
                       const float* lseB, float* dQacc, float* scratch);
  void (*backwardPrepare)(const BwdHead& h, float* Qp, float* dOp, float* Di, float* lseB);
};

// Vector vocabulary shared by the three ISAs. NaN contracts the tile code relies on:
// vmaxkeep(x, acc) returns acc in a lane where x is NaN (so the running max stays a number); vexp(NaN) = NaN,
// vexp(−inf) = 0 exactly (masked keys contribute nothing).

#ifdef LMF_X86
// GCC 12 flags the _mm512_undefined_ps() placeholders inside its own reduce/scalef intrinsics; they are not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
#define LMF_TARGET __attribute__((target("avx512f,avx2,fma")))
using vf = __m512;
constexpr int W = 16;
constexpr int R = 6;  // 6 rows × 4 vectors = 24 of the 32 zmm registers as accumulators
LMF_TARGET static inline vf vload(const float* p) { return _mm512_loadu_ps(p); }
LMF_TARGET static inline void vstore(float* p, vf x) { _mm512_storeu_ps(p, x); }
LMF_TARGET static inline vf vset1(float x) { return _mm512_set1_ps(x); }
LMF_TARGET static inline vf vzero() { return _mm512_setzero_ps(); }
LMF_TARGET static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
LMF_TARGET static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
LMF_TARGET static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
LMF_TARGET static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
LMF_TARGET static inline vf vmaxkeep(vf x, vf acc) { return _mm512_max_ps(x, acc); }  // NaN → second operand
LMF_TARGET static inline float vhsum(vf x) { return _mm512_reduce_add_ps(x); }
LMF_TARGET static inline float vhmax(vf x) { return _mm512_reduce_max_ps(x); }
// exp(x) = 2ⁿ·e^r with n = round(x·log2 e), r = x − n·ln 2 (two-part ln 2), e^r by a degree-7 Taylor
// polynomial (|r| ≤ ln2/2: error < 1e-8 relative). Below −87.34 the result flushes to 0, above 88.72 it is inf.
LMF_TARGET static inline vf vexp(vf x) {
  const vf lo = _mm512_set1_ps(-87.33654f), hi = _mm512_set1_ps(88.72283f);
  const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ), over = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  const vf xc = _mm512_min_ps(hi, _mm512_max_ps(lo, x));  // NaN passes through (second operand)
  const vf n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  vf p = _mm512_set1_ps(1.0f / 5040);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  vf res = _mm512_scalef_ps(p, n);
  res = _mm512_mask_blend_ps(under, res, _mm512_setzero_ps());
  return _mm512_mask_blend_ps(over, res, _mm512_set1_ps(std::numeric_limits<float>::infinity()));
}
// Two tile widths: 4 vectors of keys in general; 2 for sequences that fit in them (e.g. a ViT's 17 tokens),
// where the wide tile would spend most of its score products, exponentials and packing on padding.
namespace wide {
constexpr int kTileVectors = 4;
#include "attention_tiles.inc"
}  // namespace wide
namespace narrow {
constexpr int kTileVectors = 2;
#include "attention_tiles.inc"
}  // namespace narrow
#undef LMF_TARGET
}  // namespace avx512
#pragma GCC diagnostic pop

namespace avx2 {
#define LMF_TARGET __attribute__((target("avx2,fma")))
using vf = __m256;
constexpr int W = 8;
constexpr int R = 3;  // 3 rows × 4 vectors = 12 of the 16 ymm registers as accumulators
LMF_TARGET static inline vf vload(const float* p) { return _mm256_loadu_ps(p); }
LMF_TARGET static inline void vstore(float* p, vf x) { _mm256_storeu_ps(p, x); }
LMF_TARGET static inline vf vset1(float x) { return _mm256_set1_ps(x); }
LMF_TARGET static inline vf vzero() { return _mm256_setzero_ps(); }
LMF_TARGET static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
LMF_TARGET static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
LMF_TARGET static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
LMF_TARGET static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
LMF_TARGET static inline vf vmaxkeep(vf x, vf acc) { return _mm256_max_ps(x, acc); }  // NaN → second operand
LMF_TARGET static inline float vhsum(vf x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
LMF_TARGET static inline float vhmax(vf x) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
// As the AVX-512 exp, with 2ⁿ built in the exponent bits; the upper clamp is 88 so that n ≤ 127 stays finite
// (x in (88, 88.72] gives inf instead of ≈1e38; attention only takes exp of scores minus their max, ≤ 0).
LMF_TARGET static inline vf vexp(vf x) {
  const vf lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.0f);
  const vf under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ), over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  const vf xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
  const vf n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  vf r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  vf p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  vf res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  res = _mm256_blendv_ps(res, _mm256_setzero_ps(), under);
  return _mm256_blendv_ps(res, _mm256_set1_ps(std::numeric_limits<float>::infinity()), over);
}
// Two tile widths: 4 vectors of keys in general; 2 for sequences that fit in them (e.g. a ViT's 17 tokens),
// where the wide tile would spend most of its score products, exponentials and packing on padding.
namespace wide {
constexpr int kTileVectors = 4;
#include "attention_tiles.inc"
}  // namespace wide
namespace narrow {
constexpr int kTileVectors = 2;
#include "attention_tiles.inc"
}  // namespace narrow
#undef LMF_TARGET
}  // namespace avx2
#endif  // LMF_X86

// Portable path: GCC/Clang generic vectors of 4 floats (SSE2, NEON or scalar code, whatever the target has).
namespace portable {
#define LMF_TARGET
typedef float vf __attribute__((vector_size(16)));
constexpr int W = 4;
constexpr int R = 2;
static inline vf vload(const float* p) { vf x; std::memcpy(&x, p, sizeof x); return x; }
static inline void vstore(float* p, vf x) { std::memcpy(p, &x, sizeof x); }
static inline vf vset1(float x) { return vf{x, x, x, x}; }
static inline vf vzero() { return vf{0, 0, 0, 0}; }
static inline vf vfma(vf a, vf b, vf c) { return a * b + c; }
static inline vf vmul(vf a, vf b) { return a * b; }
static inline vf vadd(vf a, vf b) { return a + b; }
static inline vf vsub(vf a, vf b) { return a - b; }
static inline vf vmaxkeep(vf x, vf acc) {
  for (int i = 0; i < W; i++) acc[i] = x[i] > acc[i] ? x[i] : acc[i];  // false for NaN: keeps acc
  return acc;
}
static inline float vhsum(vf x) { return (x[0] + x[1]) + (x[2] + x[3]); }
static inline float vhmax(vf x) { return std::max(std::max(x[0], x[1]), std::max(x[2], x[3])); }
static inline vf vexp(vf x) {
  for (int i = 0; i < W; i++) x[i] = std::exp(x[i]);
  return x;
}
// Two tile widths: 4 vectors of keys in general; 2 for sequences that fit in them (e.g. a ViT's 17 tokens),
// where the wide tile would spend most of its score products, exponentials and packing on padding.
namespace wide {
constexpr int kTileVectors = 4;
#include "attention_tiles.inc"
}  // namespace wide
namespace narrow {
constexpr int kTileVectors = 2;
#include "attention_tiles.inc"
}  // namespace narrow
#undef LMF_TARGET
}  // namespace portable

// ---- dispatch -------------------------------------------------------------------------------------------------

enum class Isa { Portable, Avx2, Avx512 };

Isa bestIsa() {
#ifdef LMF_X86
  if (__builtin_cpu_supports("avx512f")) return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
  return Isa::Portable;
}

Isa gIsa = bestIsa();

// The tile kernels of the active ISA for Tk keys: the narrow tiles when all keys fit in one of them.
const TileKernels& kernels(int Tk) {
  switch (gIsa) {
#ifdef LMF_X86
    case Isa::Avx512: return Tk <= avx512::narrow::Bc ? avx512::narrow::kTileKernels : avx512::wide::kTileKernels;
    case Isa::Avx2: return Tk <= avx2::narrow::Bc ? avx2::narrow::kTileKernels : avx2::wide::kTileKernels;
#else
    case Isa::Avx512: case Isa::Avx2: break;
#endif
    case Isa::Portable: break;
  }
  return Tk <= portable::narrow::Bc ? portable::narrow::kTileKernels : portable::wide::kTileKernels;
}

const char* isaName(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Portable: return "portable";
  }
  return "portable";
}

// Bytes of scratch the last attention call allocated, all threads together (for the memory benchmark).
std::atomic<long long> gScratchBytes{0};

// Per call: scratch bytes allocated, and whether a thread could not allocate (the entry point then throws).
struct CallStats {
  std::atomic<long long> bytes{0};
  std::atomic<bool> outOfMemory{false};
};

struct Scratch {
  float* p = nullptr;
  Scratch(size_t floats, CallStats& stats) {
    size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64 + 64;
    p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (p) stats.bytes += static_cast<long long>(bytes);
    else stats.outOfMemory = true;
  }
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};

int roundUp(int x, int m) { return (x + m - 1) / m * m; }

// ---- drivers --------------------------------------------------------------------------------------------------

struct View {
  float* data;
  int64_t off, sB, sH, sT;
  float* head(int64_t b, int64_t h) const { return data + off + b * sB + h * sH; }
};

struct Problem {
  View q, k, v, out, mask, gout, gq, gk, gv;
  float* lse;
  bool hasMask;
  int B, H, Tq, Tk, D;
  float scale;
  bool causal;
  int window;         // 0 = none
  double dropout;     // p in [0, 1)
  uint32_t seedHash;  // hash32(dropoutSeed >>> 0)
};

void fillHead(const Problem& p, int bh, int Dp, FwdHead& h) {
  const int b = bh / p.H, hh = bh % p.H;
  h.q = p.q.head(b, hh);
  h.k = p.k.head(b, hh);
  h.v = p.v.head(b, hh);
  h.out = p.out.head(b, hh);
  h.lse = p.lse + static_cast<ptrdiff_t>(bh) * p.Tq;
  h.mask = p.hasMask ? p.mask.head(b, hh) : nullptr;
  h.sq = p.q.sT; h.sk = p.k.sT; h.sv = p.v.sT; h.so = p.out.sT; h.smask = p.hasMask ? p.mask.sT : 0;
  h.D = p.D; h.Dp = Dp; h.Tq = p.Tq; h.Tk = p.Tk; h.off = p.Tk - p.Tq;
  h.scale = p.scale; h.causal = p.causal;
  // A window ≥ Tk hides nothing (i + off − w < 0 for every row): it takes the dense path, bit for bit.
  h.window = p.causal && p.window < p.Tk ? p.window : 0;
  h.dropout = p.dropout > 0;
  h.seedHash = p.seedHash;
  h.threshold = dropoutThreshold(p.dropout);
  h.rowBase = static_cast<uint32_t>(bh) * static_cast<uint32_t>(p.Tq);  // unsigned: wraps modulo 2^32
  h.dropScale = static_cast<float>(1.0 / (1.0 - p.dropout));
}

// Threads for a call: one per gWorkPerThread units of B·H·Tq·(Tk·D + kRowWork) (Tk·D halved when causal; Tk → w
// with a sliding window w, the keys each query actually reads), at most the OpenMP limit. A thread then has
// ≳ 0.3 ms of work. Below that, a fork-join costs more than it saves, and on a loaded machine it can cost far
// more: the join waits until the kernel schedules every team thread, which measured 16 ms instead of 0.3 ms for
// the (12, 4, 64, 32) forward on 2 busy cores.
double gWorkPerThread = 8388608.0;

// Returns the previous value (tests lower it to exercise the threaded paths on small shapes).
double setWorkPerThread(double w) {
  const double prev = gWorkPerThread;
  gWorkPerThread = w;
  return prev;
}

// Each query row also costs a fixed kRowWork units (its softmax bookkeeping, packing, the tile padding): with
// short sequences that dominates, e.g. a ViT's (128, 4, 17, 24) call costs ~1 ms forward on one thread though its
// Tq·Tk·D units alone (3.5M) would keep it there.
constexpr double kRowWork = 2048.0;

// Threads worth running for a problem, at most maxThreads (the thread policy's cap, or the configured count where
// the split changes the arithmetic).
int threadsFor(const Problem& p, int maxThreads) {
  const bool banded = p.causal && p.window > 0 && p.window < p.Tk;
  const int keys = banded ? p.window : std::max(p.Tk, 1);
  double perRow = static_cast<double>(keys) * std::max(p.D, 1);
  if (p.causal && !banded) perRow *= 0.5;
  const double work = static_cast<double>(p.B) * p.H * p.Tq * (perRow + kRowWork);
  const double n = std::floor(work / gWorkPerThread);
  return static_cast<int>(std::max(1.0, std::min(n, static_cast<double>(maxThreads))));
}

bool runForward(const Problem& p) {
  const TileKernels& kt = kernels(p.Tk);
  const int Dp = roundUp(p.D, kt.W), Br = 64;
  const int BH = p.B * p.H, nqb = (p.Tq + Br - 1) / Br;
  const long long items = static_cast<long long>(BH) * nqb;
  CallStats stats;
  if (items == 0) return true;
  // Query blocks of every head are independent: one flat, dynamically scheduled loop over (head, query block),
  // so a few heads with long sequences still fill every thread.
  RegionClock region;
#pragma omp parallel num_threads(threadsFor(p, threadPolicy().cap()))
  {
    region.arrive();
    Scratch s(kt.forwardScratchFloats(Dp), stats);
    FwdHead h;
#pragma omp for schedule(dynamic, 1)
    for (long long it = 0; it < items; it++) {
      if (!s.p) continue;
      const int bh = static_cast<int>(it / nqb), qb = static_cast<int>(it % nqb);
      fillHead(p, bh, Dp, h);
      const int i0 = qb * Br;
      kt.forwardBlock(h, i0, std::min(Br, p.Tq - i0), s.p);
    }
  }
  region.finish();
  gScratchBytes = stats.bytes.load();
  return !stats.outOfMemory;
}

void writeRows(const float* src, int Dp, float* dst, ptrdiff_t sT, int T, int D) {
  for (int i = 0; i < T; i++) {
    float* __restrict d = dst + i * sT;
    const float* __restrict s = src + static_cast<ptrdiff_t>(i) * Dp;
    for (int c = 0; c < D; c++) d[c] = s[c];  // short rows: a loop beats a memcpy call
  }
}

bool runBackward(const Problem& p) {
  const TileKernels& kt = kernels(p.Tk);
  const int Dp = roundUp(p.D, kt.W), Bc = kt.Bc;
  const int BH = p.B * p.H, nkb = (p.Tk + Bc - 1) / Bc;
  const size_t headFloats = static_cast<size_t>(p.Tq) * Dp;
  CallStats stats;
  if (BH == 0) return true;
  // Which path, and how many dQ partials the few-heads path sums, follow the configured thread count, so the
  // gradients do not depend on the thread policy's cap; only the enough-heads path (one writer per head) takes it.
  const int nthreads = threadsFor(p, omp_get_max_threads());
  auto bwdHead = [&](int bh, BwdHead& h) {
    fillHead(p, bh, Dp, h);
    const int b = bh / p.H, hh = bh % p.H;
    h.gout = p.gout.head(b, hh); h.sgo = p.gout.sT;
    h.gk = p.gk.head(b, hh); h.sgk = p.gk.sT;
    h.gv = p.gv.head(b, hh); h.sgv = p.gv.sT;
  };
  if (BH >= 2 * nthreads || nkb <= 1) {
    // Enough heads: one thread owns a head, so its dK, dV and dQ have a single writer.
    RegionClock region;
#pragma omp parallel num_threads(std::min(nthreads, threadPolicy().cap()))
    {
      region.arrive();
      Scratch s(kt.backwardScratchFloats(Dp) + 3 * headFloats + 2 * static_cast<size_t>(p.Tq), stats);
      float* Qp = s.p + kt.backwardScratchFloats(Dp);
      float *dOp = Qp + headFloats, *dQ = dOp + headFloats, *Di = dQ + headFloats, *lseB = Di + p.Tq;
      BwdHead h;
#pragma omp for schedule(dynamic, 1)
      for (int bh = 0; bh < BH; bh++) {
        if (!s.p) continue;
        bwdHead(bh, h);
        kt.backwardPrepare(h, Qp, dOp, Di, lseB);
        std::fill(dQ, dQ + headFloats, 0.0f);
        kt.backwardKeys(h, 0, 1, Qp, dOp, Di, lseB, dQ, s.p);
        writeRows(dQ, Dp, p.gq.head(bh / p.H, bh % p.H), p.gq.sT, p.Tq, p.D);
      }
    }
    region.finish();
    gScratchBytes = stats.bytes.load();
    return !stats.outOfMemory;
  }
  // Few heads: threads split each head's key tiles (interleaved, which balances the causal triangle). dK and dV
  // rows still have one writer; dQ gets a private accumulator per thread, summed after a barrier.
  std::vector<float*> dQs(nthreads, nullptr);
  RegionClock region;
#pragma omp parallel num_threads(nthreads)
  {
    region.arrive();
    const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
    Scratch s(kt.backwardScratchFloats(Dp) + 2 * headFloats + 2 * static_cast<size_t>(p.Tq) + BH * headFloats, stats);
    float* Qp = s.p + kt.backwardScratchFloats(Dp);
    float *dOp = Qp + headFloats, *Di = dOp + headFloats, *lseB = Di + p.Tq, *dQall = lseB + p.Tq;
    dQs[tid] = dQall;
    if (s.p) std::fill(dQall, dQall + BH * headFloats, 0.0f);
#pragma omp barrier
    const bool ok = !stats.outOfMemory;  // every thread sees every allocation after the barrier
    BwdHead h;
    for (int bh = 0; bh < BH && ok; bh++) {
      if (tid >= nkb) break;
      bwdHead(bh, h);
      kt.backwardPrepare(h, Qp, dOp, Di, lseB);
      kt.backwardKeys(h, tid, nt, Qp, dOp, Di, lseB, dQall + bh * headFloats, s.p);
    }
#pragma omp barrier
#pragma omp for schedule(static)
    for (long long row = 0; row < (ok ? static_cast<long long>(BH) * p.Tq : 0); row++) {
      const int bh = static_cast<int>(row / p.Tq), i = static_cast<int>(row % p.Tq);
      float* dst = p.gq.head(bh / p.H, bh % p.H) + i * p.gq.sT;
      for (int d = 0; d < p.D; d++) {
        float acc = 0.0f;
        for (int t = 0; t < nt; t++) acc += dQs[t][bh * headFloats + static_cast<size_t>(i) * Dp + d];
        dst[d] = acc;
      }
    }
  }
  region.finish();
  gScratchBytes = stats.bytes.load();
  return !stats.outOfMemory;
}

// ---- N-API ----------------------------------------------------------------------------------------------------

constexpr double kMaxSafe = 9007199254740991.0;  // 2^53 − 1

// A layout array [offset, sB, sH, sT] (integers) for the view named `name`.
bool readLayout(Args& a, size_t i, const char* name, int64_t out[4]) {
  if (a.failed) return false;
  char msg[200];
  bool isArray = false;
  napi_is_array(a.env, a.argv[i], &isArray);
  uint32_t n = 0;
  if (isArray) napi_get_array_length(a.env, a.argv[i], &n);
  if (!isArray || n != 4) {
    snprintf(msg, sizeof msg, "%s layout: expected [offset, strideB, strideH, strideT]", name);
    a.fail(msg, i);
    return false;
  }
  for (uint32_t j = 0; j < 4; j++) {
    napi_value el;
    double v = NAN;
    napi_get_element(a.env, a.argv[i], j, &el);
    if (napi_get_value_double(a.env, el, &v) != napi_ok || !(std::fabs(v) <= kMaxSafe) || v != std::floor(v) ||
        (j == 0 && v < 0)) {
      snprintf(msg, sizeof msg, "%s layout[%u]: expected %s integer", name, j, j == 0 ? "a non-negative" : "an");
      a.fail(msg, i);
      return false;
    }
    out[j] = static_cast<int64_t>(v);
  }
  return true;
}

// Reads a float32 view (data at argument i, layout at i + 1) and checks that every element of the
// (B, H, T, inner) box it spans lies inside the array, so no kernel reads or writes out of bounds.
bool readView(Args& a, size_t i, const char* name, int64_t B, int64_t H, int64_t T, int64_t inner, View& v) {
  if (a.failed) return false;
  size_t len = 0;
  v.data = a.f32(i, &len);
  int64_t lay[4];
  if (a.failed || !readLayout(a, i + 1, name, lay)) return false;
  v.off = lay[0]; v.sB = lay[1]; v.sH = lay[2]; v.sT = lay[3];
  if (B == 0 || H == 0 || T == 0 || inner == 0) return true;  // the box is empty: nothing is touched
  __int128 lo = v.off, hi = v.off + static_cast<__int128>(inner - 1);
  const int64_t n[3] = {B, H, T}, s[3] = {v.sB, v.sH, v.sT};
  for (int d = 0; d < 3; d++) {
    const __int128 ext = static_cast<__int128>(n[d] - 1) * s[d];
    if (ext < 0) lo += ext; else hi += ext;
  }
  if (lo < 0 || hi >= static_cast<__int128>(len)) {
    char msg[240];
    snprintf(msg, sizeof msg,
             "%s: the view (offset %lld, strides [%lld, %lld, %lld, 1]) over (%lld, %lld, %lld, %lld) reaches "
             "element %lld but the array has %zu elements",
             name, (long long)v.off, (long long)v.sB, (long long)v.sH, (long long)v.sT, (long long)B, (long long)H,
             (long long)T, (long long)inner, (long long)(lo < 0 ? lo : hi), len);
    a.fail(msg, i);
    return false;
  }
  return true;
}

// Arguments shared by forward and backward:
//   0 q, 1 qLayout, 2 k, 3 kLayout, 4 v, 5 vLayout, 6 out, 7 outLayout, 8 lse, 9 mask | null, 10 maskLayout | null,
//   11 dims [B, H, Tq, Tk, D], 12 scale, 13 causal, 14 dropout (p in [0, 1)), 15 dropoutSeed,
//   16 window (integer ≥ 0; 0 = none; ignored without causal)
bool readProblem(Args& a, Problem& p) {
  int64_t dims[5];
  bool isArray = false;
  if (!a.failed) napi_is_array(a.env, a.argv[11], &isArray);
  uint32_t n = 0;
  if (isArray) napi_get_array_length(a.env, a.argv[11], &n);
  if (!a.failed && (!isArray || n != 5)) a.fail("dims: expected [B, H, Tq, Tk, D]", 11);
  for (uint32_t j = 0; j < 5 && !a.failed; j++) {
    napi_value el;
    double v = NAN;
    napi_get_element(a.env, a.argv[11], j, &el);
    napi_get_value_double(a.env, el, &v);
    if (!(v >= 0 && v <= 2147483647.0) || v != std::floor(v)) {
      static const char* names[5] = {"dims[0] (B)", "dims[1] (H)", "dims[2] (Tq)", "dims[3] (Tk)", "dims[4] (D)"};
      char msg[120];
      snprintf(msg, sizeof msg, "%s: expected a non-negative 32-bit integer", names[j]);
      a.fail(msg, 11);
    }
    dims[j] = static_cast<int64_t>(v);
  }
  if (a.failed) return false;
  const int64_t B = dims[0], H = dims[1], Tq = dims[2], Tk = dims[3], D = dims[4];
  if (B * H > 2147483647LL) { a.fail("dims: B·H must fit in 32 bits", 11); return false; }
  p.B = static_cast<int>(B); p.H = static_cast<int>(H); p.Tq = static_cast<int>(Tq);
  p.Tk = static_cast<int>(Tk); p.D = static_cast<int>(D);
  readView(a, 0, "q", B, H, Tq, D, p.q);
  readView(a, 2, "k", B, H, Tk, D, p.k);
  readView(a, 4, "v", B, H, Tk, D, p.v);
  readView(a, 6, "out", B, H, Tq, D, p.out);
  size_t lseLen = 0;
  p.lse = a.f32(8, &lseLen);
  if (!a.failed && lseLen < static_cast<size_t>(B * H * Tq)) a.fail("lse: expected at least B·H·Tq elements", 8);
  napi_valuetype mt = napi_undefined;
  if (!a.failed) napi_typeof(a.env, a.argv[9], &mt);
  p.hasMask = mt != napi_null && mt != napi_undefined;
  if (p.hasMask) readView(a, 9, "mask", B, H, Tq, Tk, p.mask);
  p.scale = static_cast<float>(a.num(12));
  p.causal = a.boolean(13);
  p.dropout = a.num(14);
  const double seed = a.num(15);
  const double window = a.num(16);
  if (a.failed) return false;
  if (!(p.dropout >= 0 && p.dropout < 1)) { a.fail("dropout: expected a probability in [0, 1)", 14); return false; }
  if (!(window >= 0 && window <= 2147483647.0) || window != std::floor(window)) {
    a.fail("window: expected an integer ≥ 0 (0 = no sliding window)", 16);
    return false;
  }
  p.window = static_cast<int>(window);
  p.seedHash = hash32(static_cast<uint32_t>(toInt32(seed)));  // dropoutSeed >>> 0, as core/random.ts
  return !a.failed;
}

napi_value attentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionForward", 17);
  Problem p{};
  if (!readProblem(a, p)) return nullptr;
  if (!runForward(p)) napi_throw_error(env, nullptr, "native attentionForward: out of memory for the tile scratch");
  return a.undefined();
}

// Backward adds: 17 gout, 18 goutLayout, 19 gq, 20 gqLayout, 21 gk, 22 gkLayout, 23 gv, 24 gvLayout.
napi_value attentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionBackward", 25);
  Problem p{};
  if (!readProblem(a, p)) return nullptr;
  readView(a, 17, "gout", p.B, p.H, p.Tq, p.D, p.gout);
  readView(a, 19, "gq", p.B, p.H, p.Tq, p.D, p.gq);
  readView(a, 21, "gk", p.B, p.H, p.Tk, p.D, p.gk);
  readView(a, 23, "gv", p.B, p.H, p.Tk, p.D, p.gv);
  if (a.failed) return nullptr;
  if (!runBackward(p)) napi_throw_error(env, nullptr, "native attentionBackward: out of memory for the scratch");
  return a.undefined();
}

// attentionIsa(name?): selects 'avx512' | 'avx2' | 'portable' (capped at what this CPU runs) and returns the
// active one; without an argument only reports it. Lets tests exercise every path on one machine.
napi_value attentionIsa(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionIsa", 0);
  if (a.argc >= 1) {
    char name[16] = {0};
    size_t len = 0;
    if (napi_get_value_string_utf8(env, a.argv[0], name, sizeof name, &len) != napi_ok) {
      a.fail("expected 'avx512', 'avx2' or 'portable'", 0);
      return nullptr;
    }
    const Isa best = bestIsa();
    Isa want;
    if (std::strcmp(name, "avx512") == 0) want = Isa::Avx512;
    else if (std::strcmp(name, "avx2") == 0) want = Isa::Avx2;
    else if (std::strcmp(name, "portable") == 0) want = Isa::Portable;
    else { a.fail("expected 'avx512', 'avx2' or 'portable'", 0); return nullptr; }
    gIsa = static_cast<int>(want) <= static_cast<int>(best) ? want : best;
  }
  napi_value r;
  napi_create_string_utf8(env, isaName(gIsa), NAPI_AUTO_LENGTH, &r);
  return r;
}

// attentionWorkPerThread(units?): sets the work per thread below which calls run on fewer threads (see
// threadsFor); returns the previous value. Without an argument only reports it.
napi_value attentionWorkPerThread(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionWorkPerThread", 0);
  double prev = gWorkPerThread;
  if (a.argc >= 1) {
    const double w = a.num(0);
    if (a.failed) return nullptr;
    if (!(w >= 1)) { a.fail("expected a number ≥ 1", 0); return nullptr; }
    prev = setWorkPerThread(w);
  }
  return a.number(prev);
}

napi_value attentionScratchBytes(napi_env env, napi_callback_info info) {
  Args a(env, info, "attentionScratchBytes", 0);
  return a.number(static_cast<double>(gScratchBytes.load()));
}

}  // namespace

void registerAttention(napi_env env, napi_value exports) {
  defineFunction(env, exports, "attentionForward", attentionForward);
  defineFunction(env, exports, "attentionBackward", attentionBackward);
  defineFunction(env, exports, "attentionIsa", attentionIsa);
  defineFunction(env, exports, "attentionScratchBytes", attentionScratchBytes);
  defineFunction(env, exports, "attentionWorkPerThread", attentionWorkPerThread);
}

}  // namespace lmf

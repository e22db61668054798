// Kernel family 'sparse attention' of the native backend: causal attention over gathered, grouped slots, the shared core
// of Reformer (LSH) and Routing attention (contract: BucketAttentionArgs in src/core/kernels.ts), forward and
// backward, tiled: a block of query slots against the key tile it shares, threaded over blocks (forward) and group runs (backward).
// Not the hashing or clustering that picks the slots (src/nn/lsh-attention.ts, routing-attention.ts).
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>
#include "checks.h"
#include "napi_util.h"
#include "simd.h"

namespace lmf {
namespace {

struct View {
  float* data;
  int64_t len, offset, sB, sH, sT;
  float* row(int64_t b, int64_t h, int64_t t) const { return data + offset + b * sB + h * sH + t * sT; }
};

struct Problem {
  View q, k, v, out;
  float* lse;
  const int32_t* slots;
  const int32_t* groups;
  int64_t B, H, T, D, N, rounds, window;
  float selfPenalty, scale;
  bool unitKeys;
};

// Multi-versioned head kernels: AVX-512, AVX2+FMA or baseline code, picked once by the loader for this CPU.
#define LMF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

#include "vecmath.inc"  // vexp: branch-free, auto-vectorised in each clone

inline __attribute__((always_inline)) float dot(const float* x, const float* y, int64_t D) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (int64_t d = 0; d < D; d++) s += x[d] * y[d];
  return s;
}

// Reads a (B, H, T, D) view argument [data, [offset, sB, sH, sT]] and checks that its last row fits the array.
bool viewArg(Args& a, size_t i, const char* name, const Problem& p, View* v) {
  size_t len = 0;
  v->data = f32Arg(a, i, name, &len);
  int64_t lay[4] = {0, 0, 0, 0};
  if (a.failed) return false;
  if (a.ints(i + 1, lay, 4) != 4) { a.fail("layout must be [offset, sB, sH, sT]", i + 1); return false; }
  v->len = static_cast<int64_t>(len);
  v->offset = lay[0], v->sB = lay[1], v->sH = lay[2], v->sT = lay[3];
  int64_t last = v->offset + (p.B - 1) * v->sB + (p.H - 1) * v->sH + (p.T - 1) * v->sT + p.D;
  if (p.B * p.H * p.T * p.D > 0 && (v->offset < 0 || v->sB < 0 || v->sH < 0 || v->sT < 0 || last > v->len)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: the (B, H, T, D) view does not fit its array of %lld floats", name, static_cast<long long>(len));
    a.fail(msg);
    return false;
  }
  return true;
}

// Arguments shared by forward and backward:
// (q, qLay, k, kLay, v, vLay, out, outLay, lse, slots, groups, [B, H, T, D, N, rounds, window], selfPenalty, scale,
//  unitKeys)
bool readProblem(Args& a, Problem* p) {
  int64_t dims[7];
  if (a.ints(11, dims, 7) != 7) { if (!a.failed) a.fail("dims must be [B, H, T, D, N, rounds, window]", 11); return false; }
  p->B = dims[0], p->H = dims[1], p->T = dims[2], p->D = dims[3], p->N = dims[4], p->rounds = dims[5], p->window = dims[6];
  for (int i = 0; i < 7; i++) {
    if (dims[i] < 0 || (i == 5 && dims[i] < 1)) { a.fail("dims: sizes must be ≥ 0 and rounds ≥ 1", 11); return false; }
  }
  if (p->N % p->rounds != 0) { a.fail("N must be a multiple of rounds", 11); return false; }
  if (!viewArg(a, 0, "q", *p, &p->q) || !viewArg(a, 2, "k", *p, &p->k) || !viewArg(a, 4, "v", *p, &p->v) ||
      !viewArg(a, 6, "out", *p, &p->out))
    return false;
  size_t ll = 0, ls = 0, lg = 0;
  p->lse = f32Arg(a, 8, "lse", &ll);
  p->slots = i32Arg(a, 9, "slots", &ls);
  p->groups = i32Arg(a, 10, "groups", &lg);
  p->selfPenalty = static_cast<float>(a.num(12));
  p->scale = static_cast<float>(a.num(13));
  p->unitKeys = a.boolean(14);
  if (!needLength(a, "lse", ll, satMul(p->B, p->H, p->T), "B·H·T") || !needLength(a, "slots", ls, satMul(p->B, p->H, p->N), "B·H·N") ||
      !needLength(a, "groups", lg, satMul(p->B, p->H, p->N), "B·H·N"))
    return false;
  for (int64_t i = 0; i < p->B * p->H * p->N; i++) {
    if (p->slots[i] < 0 || p->slots[i] >= p->T) {
      char msg[160];
      snprintf(msg, sizeof msg, "slots: entry %lld holds position %d, outside [0, %lld)", static_cast<long long>(i), p->slots[i],
               static_cast<long long>(p->T));
      a.fail(msg);
      return false;
    }
  }
  return true;
}

// from[n] = the first key slot of query slot n: window slots back, not before its round nor its group's run
// (groups are sorted within a round, so a group's slots are one run).
void keyStarts(const Problem& p, const int32_t* groups, std::vector<int64_t>& from) {
  const int64_t L = p.N / p.rounds;
  int64_t run = 0;
  for (int64_t n = 0; n < p.N; n++) {
    if (n % L == 0 || groups[n] != groups[n - 1]) run = n;
    from[n] = std::max(run, n - p.window);
  }
}

// Fails unless groups are non-decreasing within every round and positions increase within every group run.
bool checkSorted(Args& a, const Problem& p) {
  const int64_t L = p.N / p.rounds;
  for (int64_t bh = 0; bh < p.B * p.H; bh++) {
    const int32_t* sl = p.slots + bh * p.N;
    const int32_t* gr = p.groups + bh * p.N;
    for (int64_t n = 1; n < p.N; n++) {
      if (n % L == 0) continue;
      if (gr[n] < gr[n - 1] || (gr[n] == gr[n - 1] && sl[n] <= sl[n - 1])) {
        char msg[200];
        snprintf(msg, sizeof msg, "slots/groups: entry %lld of head %lld breaks the (group, position) order of its round",
                 static_cast<long long>(n), static_cast<long long>(bh));
        a.fail(msg);
        return false;
      }
    }
  }
  return true;
}

// Tiled kernels. A head's q, k, v rows are gathered into slot order, padded to Dp = D rounded up to W floats
// (the pad is zero, so it adds nothing to a dot product). A group run's query slots go in blocks of Bq; the union
// of a block's windows is one contiguous run of key slots [from(n0), n1), so the block's scores are one small
// GEMM against that key tile, masked per query to [from(n), n]. The whole tile fits in scratch (≤ window + Bq
// keys), so each row's softmax is exact in one pass; rounds are merged per position afterwards.
constexpr int64_t W = 16;   // floats per vector (one AVX-512 register; two AVX2 or four SSE registers elsewhere)
constexpr int64_t Bq = 16;  // query slots per block

#pragma GCC diagnostic ignored "-Wpsabi"  // the 64-byte vector type never crosses a call boundary (always inlined)
typedef float vf __attribute__((vector_size(64)));
typedef float vfu __attribute__((vector_size(64), aligned(4), may_alias));
#define LMF_AI inline __attribute__((always_inline))
LMF_AI vf vld(const float* p) { return *reinterpret_cast<const vfu*>(p); }
LMF_AI void vst(float* p, vf x) { *reinterpret_cast<vfu*>(p) = x; }

// Register-blocked C[r, c·W + :] (= or +=) Σ_k A[r·ars + k·aks] · Bm[k·ldb + c·bcs + :], RR rows × NC vectors
// (bcs = W: B row-major; bcs = Dp·W, ldb = W: B in panels of W columns, see Head::kT).
template <int RR, int NC>
LMF_AI void mk(int64_t K, const float* A, int64_t ars, int64_t aks, const float* Bm, int64_t ldb, int64_t bcs, float* C, int64_t ldc,
               bool add) {
  vf acc[RR][NC];
  const vf zero = {0.f};
  for (int r = 0; r < RR; r++)
    for (int c = 0; c < NC; c++) acc[r][c] = add ? vld(C + r * ldc + c * W) : zero;
  for (int64_t k = 0; k < K; k++) {
    vf bv[NC];
    for (int c = 0; c < NC; c++) bv[c] = vld(Bm + k * ldb + c * bcs);
    for (int r = 0; r < RR; r++) {
      const float a = A[r * ars + k * aks];
      for (int c = 0; c < NC; c++) acc[r][c] += a * bv[c];
    }
  }
  for (int r = 0; r < RR; r++)
    for (int c = 0; c < NC; c++) vst(C + r * ldc + c * W, acc[r][c]);
}

// Rows [r, rows) of one column group of NC vectors: RR rows a step (RR·NC = 16 to 24 accumulators of the 32
// AVX-512 registers, so the FMA latency is hidden and each loaded vector feeds RR FMAs), then the leftover rows
// in steps of 8, 4, 2, 1.
template <int RR, int NC>
LMF_AI void mkRows(int64_t rows, int64_t K, const float* A, int64_t ars, int64_t aks, const float* Bm, int64_t ldb, int64_t bcs,
                   float* C, int64_t ldc, bool add) {
  int64_t r = 0;
  for (; r + RR <= rows; r += RR) mk<RR, NC>(K, A + r * ars, ars, aks, Bm, ldb, bcs, C + r * ldc, ldc, add);
  if constexpr (RR > 8) {
    if (r + 8 <= rows) mk<8, NC>(K, A + r * ars, ars, aks, Bm, ldb, bcs, C + r * ldc, ldc, add), r += 8;
  }
  if constexpr (RR > 4) {
    if (r + 4 <= rows) mk<4, NC>(K, A + r * ars, ars, aks, Bm, ldb, bcs, C + r * ldc, ldc, add), r += 4;
  }
  if (r + 2 <= rows) mk<2, NC>(K, A + r * ars, ars, aks, Bm, ldb, bcs, C + r * ldc, ldc, add), r += 2;
  if (r < rows) mk<1, NC>(K, A + r * ars, ars, aks, Bm, ldb, bcs, C + r * ldc, ldc, add);
}

// C (rows × cols, cols a multiple of W) = or += A (rows × K, strides ars, aks) · Bm (K × cols: row stride ldb,
// column vector stride bcs), column groups of 4 vectors (6 rows a step), then 3 (8 rows), 2 (12 rows) or 1 (16 rows).
LMF_AI void tileGemm(int64_t rows, int64_t cols, int64_t K, const float* A, int64_t ars, int64_t aks, const float* Bm, int64_t ldb,
                     int64_t bcs, float* C, int64_t ldc, bool add) {
  int64_t c = 0;
  for (; c + 4 * W <= cols; c += 4 * W) mkRows<6, 4>(rows, K, A, ars, aks, Bm + c / W * bcs, ldb, bcs, C + c, ldc, add);
  switch ((cols - c) / W) {
    case 3: mkRows<8, 3>(rows, K, A, ars, aks, Bm + c / W * bcs, ldb, bcs, C + c, ldc, add); break;
    case 2: mkRows<12, 2>(rows, K, A, ars, aks, Bm + c / W * bcs, ldb, bcs, C + c, ldc, add); break;
    case 1: mkRows<16, 1>(rows, K, A, ars, aks, Bm + c / W * bcs, ldb, bcs, C + c, ldc, add); break;
    default: break;
  }
}

// 16 × 16 transpose of r[0..15] in registers: four rounds of two-source shuffles, each swapping the off-diagonal
// s × s blocks of row pairs (i, i + s) for s = 8, 4, 2, 1 (one vpermt2ps per output vector on AVX-512).
template <int S>
LMF_AI void swapBlocks(vf& a, vf& b) {
  vf x, y;
  if constexpr (S == 8) {
    x = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    y = __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  } else if constexpr (S == 4) {
    x = __builtin_shufflevector(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    y = __builtin_shufflevector(a, b, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  } else if constexpr (S == 2) {
    x = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    y = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  } else {
    x = __builtin_shufflevector(a, b, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    y = __builtin_shufflevector(a, b, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
  a = x, b = y;
}

template <int S>
LMF_AI void swapRound(vf* r) {
  for (int i = 0; i < 16; i++)
    if ((i & S) == 0) swapBlocks<S>(r[i], r[i + S]);
}

// Panel c / W of dst (Dp × W, contiguous) = rows [c, c + W) of src (stride Dp) transposed, rows at or past n1 as
// zeros (c a multiple of W, Dp a multiple of W).
LMF_AI void transposeChunk(const float* src, int64_t c, int64_t n1, int64_t Dp, float* dst) {
  static_assert(W == 16, "transposeChunk is written for 16-float vectors");
  const vf zero = {0.f};
  for (int64_t d0 = 0; d0 < Dp; d0 += W) {
    vf r[16];
    for (int i = 0; i < 16; i++) r[i] = c + i < n1 ? vld(src + (c + i) * Dp + d0) : zero;
    swapRound<8>(r), swapRound<4>(r), swapRound<2>(r), swapRound<1>(r);
    for (int i = 0; i < 16; i++) vst(dst + c * Dp + (d0 + i) * W, r[i]);
  }
}

int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// One head in slot order: padded rows (N × Dp) and per-slot figures.
struct Head {
  int64_t N, Dp, D;
  float scale, selfPenalty;
  bool unitKeys;
  const int64_t* from;  // first key slot of each query slot
  float *qg, *kg, *vg, *rk;
  // Keys (and, for the backward, values) transposed in panels of W slots: slot n, dim d at [n / W][d][n % W], each
  // panel Dp·W contiguous floats (a tile's Kᵀ is a few whole panels, not Dp rows far apart), slots past N zero.
  float *kT, *vT;
  float *og, *lseS;                 // forward: each slot's normalised output and log-sum-exp
  float *gog, *delta, *Ls;          // backward: gout rows, gout·out and the merged lse of each slot's position
  float *gqg, *gkg, *gvg;           // backward: slot-order gradients
};

// Forward of query slots [n0, n1) of one group run: og rows and lseS.
// The key tile starts at from(n0) rounded down to a panel border (k0); the scores of the few keys before from(n0)
// are masked like any unseen key, and the products that follow start at from(n0) (kf).
LMF_CLONES void forwardBlock(const Head& h, int64_t n0, int64_t n1, float* S) {
  const int64_t Dp = h.Dp, kf = h.from[n0], k0 = kf / W * W, nk = n1 - k0, nkp = roundUp(nk, W), nq = n1 - n0;
  const float NEG_INF = -std::numeric_limits<float>::infinity();
  tileGemm(nq, nkp, Dp, h.qg + n0 * Dp, Dp, 1, h.kT + k0 * Dp, W, Dp * W, S, nkp, false);  // (nq, nkp) raw scores
  // Softmax over whole rows of the tile (nkp is a multiple of W: full vectors, no scalar tails), keys outside
  // [from(n), n] masked to −∞ so that exp gives exactly 0 there.
  float inv[Bq];
  for (int64_t i = 0; i < nq; i++) {
    const int64_t n = n0 + i, lo = h.from[n] - k0, hi = n - k0;
    float* row = S + i * nkp;
    float mx = NEG_INF;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < nkp; j++) {
      float x = h.scale * row[j] - (j == hi ? h.selfPenalty : 0.f);  // only the query itself shares its position
      x = j >= lo && j <= hi ? x : NEG_INF;
      row[j] = x;
      mx = x > mx ? x : mx;
    }
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < nkp; j++) {
      const float e = vexp(row[j] - mx);
      row[j] = e;
      sum += e;
    }
    inv[i] = 1.f / sum;
    h.lseS[n] = mx + std::log(sum);
  }
  float* o = h.og + n0 * Dp;
  tileGemm(nq, Dp, n1 - kf, S + (kf - k0), nkp, 1, h.vg + kf * Dp, Dp, W, o, Dp, false);  // (nq, Dp) = P · V
  for (int64_t i = 0; i < nq; i++) {
    const float s = inv[i];
#pragma omp simd
    for (int64_t d = 0; d < Dp; d++) o[i * Dp + d] *= s;
  }
}

// Backward of one group run [g0, g1), with P = exp(s − L_p) and δ_p = gout_p·out_p per block:
// dS = P ∘ (gout·Vᵀ − δ)·scale; gq = dS·K; gk += dSᵀ·Q; gv += Pᵀ·gout. Key rows never leave the run, so runs
// are independent (no races); with unitKeys the run's key gradients are mapped back to the raw keys at the end.
LMF_CLONES void backwardRun(const Head& h, int64_t g0, int64_t g1, float* P, float* dS) {
  const int64_t Dp = h.Dp;
  std::memset(h.gkg + g0 * Dp, 0, static_cast<size_t>((g1 - g0) * Dp) * sizeof(float));
  std::memset(h.gvg + g0 * Dp, 0, static_cast<size_t>((g1 - g0) * Dp) * sizeof(float));
  for (int64_t n0 = g0; n0 < g1; n0 += Bq) {
    // As in the forward: the tile from a panel border k0, the products from the run's own keys kf on (their
    // rows of gk and gv belong to this run alone).
    const int64_t n1 = std::min(n0 + Bq, g1), kf = h.from[n0], k0 = kf / W * W, nk = n1 - k0, nkp = roundUp(nk, W), nq = n1 - n0;
    tileGemm(nq, nkp, Dp, h.qg + n0 * Dp, Dp, 1, h.kT + k0 * Dp, W, Dp * W, P, nkp, false);     // raw scores
    tileGemm(nq, nkp, Dp, h.gog + n0 * Dp, Dp, 1, h.vT + k0 * Dp, W, Dp * W, dS, nkp, false);  // gout · v
    for (int64_t i = 0; i < nq; i++) {  // whole rows of the tile, as in the forward (masked keys give exactly 0)
      const int64_t n = n0 + i, lo = h.from[n] - k0, hi = n - k0;
      float* pr = P + i * nkp;
      float* dr = dS + i * nkp;
      const float L = h.Ls[n], dl = h.delta[n];
      const bool none = L == -std::numeric_limits<float>::infinity();
#pragma omp simd
      for (int64_t j = 0; j < nkp; j++) {
        const bool in = !none && j >= lo && j <= hi;
        const float e = vexp(h.scale * pr[j] - (j == hi ? h.selfPenalty : 0.f) - L);
        pr[j] = in ? e : 0.f;
        dr[j] = in ? e * (dr[j] - dl) * h.scale : 0.f;
      }
    }
    const int64_t sk = kf - k0, nkf = n1 - kf;
    tileGemm(nq, Dp, nkf, dS + sk, nkp, 1, h.kg + kf * Dp, Dp, W, h.gqg + n0 * Dp, Dp, false);
    tileGemm(nkf, Dp, nq, dS + sk, 1, nkp, h.qg + n0 * Dp, Dp, W, h.gkg + kf * Dp, Dp, true);
    tileGemm(nkf, Dp, nq, P + sk, 1, nkp, h.gog + n0 * Dp, Dp, W, h.gvg + kf * Dp, Dp, true);
  }
  if (h.unitKeys) {  // gk = r·(g − k̂(k̂·g)) maps the gradient of k̂ back to the raw k
    for (int64_t n = g0; n < g1; n++) {
      float* g = h.gkg + n * Dp;
      const float* kh = h.kg + n * Dp;
      const float kg = dot(kh, g, Dp), r = h.rk[n];
#pragma omp simd
      for (int64_t d = 0; d < Dp; d++) g[d] = r * (g[d] - kh[d] * kg);
    }
  }
}

// dst row n = x·src[0, D), zero past D (the pad adds nothing to a dot product).
LMF_AI void putRow(float* dst, int64_t n, const float* __restrict src, float x, int64_t D, int64_t Dp) {
  float* __restrict r = dst + n * Dp;
#pragma omp simd
  for (int64_t d = 0; d < Dp; d++) r[d] = d < D ? src[d] * x : 0.f;
}

// The group runs of a head (starts at every round border and group change) and their query blocks.
void groupRuns(const Problem& p, const int32_t* groups, std::vector<int64_t>& runs, std::vector<int64_t>& blocks) {
  const int64_t L = p.N / p.rounds;
  runs.clear(), blocks.clear();
  for (int64_t n = 0; n < p.N; n++)
    if (n % L == 0 || groups[n] != groups[n - 1]) runs.push_back(n);
  runs.push_back(p.N);
  for (size_t r = 0; r + 1 < runs.size(); r++)
    for (int64_t n0 = runs[r]; n0 < runs[r + 1]; n0 += Bq) blocks.push_back(n0), blocks.push_back(std::min(n0 + Bq, runs[r + 1]));
}

// Uninitialised float storage that only grows (no fill pass: every element a kernel reads is written first).
struct Scratch {
  std::unique_ptr<float[]> p;
  size_t n = 0;
  float* get(size_t want) {
    if (want > n) p.reset(new float[want]), n = want;
    return p.get();
  }
};

// Buffers of one head, reused across heads.
struct Buffers {
  Scratch qg, kg, vg, kT, vT, rk, og, lseS, gog, delta, Ls, gqg, gkg, gvg;
  std::vector<int64_t> from, runs, blocks, at;
  std::vector<int32_t> list;
  Head head(const Problem& p, bool backward) {
    const int64_t Dp = roundUp(p.D, W);
    const size_t rows = static_cast<size_t>(p.N * Dp), n = static_cast<size_t>(p.N);
    const size_t cols = static_cast<size_t>(roundUp(p.N, W) * Dp);  // whole panels
    Head h{};
    h.N = p.N, h.Dp = Dp, h.D = p.D, h.scale = p.scale, h.selfPenalty = p.selfPenalty, h.unitKeys = p.unitKeys;
    from.resize(n);
    h.from = from.data(), h.qg = qg.get(rows), h.kg = kg.get(rows), h.vg = vg.get(rows), h.rk = rk.get(n);
    h.kT = kT.get(cols);
    if (backward) {
      h.vT = vT.get(cols);
      h.gog = gog.get(rows), h.delta = delta.get(n), h.Ls = Ls.get(n), h.gqg = gqg.get(rows), h.gkg = gkg.get(rows), h.gvg = gvg.get(rows);
    } else {
      h.og = og.get(rows), h.lseS = lseS.get(n);
    }
    return h;
  }
};

// Positions [t0, t1) of a head into their slots (slot order): each position's q, k, v rows are read once, in
// position order (streaming reads; the slots sit at scattered places, and scattered writes stall far less than
// scattered reads), and copied to each slot that holds it (one per hash round). With unitKeys the key row is
// normalised once: k̂ = k·r, r = (Σk² + 1e-12)^(−1/2) kept per slot in rk. With gout (backward) also gout's rows,
// δ = gout·out and the position's merged lse.
LMF_CLONES void gatherPositions(const Problem& p, const View* gout, const Head& h, const int64_t* at, const int32_t* list,
                                const float* lse, int64_t t0, int64_t t1, int64_t b, int64_t hh) {
  const int64_t D = p.D, Dp = h.Dp;
  for (int64_t t = t0; t < t1; t++) {
    if (at[t] == at[t + 1]) continue;
    const float *q = p.q.row(b, hh, t), *k = p.k.row(b, hh, t), *v = p.v.row(b, hh, t);
    float r = 1.f;
    if (p.unitKeys) {
      float ss = 0.f;
#pragma omp simd reduction(+ : ss)
      for (int64_t d = 0; d < D; d++) ss += k[d] * k[d];
      r = 1.f / std::sqrt(ss + 1e-12f);
    }
    const float* go = gout ? gout->row(b, hh, t) : nullptr;
    const float delta = gout ? dot(go, p.out.row(b, hh, t), D) : 0.f;
    for (int64_t i = at[t]; i < at[t + 1]; i++) {
      const int64_t n = list[i];
      putRow(h.qg, n, q, 1.f, D, Dp);
      putRow(h.kg, n, k, r, D, Dp);
      putRow(h.vg, n, v, 1.f, D, Dp);
      h.rk[n] = r;
      if (gout) {
        putRow(h.gog, n, go, 1.f, D, Dp);
        h.delta[n] = delta;
        h.Ls[n] = lse[t];
      }
    }
  }
}

// Keys (and with values, values) of slots [c, ce) transposed into kT (vT), 16 slots a step in registers.
LMF_CLONES void transposeSlots(const Head& h, int64_t c, int64_t ce, bool values) {
  for (int64_t c0 = c; c0 < ce; c0 += W) {
    transposeChunk(h.kg, c0, h.N, h.Dp, h.kT);
    if (values) transposeChunk(h.vg, c0, h.N, h.Dp, h.vT);
  }
}

// The slots of each position: list[at[t], at[t + 1]) in slot order (a counting sort of the slots by position).
void slotsByPosition(const int32_t* slots, int64_t N, int64_t T, std::vector<int64_t>& at, std::vector<int32_t>& list) {
  at.assign(static_cast<size_t>(T + 1), 0);
  list.resize(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; n++) at[slots[n] + 1]++;
  for (int64_t t = 0; t < T; t++) at[t + 1] += at[t];
  for (int64_t n = 0; n < N; n++) list[at[slots[n]]++] = static_cast<int32_t>(n);
  for (int64_t t = T; t > 0; t--) at[t] = at[t - 1];  // the fill moved each start to the next one's
  at[0] = 0;
}

// Adds the slot-order gradients of the slots whose positions lie in [t0, t1) to gq, gk, gv (head offset base).
LMF_CLONES void scatterRange(const Head& h, const int32_t* slots, int64_t t0, int64_t t1, int64_t base, float* gq, float* gk, float* gv) {
  const int64_t D = h.D, Dp = h.Dp;
  for (int64_t n = 0; n < h.N; n++) {
    if (slots[n] < t0 || slots[n] >= t1) continue;
    const int64_t at = base + static_cast<int64_t>(slots[n]) * D;
#pragma omp simd
    for (int64_t d = 0; d < D; d++) {
      gq[at + d] += h.gqg[n * Dp + d];
      gk[at + d] += h.gkg[n * Dp + d];
      gv[at + d] += h.gvg[n * Dp + d];
    }
  }
}

// Key-tile width bound: a block's tile holds at most min(window, N) + Bq keys, and up to W − 1 more before them
// (its start rounded down to a panel border).
int64_t maxTile(const Problem& p) { return roundUp(std::min(p.window, p.N) + Bq, W) + W; }

// Forward of one head: blocks in parallel (each writes only its own slots), then a serial merge of rounds.
void forwardHead(const Problem& p, int64_t b, int64_t hh, Buffers& buf, int threads) {
  const int64_t D = p.D, N = p.N;
  const int32_t* slots = p.slots + (b * p.H + hh) * N;
  const int32_t* groups = p.groups + (b * p.H + hh) * N;
  float* lse = p.lse + (b * p.H + hh) * p.T;
  const float NEG_INF = -std::numeric_limits<float>::infinity();
  Head h = buf.head(p, false);
  keyStarts(p, groups, buf.from);
  slotsByPosition(slots, N, p.T, buf.at, buf.list);
  const int64_t* at = buf.at.data();
  const int32_t* list = buf.list.data();
  groupRuns(p, groups, buf.runs, buf.blocks);
  const int64_t nb = static_cast<int64_t>(buf.blocks.size() / 2), Dp = h.Dp, tile = maxTile(p);
#pragma omp parallel if (threads > 1) num_threads(threads)
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < p.T; t += 64) gatherPositions(p, nullptr, h, at, list, nullptr, t, std::min(t + 64, p.T), b, hh);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < N; c += 4 * W) transposeSlots(h, c, std::min(c + 4 * W, N), false);
    std::vector<float> S(static_cast<size_t>(Bq * tile));
#pragma omp for schedule(dynamic, 4)
    for (int64_t i = 0; i < nb; i++) forwardBlock(h, buf.blocks[2 * i], buf.blocks[2 * i + 1], S.data());
    // Rounds meet at positions: each thread merges the slots of its own range of positions, in slot order.
    const int nth = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t t0 = p.T * me / nth, t1 = p.T * (me + 1) / nth;
    for (int64_t t = t0; t < t1; t++) {
      lse[t] = NEG_INF;
      std::memset(p.out.row(b, hh, t), 0, static_cast<size_t>(D) * sizeof(float));
    }
    for (int64_t n = 0; n < N; n++) {
      const int32_t pos = slots[n];
      if (pos < t0 || pos >= t1) continue;
      const float lseN = h.lseS[n], prev = lse[pos];
      const float* o = h.og + n * Dp;
      float* orow = p.out.row(b, hh, pos);
      if (prev == NEG_INF) {
        std::memcpy(orow, o, static_cast<size_t>(D) * sizeof(float));
        lse[pos] = lseN;
      } else {
        // Weights relative to the larger of the two (one of them is exactly 1), so they sum to 1 even where a
        // self penalty has pushed both log-sum-exps to large magnitudes.
        const float hi = std::max(prev, lseN);
        const float a0 = std::exp(prev - hi), a1 = std::exp(lseN - hi), tot = a0 + a1;
        const float keepOld = a0 / tot, wNew = a1 / tot;
        for (int64_t d = 0; d < D; d++) orow[d] = orow[d] * keepOld + o[d] * wNew;
        lse[pos] = hi + std::log(tot);
      }
    }
  }
}

// Backward of one head: group runs in parallel into slot-order gradients, then a serial scatter to positions
// (a position has one slot per round, so the scatter is where rounds meet).
void backwardHead(const Problem& p, const View& gout, float* gq, float* gk, float* gv, int64_t b, int64_t hh, Buffers& buf, int threads) {
  const int64_t D = p.D, N = p.N;
  const int32_t* slots = p.slots + (b * p.H + hh) * N;
  const int32_t* groups = p.groups + (b * p.H + hh) * N;
  const float* lse = p.lse + (b * p.H + hh) * p.T;
  const int64_t base = (b * p.H + hh) * p.T * D;
  Head h = buf.head(p, true);
  keyStarts(p, groups, buf.from);
  slotsByPosition(slots, N, p.T, buf.at, buf.list);
  const int64_t* at = buf.at.data();
  const int32_t* list = buf.list.data();
  groupRuns(p, groups, buf.runs, buf.blocks);
  const int64_t nr = static_cast<int64_t>(buf.runs.size()) - 1, tile = maxTile(p);
#pragma omp parallel if (threads > 1) num_threads(threads)
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < p.T; t += 64) gatherPositions(p, &gout, h, at, list, lse, t, std::min(t + 64, p.T), b, hh);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < N; c += 4 * W) transposeSlots(h, c, std::min(c + 4 * W, N), true);
    std::vector<float> P(static_cast<size_t>(Bq * tile)), dS(P.size());
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < nr; r++) backwardRun(h, buf.runs[r], buf.runs[r + 1], P.data(), dS.data());
    // Rounds meet at positions: each thread adds the slots of its own range of positions.
    const int nth = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t t0 = p.T * me / nth, t1 = p.T * (me + 1) / nth;
    scatterRange(h, slots, t0, t1, base, gq, gk, gv);
  }
}

// Heads to threads: whole heads per thread while at least as many heads are left as threads (no barriers inside a
// call: on busy cores each costs a time slice), then each remaining head split over all threads (3 heads on 2
// threads: one each, then the third shared, instead of one thread doing two while the other waits). Every output
// element is written by one thread in a fixed order, so results do not depend on the split. f(bh, buf, threads).
template <class F>
void eachHead(const Problem& p, F&& f) {
  const int64_t heads = p.B * p.H;
  const bool par = p.N * (std::min(p.window, p.N) + 1) * p.D > (1 << 16);
  const int nth = par ? threadPolicy().cap() : 1;
  const int64_t whole = nth > 1 ? heads / nth * nth : 0;
  if (whole > 0) {
#pragma omp parallel num_threads(nth)
    {
      Buffers buf;
#pragma omp for schedule(static)
      for (int64_t bh = 0; bh < whole; bh++) f(bh, buf, 1);
    }
  }
  Buffers buf;
  for (int64_t bh = whole; bh < heads; bh++) f(bh, buf, nth);
}

// bucketAttentionForward(q, qLay, k, kLay, v, vLay, out, outLay, lse, slots, groups, dims, selfPenalty, scale, unitKeys)
napi_value bucketAttentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "bucketAttentionForward", 15);
  Problem p{};
  if (!readProblem(a, &p) || !checkSorted(a, p)) return nullptr;
  eachHead(p, [&](int64_t bh, Buffers& buf, int threads) { forwardHead(p, bh / p.H, bh % p.H, buf, threads); });
  return a.undefined();
}

// bucketAttentionBackward(<forward's 15 arguments>, gout, goutLay, gq, gk, gv): gq, gk, gv (B, H, T, D)
// contiguous are accumulated.
napi_value bucketAttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "bucketAttentionBackward", 20);
  Problem p{};
  if (!readProblem(a, &p) || !checkSorted(a, p)) return nullptr;
  View gout{};
  if (!viewArg(a, 15, "gout", p, &gout)) return nullptr;
  size_t l1 = 0, l2 = 0, l3 = 0;
  float* gq = f32Arg(a, 17, "gq", &l1);
  float* gk = f32Arg(a, 18, "gk", &l2);
  float* gv = f32Arg(a, 19, "gv", &l3);
  const int64_t need = satMul(p.B * p.H, p.T, p.D);
  if (!needLength(a, "gq", l1, need, "B·H·T·D") || !needLength(a, "gk", l2, need, "B·H·T·D") || !needLength(a, "gv", l3, need, "B·H·T·D"))
    return nullptr;
  // Heads own disjoint rows of gq, gk, gv.
  eachHead(p, [&](int64_t bh, Buffers& buf, int threads) { backwardHead(p, gout, gq, gk, gv, bh / p.H, bh % p.H, buf, threads); });
  return a.undefined();
}

}  // namespace

void registerSparseAttention(napi_env env, napi_value exports) {
  defineFunction(env, exports, "bucketAttentionForward", bucketAttentionForward);
  defineFunction(env, exports, "bucketAttentionBackward", bucketAttentionBackward);
}

}  // namespace lmf

// Kernel family 'sparse attention' of the native backend: causal attention over gathered, grouped slots, the shared core
// of Reformer (LSH) and Routing attention (contract: BucketAttentionArgs in src/core/kernels.ts), forward and
// backward. One thread per (b, h) head: a head's slots merge into its own rows only, so there are no races.
// Not the hashing or clustering that picks the slots (src/nn/lsh-attention.ts, routing-attention.ts).
#include <omp.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
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

// Per-head scratch: the head's q, k, v rows gathered into slot order (contiguous, so a query's keys are one
// contiguous run of rows) and the first key slot of every query slot.
struct Scratch {
  std::vector<float> qg, kg, vg, s, ds, o, rk;
  std::vector<int64_t> from;
};

// With unitKeys: kg rows → k̂ = k·r, r = (Σk² + 1e-12)^(−1/2) kept in rk (the backward maps k̂'s gradient back).
void normalizeRows(const Problem& p, Scratch& w) {
  if (!p.unitKeys) return;
  const int64_t D = p.D;
  for (int64_t n = 0; n < p.N; n++) {
    float* kr = w.kg.data() + n * D;
    float ss = 0.f;
    for (int64_t d = 0; d < D; d++) ss += kr[d] * kr[d];
    const float r = 1.f / std::sqrt(ss + 1e-12f);
    w.rk[n] = r;
    for (int64_t d = 0; d < D; d++) kr[d] *= r;
  }
}

// Gathers rows of a (B, H, T, D) view into slot order: dst[n] = src[b, h, slots[n]].
void gatherRows(const View& src, const int32_t* slots, int64_t N, int64_t D, int64_t b, int64_t h, float* dst) {
  for (int64_t n = 0; n < N; n++) std::memcpy(dst + n * D, src.row(b, h, slots[n]), static_cast<size_t>(D) * sizeof(float));
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

// Forward of one head: each query slot's softmax over its keys, merged into its position by log-sum-exp.
LMF_CLONES void forwardHead(const Problem& p, int64_t b, int64_t h, Scratch& w) {
  const int64_t D = p.D, N = p.N;
  const int32_t* slots = p.slots + (b * p.H + h) * N;
  const int32_t* groups = p.groups + (b * p.H + h) * N;
  float* lse = p.lse + (b * p.H + h) * p.T;
  const float NEG_INF = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < p.T; t++) {
    lse[t] = NEG_INF;
    std::memset(p.out.row(b, h, t), 0, static_cast<size_t>(D) * sizeof(float));
  }
  gatherRows(p.q, slots, N, D, b, h, w.qg.data());
  gatherRows(p.k, slots, N, D, b, h, w.kg.data());
  gatherRows(p.v, slots, N, D, b, h, w.vg.data());
  normalizeRows(p, w);
  keyStarts(p, groups, w.from);
  float* s = w.s.data();
  float* o = w.o.data();
  for (int64_t n = 0; n < N; n++) {
    const int64_t from = w.from[n];
    const int32_t pos = slots[n];
    const float* qr = w.qg.data() + n * D;
    // Three passes over the query's keys (scores, exp, weighted values) so that each one vectorises.
    const int64_t nk = n + 1 - from;
    float mx = NEG_INF;
    for (int64_t i = 0; i < nk; i++) {
      const int64_t m = from + i;
      const float x = p.scale * dot(qr, w.kg.data() + m * D, D) - (slots[m] == pos ? p.selfPenalty : 0.f);
      s[i] = x;
      mx = std::max(mx, x);
    }
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < nk; i++) {
      const float e = vexp(s[i] - mx);
      s[i] = e;
      sum += e;
    }
    std::fill(o, o + D, 0.f);
    for (int64_t i = 0; i < nk; i++) {
      const float e = s[i];
      const float* vr = w.vg.data() + (from + i) * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) o[d] += e * vr[d];
    }
    const float lseN = mx + std::log(sum);
    const float prev = lse[pos];
    float* orow = p.out.row(b, h, pos);
    if (prev == NEG_INF) {
      const float inv = 1.f / sum;
      for (int64_t d = 0; d < D; d++) orow[d] = o[d] * inv;
      lse[pos] = lseN;
    } else {
      // Weights relative to the larger of the two (one of them is exactly 1), so they sum to 1 even where a
      // self penalty has pushed both log-sum-exps to large magnitudes.
      const float hi = std::max(prev, lseN);
      const float a0 = std::exp(prev - hi), a1 = std::exp(lseN - hi), tot = a0 + a1;
      const float keepOld = a0 / tot, wNew = a1 / tot / sum;
      for (int64_t d = 0; d < D; d++) orow[d] = orow[d] * keepOld + o[d] * wNew;
      lse[pos] = hi + std::log(tot);
    }
  }
}

// Backward of one head in slot order, with P_m = exp(s_m − L_p) and δ_p = gout_p·out_p:
// dS_m = P_m (gout_p·v_m − δ_p); gq_p += scale·dS_m k_m; gk_m += scale·dS_m q_p; gv_m += P_m gout_p.
// The slot-order gradients are scattered (added) to positions at the end.
LMF_CLONES void backwardHead(const Problem& p, const View& gout, float* gq, float* gk, float* gv, int64_t b, int64_t h, Scratch& w,
                  std::vector<float>& gog, std::vector<float>& gqg, std::vector<float>& gkg, std::vector<float>& gvg) {
  const int64_t D = p.D, N = p.N;
  const int32_t* slots = p.slots + (b * p.H + h) * N;
  const int32_t* groups = p.groups + (b * p.H + h) * N;
  const float* lse = p.lse + (b * p.H + h) * p.T;
  const int64_t head = (b * p.H + h) * p.T * D;
  gatherRows(p.q, slots, N, D, b, h, w.qg.data());
  gatherRows(p.k, slots, N, D, b, h, w.kg.data());
  gatherRows(p.v, slots, N, D, b, h, w.vg.data());
  gatherRows(gout, slots, N, D, b, h, gog.data());
  normalizeRows(p, w);
  keyStarts(p, groups, w.from);
  std::fill(gqg.begin(), gqg.end(), 0.f);
  std::fill(gkg.begin(), gkg.end(), 0.f);
  std::fill(gvg.begin(), gvg.end(), 0.f);
  for (int64_t n = 0; n < N; n++) {
    const int32_t pos = slots[n];
    const float L = lse[pos];
    if (L == -std::numeric_limits<float>::infinity()) continue;
    const float* qr = w.qg.data() + n * D;
    const float* gor = gog.data() + n * D;
    const float delta = dot(gor, p.out.row(b, h, pos), D);
    float* gqr = gqg.data() + n * D;
    const int64_t from = w.from[n], nk = n + 1 - from;
    float* P = w.s.data();
    float* dS = w.ds.data();
    for (int64_t i = 0; i < nk; i++) {
      const int64_t m = from + i;
      P[i] = p.scale * dot(qr, w.kg.data() + m * D, D) - (slots[m] == pos ? p.selfPenalty : 0.f) - L;
      dS[i] = dot(gor, w.vg.data() + m * D, D) - delta;
    }
#pragma omp simd
    for (int64_t i = 0; i < nk; i++) {
      P[i] = vexp(P[i]);
      dS[i] *= P[i] * p.scale;
    }
    for (int64_t i = 0; i < nk; i++) {
      const int64_t m = from + i;
      const float* kr = w.kg.data() + m * D;
      const float Pm = P[i], dSm = dS[i];
      float* gkr = gkg.data() + m * D;
      float* gvr = gvg.data() + m * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) {
        gqr[d] += dSm * kr[d];
        gkr[d] += dSm * qr[d];
        gvr[d] += Pm * gor[d];
      }
    }
  }
  for (int64_t n = 0; n < N; n++) {
    const int64_t at = head + static_cast<int64_t>(slots[n]) * D;
    if (p.unitKeys) {  // gk = r·(g − k̂(k̂·g)) maps the gradient of k̂ back to the raw k
      float* g = gkg.data() + n * D;
      const float* kh = w.kg.data() + n * D;
      const float kg = dot(kh, g, D), r = w.rk[n];
      for (int64_t d = 0; d < D; d++) g[d] = r * (g[d] - kh[d] * kg);
    }
#pragma omp simd
    for (int64_t d = 0; d < D; d++) {
      gq[at + d] += gqg[n * D + d];
      gk[at + d] += gkg[n * D + d];
      gv[at + d] += gvg[n * D + d];
    }
  }
}

Scratch makeScratch(const Problem& p) {
  Scratch w;
  const size_t rows = static_cast<size_t>(p.N * p.D);
  w.qg.resize(rows), w.kg.resize(rows), w.vg.resize(rows);
  w.s.resize(static_cast<size_t>(p.window + 1)), w.ds.resize(static_cast<size_t>(p.window + 1)), w.o.resize(static_cast<size_t>(std::max<int64_t>(p.D, 1)));
  w.from.resize(static_cast<size_t>(p.N));
  w.rk.resize(static_cast<size_t>(p.N));
  return w;
}

// bucketAttentionForward(q, qLay, k, kLay, v, vLay, out, outLay, lse, slots, groups, dims, selfPenalty, scale, unitKeys)
napi_value bucketAttentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "bucketAttentionForward", 15);
  Problem p{};
  if (!readProblem(a, &p) || !checkSorted(a, p)) return nullptr;
  const int64_t heads = p.B * p.H;
#pragma omp parallel for schedule(dynamic, 1) if (heads > 1 && p.N * (p.window + 1) * p.D > (1 << 16))
  for (int64_t bh = 0; bh < heads; bh++) {
    Scratch w = makeScratch(p);
    forwardHead(p, bh / p.H, bh % p.H, w);
  }
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
  const int64_t heads = p.B * p.H;
#pragma omp parallel for schedule(dynamic, 1) if (heads > 1 && p.N * (p.window + 1) * p.D > (1 << 16))
  for (int64_t bh = 0; bh < heads; bh++) {
    Scratch w = makeScratch(p);
    const size_t rows = static_cast<size_t>(p.N * p.D);
    std::vector<float> gog(rows), gqg(rows), gkg(rows), gvg(rows);
    backwardHead(p, gout, gq, gk, gv, bh / p.H, bh % p.H, w, gog, gqg, gkg, gvg);
  }
  return a.undefined();
}

}  // namespace

void registerSparseAttention(napi_env env, napi_value exports) {
  defineFunction(env, exports, "bucketAttentionForward", bucketAttentionForward);
  defineFunction(env, exports, "bucketAttentionBackward", bucketAttentionBackward);
}

}  // namespace lmf

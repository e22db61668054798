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
};

inline float dot(const float* x, const float* y, int64_t D) {
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
// (q, qLay, k, kLay, v, vLay, out, outLay, lse, slots, groups, [B, H, T, D, N, rounds, window], selfPenalty, scale)
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

// The first key slot query slot n may see: window slots back, not before its round.
inline int64_t keyFrom(const Problem& p, int64_t n) {
  const int64_t L = p.N / p.rounds;
  return std::max(n - n % L, n - p.window);
}

// Forward of one head: each query slot's softmax over its keys, merged into its position by log-sum-exp.
void forwardHead(const Problem& p, int64_t b, int64_t h, std::vector<float>& s, std::vector<float>& o) {
  const int64_t D = p.D;
  const int32_t* slots = p.slots + (b * p.H + h) * p.N;
  const int32_t* groups = p.groups + (b * p.H + h) * p.N;
  float* lse = p.lse + (b * p.H + h) * p.T;
  const float NEG_INF = -std::numeric_limits<float>::infinity();
  for (int64_t t = 0; t < p.T; t++) {
    lse[t] = NEG_INF;
    std::memset(p.out.row(b, h, t), 0, static_cast<size_t>(D) * sizeof(float));
  }
  for (int64_t n = 0; n < p.N; n++) {
    const int64_t from = keyFrom(p, n), to = n + 1;
    const int32_t pos = slots[n], g = groups[n];
    const float* qr = p.q.row(b, h, pos);
    float mx = NEG_INF;
    for (int64_t m = from; m < to; m++) {
      const int32_t j = slots[m];
      float x = NEG_INF;
      if (j <= pos && groups[m] == g) x = p.scale * dot(qr, p.k.row(b, h, j), D) - (j == pos ? p.selfPenalty : 0.f);
      s[m - from] = x;
      mx = std::max(mx, x);
    }
    if (mx == NEG_INF) continue;  // cannot happen (a slot always sees itself), kept for safety
    float sum = 0.f;
    std::fill(o.begin(), o.begin() + D, 0.f);
    for (int64_t m = from; m < to; m++) {
      if (s[m - from] == NEG_INF) continue;
      const float e = std::exp(s[m - from] - mx);
      sum += e;
      const float* vr = p.v.row(b, h, slots[m]);
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
      const float merged = hi + std::log(tot);
      const float keepOld = a0 / tot, wNew = a1 / tot / sum;
      for (int64_t d = 0; d < D; d++) orow[d] = orow[d] * keepOld + o[d] * wNew;
      lse[pos] = merged;
    }
  }
}

// Backward of one head, with P_m = exp(s_m − L_p) and δ_p = gout_p·out_p:
// dS_m = P_m (gout_p·v_m − δ_p); gq_p += scale·dS_m k_m; gk_m += scale·dS_m q_p; gv_m += P_m gout_p.
void backwardHead(const Problem& p, const View& gout, float* gq, float* gk, float* gv, int64_t b, int64_t h) {
  const int64_t D = p.D;
  const int32_t* slots = p.slots + (b * p.H + h) * p.N;
  const int32_t* groups = p.groups + (b * p.H + h) * p.N;
  const float* lse = p.lse + (b * p.H + h) * p.T;
  const int64_t head = (b * p.H + h) * p.T * D;
  for (int64_t n = 0; n < p.N; n++) {
    const int64_t from = keyFrom(p, n), to = n + 1;
    const int32_t pos = slots[n], g = groups[n];
    const float L = lse[pos];
    if (L == -std::numeric_limits<float>::infinity()) continue;
    const float* qr = p.q.row(b, h, pos);
    const float* gor = gout.row(b, h, pos);
    const float delta = dot(gor, p.out.row(b, h, pos), D);
    float* gqr = gq + head + pos * D;
    for (int64_t m = from; m < to; m++) {
      const int32_t j = slots[m];
      if (j > pos || groups[m] != g) continue;
      const float* kr = p.k.row(b, h, j);
      const float* vr = p.v.row(b, h, j);
      const float P = std::exp(p.scale * dot(qr, kr, D) - (j == pos ? p.selfPenalty : 0.f) - L);
      const float dS = P * (dot(gor, vr, D) - delta) * p.scale;
      float* gkr = gk + head + static_cast<int64_t>(j) * D;
      float* gvr = gv + head + static_cast<int64_t>(j) * D;
#pragma omp simd
      for (int64_t d = 0; d < D; d++) {
        gqr[d] += dS * kr[d];
        gkr[d] += dS * qr[d];
        gvr[d] += P * gor[d];
      }
    }
  }
}

// bucketAttentionForward(q, qLay, k, kLay, v, vLay, out, outLay, lse, slots, groups, dims, selfPenalty, scale)
napi_value bucketAttentionForward(napi_env env, napi_callback_info info) {
  Args a(env, info, "bucketAttentionForward", 14);
  Problem p{};
  if (!readProblem(a, &p)) return nullptr;
  const int64_t heads = p.B * p.H;
  const int64_t width = p.window + 1;
#pragma omp parallel for schedule(dynamic, 1) if (heads > 1 && p.N * (p.window + 1) * p.D > (1 << 16))
  for (int64_t bh = 0; bh < heads; bh++) {
    std::vector<float> s(static_cast<size_t>(width)), o(static_cast<size_t>(std::max<int64_t>(p.D, 1)));
    forwardHead(p, bh / p.H, bh % p.H, s, o);
  }
  return a.undefined();
}

// bucketAttentionBackward(<forward's 14 arguments>, gout, goutLay, gq, gk, gv): gq, gk, gv (B, H, T, D)
// contiguous are accumulated.
napi_value bucketAttentionBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "bucketAttentionBackward", 19);
  Problem p{};
  if (!readProblem(a, &p)) return nullptr;
  View gout{};
  if (!viewArg(a, 14, "gout", p, &gout)) return nullptr;
  size_t l1 = 0, l2 = 0, l3 = 0;
  float* gq = f32Arg(a, 16, "gq", &l1);
  float* gk = f32Arg(a, 17, "gk", &l2);
  float* gv = f32Arg(a, 18, "gv", &l3);
  const int64_t need = satMul(p.B * p.H, p.T, p.D);
  if (!needLength(a, "gq", l1, need, "B·H·T·D") || !needLength(a, "gk", l2, need, "B·H·T·D") || !needLength(a, "gv", l3, need, "B·H·T·D"))
    return nullptr;
  const int64_t heads = p.B * p.H;
#pragma omp parallel for schedule(dynamic, 1) if (heads > 1 && p.N * (p.window + 1) * p.D > (1 << 16))
  for (int64_t bh = 0; bh < heads; bh++) backwardHead(p, gout, gq, gk, gv, bh / p.H, bh % p.H);
  return a.undefined();
}

}  // namespace

void registerSparseAttention(napi_env env, napi_value exports) {
  defineFunction(env, exports, "bucketAttentionForward", bucketAttentionForward);
  defineFunction(env, exports, "bucketAttentionBackward", bucketAttentionBackward);
}

}  // namespace lmf

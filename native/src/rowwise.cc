// Kernel family 'rowwise' of the native backend: reduce, sumSquares, cumsum, softmax (+ backward), layernorm
// and rmsnorm (+ backward), crossEntropy (+ backward) and topk (entry points registered in registerRowwise).
// Argument checks and the split of rows across threads live here; vectorised row loops are in rowwise_simd.inc.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#include "threads.h"
#include "checks.h"
#include "napi_util.h"
#include "simd.h"

namespace lmf {

namespace rw_avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")
#define LMF_HAS_FMA 1  // the pragma does not define __FMA__
#include "vecmath.inc"
#include "rowwise_simd.inc"
#undef LMF_HAS_FMA
#pragma GCC pop_options
}  // namespace rw_avx512
namespace rw_avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define LMF_HAS_FMA 1
#include "vecmath.inc"
#include "rowwise_simd.inc"
#undef LMF_HAS_FMA
#pragma GCC pop_options
}  // namespace rw_avx2
namespace rw_generic {
#include "vecmath.inc"
#include "rowwise_simd.inc"
}  // namespace rw_generic

namespace {

#define LMF_ROWWISE_FNS(X) \
  X(sumSquaresRange) X(softmaxRows) X(softmaxBackwardRows) X(layernormRows) X(layernormBackwardRows) X(rmsnormRows) \
  X(rmsnormBackwardRows) X(crossEntropyRows) X(crossEntropyBackwardRows) X(sumTile) X(maxTile) X(cumsumTile)

struct RowwiseIsa {
#define LMF_MEMBER(f) decltype(&rw_generic::f) f;
  LMF_ROWWISE_FNS(LMF_MEMBER)
#undef LMF_MEMBER
};

const RowwiseIsa& isaTable() {
#define LMF_ENTRY_G(f) rw_generic::f,
#define LMF_ENTRY_2(f) rw_avx2::f,
#define LMF_ENTRY_5(f) rw_avx512::f,
  static const RowwiseIsa tables[3] = {{LMF_ROWWISE_FNS(LMF_ENTRY_G)}, {LMF_ROWWISE_FNS(LMF_ENTRY_2)},
                                       {LMF_ROWWISE_FNS(LMF_ENTRY_5)}};
#undef LMF_ENTRY_G
#undef LMF_ENTRY_2
#undef LMF_ENTRY_5
  return tables[static_cast<int>(cpuIsa())];
}

constexpr int64_t kGrainElems = 1 << 15;  // elements per thread below which threading costs more than it saves

int64_t rowGrain(int64_t cols) { return std::max<int64_t>(1, kGrainElems / std::max<int64_t>(cols, 1)); }

// Splits (outer × ⌈inner/256⌉) tiles of an (outer, r, inner) array across threads.
template <class F>
void forEachTile(int64_t outer, int64_t r, int64_t inner, F f) {
  const int64_t tw = inner == 1 ? 1 : 256;
  const int64_t perOuter = (inner + tw - 1) / tw;
  const int64_t tileElems = std::max<int64_t>(1, r * std::min(inner, tw));
  parallelFor(outer * perOuter, std::max<int64_t>(1, kGrainElems / tileElems), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) {
      int64_t o = t / perOuter, n0 = (t % perOuter) * tw;
      f(o, n0, std::min(inner, n0 + tw));
    }
  });
}

// reduce(isMax, x, out, outer, r, inner, argmax | null)
napi_value reduce(napi_env env, napi_callback_info info) {
  Args a(env, info, "reduce", 7);
  bool isMax = a.boolean(0);
  size_t lx, lo, la;
  const float* x = f32Arg(a, 1, "x", &lx);
  float* out = f32Arg(a, 2, "out", &lo);
  int64_t outer = count(a, 3, "outer"), r = count(a, 4, "r"), inner = count(a, 5, "inner");
  int32_t* argmax = i32Arg(a, 6, "argmax", &la, true);
  needLength(a, "x", lx, satMul(outer, r, inner), "outer·r·inner");
  needLength(a, "out", lo, satMul(outer, inner), "outer·inner");
  if (argmax) needLength(a, "argmax", la, satMul(outer, inner), "outer·inner");
  if (a.failed) return nullptr;
  if (argmax && !isMax) {
    a.fail("argmax: only the max reduction gives indices");
    return nullptr;
  }
  if (r == 0) {  // empty reduction: the sum is 0, the max −∞ at index 0 (as the reference)
    std::fill_n(out, outer * inner, isMax ? -INFINITY : 0.0f);
    if (argmax) std::fill_n(argmax, outer * inner, 0);
    return a.undefined();
  }
  const RowwiseIsa& k = isaTable();
  if (isMax) forEachTile(outer, r, inner, [&](int64_t o, int64_t n0, int64_t n1) { k.maxTile(x, out, argmax, o, r, inner, n0, n1); });
  else forEachTile(outer, r, inner, [&](int64_t o, int64_t n0, int64_t n1) { k.sumTile(x, out, o, r, inner, n0, n1); });
  return a.undefined();
}

// sumSquares(x, n) → Σ x² in double; per-thread partials are added in thread order.
napi_value sumSquares(napi_env env, napi_callback_info info) {
  Args a(env, info, "sumSquares", 2);
  size_t lx;
  const float* x = f32Arg(a, 0, "x", &lx);
  int64_t n = count(a, 1, "n");
  if (!needLength(a, "x", lx, n, "n")) return nullptr;
  double parts[256] = {0};
  auto fn = isaTable().sumSquaresRange;
  const int64_t chunks = std::min<int64_t>(256, std::max<int64_t>(1, n / (kGrainElems * 4)));
  parallelFor(chunks, 1, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; c++) {
      int64_t i0 = n * c / chunks, i1 = n * (c + 1) / chunks;
      parts[c] = fn(x + i0, i1 - i0);
    }
  });
  double total = 0;
  for (int64_t c = 0; c < chunks; c++) total += parts[c];
  return a.number(total);
}

// cumsum(x, y, outer, r, inner, reverse)
napi_value cumsum(napi_env env, napi_callback_info info) {
  Args a(env, info, "cumsum", 6);
  size_t lx, ly;
  const float* x = f32Arg(a, 0, "x", &lx);
  float* y = f32Arg(a, 1, "y", &ly);
  int64_t outer = count(a, 2, "outer"), r = count(a, 3, "r"), inner = count(a, 4, "inner");
  bool reverse = a.boolean(5);
  needLength(a, "x", lx, satMul(outer, r, inner), "outer·r·inner");
  if (!needLength(a, "y", ly, satMul(outer, r, inner), "outer·r·inner")) return nullptr;
  auto fn = isaTable().cumsumTile;
  const int64_t tw = 256;
  const int64_t perOuter = (inner + tw - 1) / tw;
  parallelFor(outer * perOuter, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, r * std::min(inner, tw))),
              [&](int64_t b, int64_t e) {
                for (int64_t t = b; t < e; t++) {
                  int64_t o = t / perOuter, n0 = (t % perOuter) * tw;
                  fn(x, y, o, r, inner, n0, std::min(inner, n0 + tw), reverse);
                }
              });
  return a.undefined();
}

// softmax(x, y, rows, cols, log)
napi_value softmax(napi_env env, napi_callback_info info) {
  Args a(env, info, "softmax", 5);
  size_t lx, ly;
  const float* x = f32Arg(a, 0, "x", &lx);
  float* y = f32Arg(a, 1, "y", &ly);
  int64_t rows = count(a, 2, "rows"), cols = count(a, 3, "cols");
  bool log = a.boolean(4);
  needLength(a, "x", lx, satMul(rows, cols), "rows·cols");
  if (!needLength(a, "y", ly, satMul(rows, cols), "rows·cols")) return nullptr;
  if (cols == 0) return a.undefined();
  auto fn = isaTable().softmaxRows;
  parallelFor(rows, rowGrain(cols), [&](int64_t b, int64_t e) { fn(x, y, b, e, cols, log); });
  return a.undefined();
}

// softmaxBackward(y, gy, gx, rows, cols, log)
napi_value softmaxBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "softmaxBackward", 6);
  size_t ly, lgy, lgx;
  const float* y = f32Arg(a, 0, "y", &ly);
  const float* gy = f32Arg(a, 1, "gy", &lgy);
  float* gx = f32Arg(a, 2, "gx", &lgx);
  int64_t rows = count(a, 3, "rows"), cols = count(a, 4, "cols");
  bool log = a.boolean(5);
  needLength(a, "y", ly, satMul(rows, cols), "rows·cols");
  needLength(a, "gy", lgy, satMul(rows, cols), "rows·cols");
  if (!needLength(a, "gx", lgx, satMul(rows, cols), "rows·cols")) return nullptr;
  if (cols == 0) return a.undefined();
  auto fn = isaTable().softmaxBackwardRows;
  parallelFor(rows, rowGrain(cols), [&](int64_t b, int64_t e) { fn(y, gy, gx, b, e, cols, log); });
  return a.undefined();
}

// layernorm(x, w | null, b | null, y, mean, rstd, rows, C, eps)
napi_value layernorm(napi_env env, napi_callback_info info) {
  Args a(env, info, "layernorm", 9);
  size_t lx, lw, lb, ly, lm, lr;
  const float* x = f32Arg(a, 0, "x", &lx);
  const float* w = f32Arg(a, 1, "w", &lw, true);
  const float* b = f32Arg(a, 2, "b", &lb, true);
  float* y = f32Arg(a, 3, "y", &ly);
  float* mean = f32Arg(a, 4, "mean", &lm);
  float* rstd = f32Arg(a, 5, "rstd", &lr);
  int64_t rows = count(a, 6, "rows"), C = count(a, 7, "C");
  double eps = a.num(8);
  needLength(a, "x", lx, satMul(rows, C), "rows·C");
  if (w) needLength(a, "w", lw, C, "C");
  if (b) needLength(a, "b", lb, C, "C");
  needLength(a, "y", ly, satMul(rows, C), "rows·C");
  needLength(a, "mean", lm, rows, "rows");
  if (!needLength(a, "rstd", lr, rows, "rows")) return nullptr;
  auto fn = isaTable().layernormRows;
  parallelFor(rows, rowGrain(C), [&](int64_t r0, int64_t r1) { fn(x, w, b, y, mean, rstd, r0, r1, C, eps); });
  return a.undefined();
}

// Parameter gradients summed over rows: each thread accumulates kFlushRows rows in float partials, then adds
// them into its double partials; at the end the double partials of all threads are added into the float output.
constexpr int64_t kFlushRows = 32;

struct Partials {
  // Row blocks, each with its own partials: as many as the configured threads (not the thread policy's cap of
  // the moment), so the sums, and the gradients, do not depend on how many threads happen to run them.
  int threads;
  int64_t C;
  int nBuffers;
  std::vector<double> data;
  Partials(int64_t rows, int64_t C_, int nBuffers_) : C(C_), nBuffers(nBuffers_) {
    threads = satMul(rows, C_) >= 2 * kGrainElems && !omp_in_parallel() ? std::max(1, omp_get_max_threads()) : 1;
    data.assign(static_cast<size_t>(threads) * nBuffers * C_, 0.0);
  }
  double* at(int t, int buffer) { return data.data() + (static_cast<size_t>(t) * nBuffers + buffer) * C; }
  // Rows [r0, r1) of block t: rows(c0, c1, floatPartials[nBuffers]) computes kFlushRows rows at a time.
  template <class Rows>
  void run(int t, int64_t r0, int64_t r1, const bool* used, Rows rows) {
    std::vector<float> f(static_cast<size_t>(nBuffers) * C);
    float* fp[2] = {f.data(), nBuffers > 1 ? f.data() + C : nullptr};
    for (int64_t c0 = r0; c0 < r1; c0 += kFlushRows) {
      int64_t c1 = std::min(r1, c0 + kFlushRows);
      std::fill(f.begin(), f.end(), 0.0f);
      rows(c0, c1, used[0] ? fp[0] : nullptr, nBuffers > 1 && used[1] ? fp[1] : nullptr);
      for (int b = 0; b < nBuffers; b++) {
        if (!used[b]) continue;
        double* d = at(t, b);
        const float* p = fp[b];
        for (int64_t i = 0; i < C; i++) d[i] += static_cast<double>(p[i]);
      }
    }
  }
  // Splits rows over this object's blocks, run by as many threads as the thread policy allows now.
  template <class Rows>
  void parallelRows(int64_t rows, const bool* used, Rows body) {
    const int team = std::min(threads, threadPolicy().cap());
    if (team <= 1) {
      for (int t = 0; t < threads; t++) run(t, rows * t / threads, rows * (t + 1) / threads, used, body);
      return;
    }
    RegionClock region;
#pragma omp parallel num_threads(team)
    {
      region.arrive();
#pragma omp for schedule(static, 1) nowait
      for (int t = 0; t < threads; t++) run(t, rows * t / threads, rows * (t + 1) / threads, used, body);
    }
    region.finish();
  }
  // out[i] += Σ_threads partial[i], rounded to float once.
  void addInto(float* out, int buffer) {
    for (int64_t i = 0; i < C; i++) {
      double s = out[i];
      for (int t = 0; t < threads; t++) s += at(t, buffer)[i];
      out[i] = static_cast<float>(s);
    }
  }
};

// layernormBackward(x, w | null, mean, rstd, gy, gx, gw | null, gb | null, rows, C)
napi_value layernormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "layernormBackward", 10);
  size_t lx, lw, lm, lr, lgy, lgx, lgw, lgb;
  const float* x = f32Arg(a, 0, "x", &lx);
  const float* w = f32Arg(a, 1, "w", &lw, true);
  const float* mean = f32Arg(a, 2, "mean", &lm);
  const float* rstd = f32Arg(a, 3, "rstd", &lr);
  const float* gy = f32Arg(a, 4, "gy", &lgy);
  float* gx = f32Arg(a, 5, "gx", &lgx);
  float* gw = f32Arg(a, 6, "gw", &lgw, true);
  float* gb = f32Arg(a, 7, "gb", &lgb, true);
  int64_t rows = count(a, 8, "rows"), C = count(a, 9, "C");
  needLength(a, "x", lx, satMul(rows, C), "rows·C");
  if (w) needLength(a, "w", lw, C, "C");
  needLength(a, "mean", lm, rows, "rows");
  needLength(a, "rstd", lr, rows, "rows");
  needLength(a, "gy", lgy, satMul(rows, C), "rows·C");
  needLength(a, "gx", lgx, satMul(rows, C), "rows·C");
  if (gw) needLength(a, "gw", lgw, C, "C");
  if (gb) needLength(a, "gb", lgb, C, "C");
  if (a.failed) return nullptr;
  auto fn = isaTable().layernormBackwardRows;
  Partials part(rows, C, 2);
  const bool used[2] = {gw != nullptr, gb != nullptr};
  part.parallelRows(rows, used, [&](int64_t r0, int64_t r1, float* pw, float* pb) {
    fn(x, w, mean, rstd, gy, gx, pw, pb, r0, r1, C);
  });
  if (gw) part.addInto(gw, 0);
  if (gb) part.addInto(gb, 1);
  return a.undefined();
}

// rmsnorm(x, w | null, y, rstd, rows, C, eps)
napi_value rmsnorm(napi_env env, napi_callback_info info) {
  Args a(env, info, "rmsnorm", 7);
  size_t lx, lw, ly, lr;
  const float* x = f32Arg(a, 0, "x", &lx);
  const float* w = f32Arg(a, 1, "w", &lw, true);
  float* y = f32Arg(a, 2, "y", &ly);
  float* rstd = f32Arg(a, 3, "rstd", &lr);
  int64_t rows = count(a, 4, "rows"), C = count(a, 5, "C");
  double eps = a.num(6);
  needLength(a, "x", lx, satMul(rows, C), "rows·C");
  if (w) needLength(a, "w", lw, C, "C");
  needLength(a, "y", ly, satMul(rows, C), "rows·C");
  if (!needLength(a, "rstd", lr, rows, "rows")) return nullptr;
  auto fn = isaTable().rmsnormRows;
  parallelFor(rows, rowGrain(C), [&](int64_t r0, int64_t r1) { fn(x, w, y, rstd, r0, r1, C, eps); });
  return a.undefined();
}

// rmsnormBackward(x, w | null, rstd, gy, gx, gw | null, rows, C)
napi_value rmsnormBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "rmsnormBackward", 8);
  size_t lx, lw, lr, lgy, lgx, lgw;
  const float* x = f32Arg(a, 0, "x", &lx);
  const float* w = f32Arg(a, 1, "w", &lw, true);
  const float* rstd = f32Arg(a, 2, "rstd", &lr);
  const float* gy = f32Arg(a, 3, "gy", &lgy);
  float* gx = f32Arg(a, 4, "gx", &lgx);
  float* gw = f32Arg(a, 5, "gw", &lgw, true);
  int64_t rows = count(a, 6, "rows"), C = count(a, 7, "C");
  needLength(a, "x", lx, satMul(rows, C), "rows·C");
  if (w) needLength(a, "w", lw, C, "C");
  needLength(a, "rstd", lr, rows, "rows");
  needLength(a, "gy", lgy, satMul(rows, C), "rows·C");
  needLength(a, "gx", lgx, satMul(rows, C), "rows·C");
  if (gw) needLength(a, "gw", lgw, C, "C");
  if (a.failed) return nullptr;
  auto fn = isaTable().rmsnormBackwardRows;
  Partials part(rows, C, 1);
  const bool used[2] = {gw != nullptr, false};
  part.parallelRows(rows, used, [&](int64_t r0, int64_t r1, float* pw, float*) { fn(x, w, rstd, gy, gx, pw, r0, r1, C); });
  if (gw) part.addInto(gw, 0);
  return a.undefined();
}

// Every target must be ignoreIndex or inside [0, V); the first bad row is named.
bool checkTargets(Args& a, const int32_t* targets, int64_t N, int64_t V, int32_t ignoreIndex) {
  for (int64_t i = 0; i < N; i++) {
    int32_t t = targets[i];
    if (t != ignoreIndex && (t < 0 || t >= V)) {
      char msg[200];
      snprintf(msg, sizeof msg, "targets: row %lld has target %d, outside [0, %lld) and not ignoreIndex %d",
               static_cast<long long>(i), t, static_cast<long long>(V), ignoreIndex);
      a.fail(msg);
      return false;
    }
  }
  return true;
}

// crossEntropy(logits, targets, losses, lse, N, V, ignoreIndex)
napi_value crossEntropy(napi_env env, napi_callback_info info) {
  Args a(env, info, "crossEntropy", 7);
  size_t ll, lt, lloss, llse;
  const float* logits = f32Arg(a, 0, "logits", &ll);
  const int32_t* targets = i32Arg(a, 1, "targets", &lt);
  float* losses = f32Arg(a, 2, "losses", &lloss);
  float* lse = f32Arg(a, 3, "lse", &llse);
  int64_t N = count(a, 4, "N"), V = count(a, 5, "V");
  int32_t ignoreIndex = int32Arg(a, 6, "ignoreIndex");
  needLength(a, "logits", ll, satMul(N, V), "N·V");
  needLength(a, "targets", lt, N, "N");
  needLength(a, "losses", lloss, N, "N");
  if (!needLength(a, "lse", llse, N, "N")) return nullptr;
  if (!checkTargets(a, targets, N, V, ignoreIndex)) return nullptr;
  if (V == 0) {  // log Σ over nothing
    std::fill_n(lse, N, -INFINITY);
    std::fill_n(losses, N, 0.0f);
    return a.undefined();
  }
  auto fn = isaTable().crossEntropyRows;
  parallelFor(N, rowGrain(V), [&](int64_t r0, int64_t r1) { fn(logits, targets, losses, lse, r0, r1, V, ignoreIndex); });
  return a.undefined();
}

// crossEntropyBackward(logits, targets, lse, gLoss, glogits, N, V, ignoreIndex)
napi_value crossEntropyBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "crossEntropyBackward", 8);
  size_t ll, lt, llse, lg, lgl;
  const float* logits = f32Arg(a, 0, "logits", &ll);
  const int32_t* targets = i32Arg(a, 1, "targets", &lt);
  const float* lse = f32Arg(a, 2, "lse", &llse);
  const float* gLoss = f32Arg(a, 3, "gLoss", &lg);
  float* glogits = f32Arg(a, 4, "glogits", &lgl);
  int64_t N = count(a, 5, "N"), V = count(a, 6, "V");
  int32_t ignoreIndex = int32Arg(a, 7, "ignoreIndex");
  needLength(a, "logits", ll, satMul(N, V), "N·V");
  needLength(a, "targets", lt, N, "N");
  needLength(a, "lse", llse, N, "N");
  needLength(a, "gLoss", lg, N, "N");
  if (!needLength(a, "glogits", lgl, satMul(N, V), "N·V")) return nullptr;
  if (!checkTargets(a, targets, N, V, ignoreIndex)) return nullptr;
  auto fn = isaTable().crossEntropyBackwardRows;
  parallelFor(N, rowGrain(V), [&](int64_t r0, int64_t r1) { fn(logits, targets, lse, gLoss, glogits, r0, r1, V, ignoreIndex); });
  return a.undefined();
}

// Orders indices by value descending, NaN largest, ties by lower index.
struct TopkOrder {
  const float* x;
  bool operator()(int32_t i, int32_t j) const {
    float a = x[i], b = x[j];
    bool na = a != a, nb = b != b;
    if (na | nb) return na && nb ? i < j : na;
    return a != b ? a > b : i < j;
  }
};

// topk(x, values, indices, rows, cols, k)
napi_value topk(napi_env env, napi_callback_info info) {
  Args a(env, info, "topk", 6);
  size_t lx, lv, li;
  const float* x = f32Arg(a, 0, "x", &lx);
  float* values = f32Arg(a, 1, "values", &lv);
  int32_t* indices = i32Arg(a, 2, "indices", &li);
  int64_t rows = count(a, 3, "rows"), cols = count(a, 4, "cols"), k = count(a, 5, "k");
  if (!a.failed && k > cols) {
    a.fail("k: larger than cols");
    return nullptr;
  }
  needLength(a, "x", lx, satMul(rows, cols), "rows·cols");
  needLength(a, "values", lv, satMul(rows, k), "rows·k");
  if (!needLength(a, "indices", li, satMul(rows, k), "rows·k")) return nullptr;
  if (k == 0) return a.undefined();
  parallelFor(rows, rowGrain(cols * 4), [&](int64_t r0, int64_t r1) {
    std::vector<int32_t> idx(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1; r++) {
      const float* xr = x + r * cols;
      for (int64_t i = 0; i < cols; i++) idx[i] = static_cast<int32_t>(i);
      TopkOrder order{xr};
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), order);
      for (int64_t j = 0; j < k; j++) {
        values[r * k + j] = xr[idx[j]];
        indices[r * k + j] = idx[j];
      }
    }
  });
  return a.undefined();
}

}  // namespace

void registerRowwise(napi_env env, napi_value exports) {
  defineFunction(env, exports, "reduce", reduce);
  defineFunction(env, exports, "sumSquares", sumSquares);
  defineFunction(env, exports, "cumsum", cumsum);
  defineFunction(env, exports, "softmax", softmax);
  defineFunction(env, exports, "softmaxBackward", softmaxBackward);
  defineFunction(env, exports, "layernorm", layernorm);
  defineFunction(env, exports, "layernormBackward", layernormBackward);
  defineFunction(env, exports, "rmsnorm", rmsnorm);
  defineFunction(env, exports, "rmsnormBackward", rmsnormBackward);
  defineFunction(env, exports, "crossEntropy", crossEntropy);
  defineFunction(env, exports, "crossEntropyBackward", crossEntropyBackward);
  defineFunction(env, exports, "topk", topk);
}

}  // namespace lmf

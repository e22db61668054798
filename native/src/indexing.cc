// Kernel family 'indexing' of the native backend: embedding (+ backward), gather and scatterAdd (entry points
// registered in registerIndexing). Every index is checked before anything is written; scatters are split across
// threads so that no two threads ever write the same element (no atomics, no races).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include "checks.h"
#include "napi_util.h"
#include "simd.h"

namespace lmf {
namespace {

constexpr int64_t kGrainElems = 1 << 15;

// embedding(weight, ids, out, n, C, V)
napi_value embedding(napi_env env, napi_callback_info info) {
  Args a(env, info, "embedding", 6);
  size_t lw, li, lo;
  const float* weight = f32Arg(a, 0, "weight", &lw);
  const int32_t* ids = i32Arg(a, 1, "ids", &li);
  float* out = f32Arg(a, 2, "out", &lo);
  int64_t n = count(a, 3, "n"), C = count(a, 4, "C"), V = count(a, 5, "V");
  needLength(a, "weight", lw, satMul(V, C), "V·C");
  needLength(a, "ids", li, n, "n");
  if (!needLength(a, "out", lo, satMul(n, C), "n·C")) return nullptr;
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= V) {
      char msg[160];
      snprintf(msg, sizeof msg, "ids: position %lld holds id %d, outside [0, %lld)", static_cast<long long>(i), ids[i],
               static_cast<long long>(V));
      a.fail(msg);
      return nullptr;
    }
  }
  parallelFor(n, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(C, 1)), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++)
      std::memcpy(out + i * C, weight + static_cast<int64_t>(ids[i]) * C, static_cast<size_t>(C) * sizeof(float));
  });
  return a.undefined();
}

// embeddingBackward(gy, ids, gw, n, C): gw[ids[i]] += gy[i]. Threads own disjoint column ranges of gw.
napi_value embeddingBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "embeddingBackward", 5);
  size_t lg, li, lw;
  const float* gy = f32Arg(a, 0, "gy", &lg);
  const int32_t* ids = i32Arg(a, 1, "ids", &li);
  float* gw = f32Arg(a, 2, "gw", &lw);
  int64_t n = count(a, 3, "n"), C = count(a, 4, "C");
  needLength(a, "gy", lg, satMul(n, C), "n·C");
  if (!needLength(a, "ids", li, n, "n")) return nullptr;
  if (C == 0) return a.undefined();
  const int64_t V = static_cast<int64_t>(lw) / C;  // rows that gw holds
  for (int64_t i = 0; i < n; i++) {
    if (ids[i] < 0 || ids[i] >= V) {
      char msg[160];
      snprintf(msg, sizeof msg, "ids: position %lld holds id %d, outside the %lld rows of gw", static_cast<long long>(i),
               ids[i], static_cast<long long>(V));
      a.fail(msg);
      return nullptr;
    }
  }
  // Column blocks of 16 floats (one cache line) so threads never share a line.
  const int64_t blocks = (C + 15) / 16;
  parallelFor(blocks, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, n * 16)), [&](int64_t b, int64_t e) {
    const int64_t c0 = b * 16, c1 = std::min(C, e * 16);
    for (int64_t i = 0; i < n; i++) {
      float* dst = gw + static_cast<int64_t>(ids[i]) * C;
      const float* src = gy + i * C;
      for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
    }
  });
  return a.undefined();
}

// Shared checks of gather/scatterAdd: idx (outer, k, inner) values inside [0, r).
bool checkIndices(Args& a, const int32_t* idx, int64_t count, int64_t r) {
  for (int64_t i = 0; i < count; i++) {
    if (idx[i] < 0 || idx[i] >= r) {
      char msg[160];
      snprintf(msg, sizeof msg, "idx: position %lld holds %d, outside [0, %lld)", static_cast<long long>(i), idx[i],
               static_cast<long long>(r));
      a.fail(msg);
      return false;
    }
  }
  return true;
}

// Tiles of (outer slab, inner column range): each output element belongs to exactly one tile.
template <class F>
void forEachSlab(int64_t outer, int64_t k, int64_t inner, F f) {
  const int64_t tw = 256;
  const int64_t per = (inner + tw - 1) / tw;
  parallelFor(outer * per, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, k * std::min(inner, tw))),
              [&](int64_t b, int64_t e) {
                for (int64_t t = b; t < e; t++) {
                  int64_t o = t / per, n0 = (t % per) * tw;
                  f(o, n0, std::min(inner, n0 + tw));
                }
              });
}

// gather(x, idx, out, outer, r, k, inner)
napi_value gather(napi_env env, napi_callback_info info) {
  Args a(env, info, "gather", 7);
  size_t lx, li, lo;
  const float* x = f32Arg(a, 0, "x", &lx);
  const int32_t* idx = i32Arg(a, 1, "idx", &li);
  float* out = f32Arg(a, 2, "out", &lo);
  int64_t outer = count(a, 3, "outer"), r = count(a, 4, "r"), k = count(a, 5, "k"), inner = count(a, 6, "inner");
  needLength(a, "x", lx, satMul(outer, r, inner), "outer·r·inner");
  needLength(a, "idx", li, satMul(outer, k, inner), "outer·k·inner");
  if (!needLength(a, "out", lo, satMul(outer, k, inner), "outer·k·inner")) return nullptr;
  if (!checkIndices(a, idx, outer * k * inner, r)) return nullptr;
  forEachSlab(outer, k, inner, [&](int64_t o, int64_t n0, int64_t n1) {
    for (int64_t j = 0; j < k; j++) {
      const int64_t row = (o * k + j) * inner;
      for (int64_t c = n0; c < n1; c++) out[row + c] = x[(o * r + idx[row + c]) * inner + c];
    }
  });
  return a.undefined();
}

// scatterAdd(src, idx, out, outer, r, k, inner): out[o, idx, c] += src[o, j, c]; tiles own disjoint (o, c).
napi_value scatterAdd(napi_env env, napi_callback_info info) {
  Args a(env, info, "scatterAdd", 7);
  size_t ls, li, lo;
  const float* src = f32Arg(a, 0, "src", &ls);
  const int32_t* idx = i32Arg(a, 1, "idx", &li);
  float* out = f32Arg(a, 2, "out", &lo);
  int64_t outer = count(a, 3, "outer"), r = count(a, 4, "r"), k = count(a, 5, "k"), inner = count(a, 6, "inner");
  needLength(a, "src", ls, satMul(outer, k, inner), "outer·k·inner");
  needLength(a, "idx", li, satMul(outer, k, inner), "outer·k·inner");
  if (!needLength(a, "out", lo, satMul(outer, r, inner), "outer·r·inner")) return nullptr;
  if (!checkIndices(a, idx, outer * k * inner, r)) return nullptr;
  forEachSlab(outer, k, inner, [&](int64_t o, int64_t n0, int64_t n1) {
    for (int64_t j = 0; j < k; j++) {
      const int64_t row = (o * k + j) * inner;
      for (int64_t c = n0; c < n1; c++) out[(o * r + idx[row + c]) * inner + c] += src[row + c];
    }
  });
  return a.undefined();
}

}  // namespace

void registerIndexing(napi_env env, napi_value exports) {
  defineFunction(env, exports, "embedding", embedding);
  defineFunction(env, exports, "embeddingBackward", embeddingBackward);
  defineFunction(env, exports, "gather", gather);
  defineFunction(env, exports, "scatterAdd", scatterAdd);
}

}  // namespace lmf

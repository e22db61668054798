// N-dimensional strided iteration shared by the elementwise family (copyStrided, binary, where):
// bounds validation of a strided view, dimension coalescing, and a parallel walk over contiguous inner runs.
// Not a kernel: callers supply what to do with each run.
#pragma once
#include <cstdint>
#include <cstdio>
#include "napi_util.h"
#include "simd.h"

namespace lmf {

constexpr int kMaxDims = 16;

// A view's element range must lie inside its array; returns false (having thrown) otherwise.
inline bool checkView(Args& a, const char* name, size_t length, int64_t offset, const int64_t* strides, int nStrides,
                      const int64_t* shape, int ndim) {
  char msg[200];
  if (nStrides != ndim) {
    snprintf(msg, sizeof msg, "%s: %d strides for a %d-dimensional shape", name, nStrides, ndim);
    a.fail(msg);
    return false;
  }
  if (offset < 0) {
    snprintf(msg, sizeof msg, "%s: negative offset %lld", name, static_cast<long long>(offset));
    a.fail(msg);
    return false;
  }
  int64_t lo = offset, hi = offset;
  bool overflow = false;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] == 0) return true;  // empty: nothing is read or written
    int64_t span = 0;
    overflow = overflow || __builtin_mul_overflow(shape[d] - 1, strides[d], &span);
    overflow = overflow || __builtin_add_overflow(span < 0 ? lo : hi, span, span < 0 ? &lo : &hi);
  }
  if (overflow) {
    snprintf(msg, sizeof msg, "%s: shape·strides overflow 64-bit offsets", name);
    a.fail(msg);
    return false;
  }
  if (lo < 0 || hi >= static_cast<int64_t>(length)) {
    snprintf(msg, sizeof msg, "%s: view reaches elements [%lld, %lld] of an array of length %zu", name,
             static_cast<long long>(lo), static_cast<long long>(hi), length);
    a.fail(msg);
    return false;
  }
  return true;
}

// Reads a shape argument: non-negative integers, at most kMaxDims of them.
inline int readShape(Args& a, size_t i, int64_t* shape) {
  int n = static_cast<int>(a.ints(i, shape, kMaxDims));
  for (int d = 0; d < n && !a.failed; d++)
    if (shape[d] < 0 || shape[d] > (int64_t{1} << 48)) a.fail("shape: expected dimensions in [0, 2^48]", i);
  return n;
}

// K operands over one shape. After coalesce(), dims of size 1 are gone and adjacent dims that every operand
// walks contiguously are merged, so a same-shape contiguous op becomes one run.
template <int K>
struct StridedLoop {
  int ndim = 0;
  int64_t shape[kMaxDims];
  int64_t strides[K][kMaxDims];
  int64_t offsets[K];

  int64_t total() const {
    int64_t t = 1;
    for (int d = 0; d < ndim; d++) t *= shape[d];
    return t;
  }

  void coalesce() {
    int m = 0;
    for (int d = 0; d < ndim; d++) {
      if (shape[d] == 1) continue;
      if (m > 0) {
        bool merge = true;
        for (int k = 0; k < K; k++) merge = merge && strides[k][m - 1] == strides[k][d] * shape[d];
        if (merge) {
          shape[m - 1] *= shape[d];
          for (int k = 0; k < K; k++) strides[k][m - 1] = strides[k][d];
          continue;
        }
      }
      shape[m] = shape[d];
      for (int k = 0; k < K; k++) strides[k][m] = strides[k][d];
      m++;
    }
    ndim = m;
  }

  // run(off[K], innerStride[K], len) for every inner run, in parallel when total() ≥ 2·minPerThread.
  template <class Run>
  void forEachRun(int64_t minPerThread, Run run) const {
    int64_t n = total();
    if (n == 0) return;
    if (ndim <= 1) {
      int64_t inner[K];
      for (int k = 0; k < K; k++) inner[k] = ndim == 1 ? strides[k][0] : 0;
      parallelFor(ndim == 1 ? shape[0] : 1, minPerThread, [&](int64_t b, int64_t e) {
        int64_t off[K];
        for (int k = 0; k < K; k++) off[k] = offsets[k] + b * inner[k];
        run(off, inner, e - b);
      });
      return;
    }
    const int last = ndim - 1;
    const int64_t len = shape[last];
    int64_t inner[K];
    for (int k = 0; k < K; k++) inner[k] = strides[k][last];
    parallelFor(n / len, std::max<int64_t>(1, minPerThread / len), [&](int64_t b, int64_t e) {
      int64_t idx[kMaxDims];
      int64_t off[K];
      int64_t rem = b;
      for (int k = 0; k < K; k++) off[k] = offsets[k];
      for (int d = last - 1; d >= 0; d--) {
        idx[d] = rem % shape[d];
        rem /= shape[d];
        for (int k = 0; k < K; k++) off[k] += idx[d] * strides[k][d];
      }
      for (int64_t r = b; r < e; r++) {
        run(off, inner, len);
        for (int d = last - 1; d >= 0; d--) {  // odometer step
          idx[d]++;
          for (int k = 0; k < K; k++) off[k] += strides[k][d];
          if (idx[d] < shape[d]) break;
          for (int k = 0; k < K; k++) off[k] -= idx[d] * strides[k][d];
          idx[d] = 0;
        }
      }
    });
  }
};

}  // namespace lmf

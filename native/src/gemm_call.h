// One batched matmul call from JS, read and checked in one place for every GEMM entry point (fp32 in gemm.cc, bf16
// in gemm_bf16.cc): C (+)= op(A)·op(B) over `batch` matrices.
#pragma once
#include <cstdint>
#include "napi_util.h"

namespace lmf {

struct MatmulCall {
  // Offsets already applied; null when the product is empty (an empty view may sit at the very end of its array, so
  // no pointer into it is formed).
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  int64_t batch = 0, M = 0, N = 0, K = 0, aStride = 0, bStride = 0;
  bool transA = false, transB = false, accumulate = false;
  bool empty() const { return c == nullptr; }
};

// Reads matmul's 15 arguments (a, aOffset, b, bOffset, c, cOffset, batch, M, N, K, transA, transB, aBatchStride,
// bBatchStride, accumulate) and checks that every view fits its array. False when `args` has failed.
bool readMatmulCall(Args& args, MatmulCall* call);

}  // namespace lmf

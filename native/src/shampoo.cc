// Kernel family 'shampoo' of the native backend: the inverse p-th roots (S + ridge·I)^(−1/p) of Shampoo's
// symmetric positive semi-definite statistics L and R, many matrices per call (one thread per matrix).
// Not the rest of Shampoo: the accumulation L += G·Gᵀ and the product L^(−1/4)·G·R^(−1/4) run on the GEMM.
//
// Method: a symmetric eigendecomposition in float64, S = Z·diag(λ)·Zᵀ, by Householder reduction to tridiagonal
// form and the implicit QL iteration with Wilkinson shifts; then Z·diag((max(λ, 0) + ridge)^(−1/p))·Zᵀ. Chosen over
// a coupled Newton iteration because it needs no spectral bound or iteration count, cannot diverge on an
// ill-conditioned S, and gives λ_max for free, so the ridge can be relative to it (Anil et al. 2020).
// Cost ~9n³ flops per matrix (n = 128: ~20 MFLOP, a few ms), against ~3n³ per sweep for cyclic Jacobi.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <vector>
#include "checks.h"
#include "napi_util.h"
#include "simd.h"

namespace lmf {

namespace sh_avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")
#include "shampoo_eigen.inc"
#pragma GCC pop_options
}  // namespace sh_avx512
namespace sh_avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "shampoo_eigen.inc"
#pragma GCC pop_options
}  // namespace sh_avx2
namespace sh_generic {
#include "shampoo_eigen.inc"
}  // namespace sh_generic

namespace {

bool inverseRoot(const float* S, float* out, int n, double eps, double p, bool relative) {
  switch (cpuIsa()) {
    case Isa::Avx512: return sh_avx512::inverseRoot(S, out, n, eps, p, relative);
    case Isa::Avx2: return sh_avx2::inverseRoot(S, out, n, eps, p, relative);
    case Isa::Generic: break;
  }
  return sh_generic::inverseRoot(S, out, n, eps, p, relative);
}

// shampooInverseRoots(S, dims, eps, p, relative, out): S holds the matrices back to back (matrix i is dims[i]²
// floats, row-major); out receives their inverse p-th roots in the same layout.
napi_value shampooInverseRoots(napi_env env, napi_callback_info info) {
  Args a(env, info, "shampooInverseRoots", 6);
  size_t ls = 0, ld = 0, lo = 0;
  const float* S = f32Arg(a, 0, "S", &ls);
  size_t dimsLen = 0;
  const int32_t* dims = static_cast<const int32_t*>(typedArg(a, 1, "dims", napi_int32_array, "Int32Array", &dimsLen, false));
  ld = dimsLen;
  const double eps = a.num(2), p = a.num(3);
  const bool relative = a.boolean(4);
  float* out = f32Arg(a, 5, "out", &lo);
  if (a.failed) return nullptr;
  if (!(eps > 0) || !std::isfinite(eps)) {
    a.fail("eps: expected a positive finite number");
    return nullptr;
  }
  if (!(p > 0) || !std::isfinite(p)) {
    a.fail("p: expected a positive finite number");
    return nullptr;
  }
  std::vector<int64_t> offset(ld + 1, 0);
  for (size_t i = 0; i < ld; i++) {
    if (dims[i] < 0 || dims[i] > 65536) {
      a.fail("dims: expected sizes in [0, 65536]");
      return nullptr;
    }
    offset[i + 1] = offset[i] + static_cast<int64_t>(dims[i]) * dims[i];
  }
  needLength(a, "S", ls, offset[ld], "Σ dims[i]²");
  if (!needLength(a, "out", lo, offset[ld], "Σ dims[i]²")) return nullptr;
  std::vector<char> ok(ld, 1);
  parallelFor(static_cast<int64_t>(ld), 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      if (dims[i] > 0) ok[i] = inverseRoot(S + offset[i], out + offset[i], dims[i], eps, p, relative) ? 1 : 0;
    }
  });
  for (size_t i = 0; i < ld; i++) {
    if (!ok[i]) {
      char msg[120];
      snprintf(msg, sizeof msg, "matrix %zu (%d×%d): the eigenvalue iteration did not converge (NaN or Inf in S?)", i, dims[i], dims[i]);
      a.fail(msg);
      return nullptr;
    }
  }
  return a.undefined();
}

}  // namespace

void registerShampoo(napi_env env, napi_value exports) { defineFunction(env, exports, "shampooInverseRoots", shampooInverseRoots); }

}  // namespace lmf

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
#include <vector>
#include "checks.h"
#include "napi_util.h"
#include "simd.h"

namespace lmf {

namespace {

// Reduces the symmetric n×n matrix a (row-major, float64, overwritten) to tridiagonal T = Qᵀ·a·Q by Householder
// reflections H_k (k = 0 … n−3, each acting on indices k+1 … n−1): d = diag(T), e[i] = T[i][i+1] (e[n−1] = 0),
// and zt = Qᵀ (so that the rotations of the QL iteration update rows of zt, contiguous).
void tridiagonalize(double* a, int n, double* d, double* e, double* zt, double* v, double* w) {
  for (int i = 0; i < n * n; i++) zt[i] = 0;
  for (int i = 0; i < n; i++) zt[i * n + i] = 1;
  for (int k = 0; k + 2 < n; k++) {
    const int m = n - k - 1;  // size of the trailing block, rows/cols k+1 … n−1
    double* x = v;            // x = a[k+1 …, k]
    double tail = 0;
    for (int i = 0; i < m; i++) x[i] = a[(k + 1 + i) * n + k];
    for (int i = 1; i < m; i++) tail += x[i] * x[i];
    d[k] = a[k * n + k];
    if (tail == 0) {  // already tridiagonal in this column: H_k = I
      e[k] = x[0];
      continue;
    }
    const double norm = std::sqrt(x[0] * x[0] + tail);
    const double alpha = x[0] > 0 ? -norm : norm;  // H·x = α·e₁, sign chosen against cancellation in x₀ − α
    x[0] -= alpha;                                 // v = x − α·e₁
    const double beta = 2.0 / (x[0] * x[0] + tail);
    e[k] = alpha;
    // Trailing block A ← H·A·H with H = I − β·v·vᵀ: w = β·A·v, q = w − (β/2)(wᵀv)·v, A ← A − v·qᵀ − q·vᵀ.
    double wv = 0;
    for (int i = 0; i < m; i++) {
      const double* row = a + (k + 1 + i) * n + (k + 1);
      double s = 0;
      for (int j = 0; j < m; j++) s += row[j] * x[j];
      w[i] = beta * s;
      wv += w[i] * x[i];
    }
    const double K = 0.5 * beta * wv;
    for (int i = 0; i < m; i++) w[i] -= K * x[i];
    for (int i = 0; i < m; i++) {
      double* row = a + (k + 1 + i) * n + (k + 1);
      const double xi = x[i], wi = w[i];
      for (int j = 0; j < m; j++) row[j] -= xi * w[j] + wi * x[j];
    }
    // Qᵀ = H_{n−3} ⋯ H_0: zt ← H_k·zt touches rows k+1 … n−1: zt −= β·v·(vᵀ·zt).
    std::vector<double> proj(n, 0.0);
    for (int i = 0; i < m; i++) {
      const double* row = zt + (k + 1 + i) * n;
      const double xi = x[i];
      for (int j = 0; j < n; j++) proj[j] += xi * row[j];
    }
    for (int i = 0; i < m; i++) {
      double* row = zt + (k + 1 + i) * n;
      const double bx = beta * x[i];
      for (int j = 0; j < n; j++) row[j] -= bx * proj[j];
    }
  }
  if (n >= 2) {
    d[n - 2] = a[(n - 2) * n + (n - 2)];
    e[n - 2] = a[(n - 1) * n + (n - 2)];
  }
  d[n - 1] = a[(n - 1) * n + (n - 1)];
  e[n - 1] = 0;
}

// Eigenvalues of the tridiagonal (d, e) into d by the implicit QL iteration with Wilkinson shifts; each plane
// rotation of rows i, i+1 is applied to zt too, whose rows end as the eigenvectors of the original matrix.
// Returns false if an eigenvalue did not converge in 64 iterations (never seen; the caller reports it).
bool tridiagonalQL(double* d, double* e, double* zt, int n) {
  for (int l = 0; l < n; l++) {
    for (int iter = 0;; iter++) {
      int m = l;
      for (; m + 1 < n; m++) {  // the first negligible off-diagonal at or after l splits the matrix
        if (std::fabs(e[m]) <= DBL_EPSILON * (std::fabs(d[m]) + std::fabs(d[m + 1]))) break;
      }
      if (m == l) break;
      if (iter == 64) return false;
      // Shift: the eigenvalue of the leading 2×2 block [d_l e_l; e_l d_{l+1}] nearer d_l.
      double g = (d[l + 1] - d[l]) / (2.0 * e[l]);
      double r = std::hypot(g, 1.0);
      g = d[m] - d[l] + e[l] / (g + std::copysign(r, g));
      double s = 1, c = 1, p = 0;
      int i = m - 1;
      bool underflow = false;
      // Chase the bulge from the bottom of the unreduced block (m) up to l by rotations in planes (i, i+1).
      for (; i >= l; i--) {
        const double f = s * e[i], b = c * e[i];
        r = std::hypot(f, g);
        e[i + 1] = r;
        if (r == 0) {  // f and g both underflowed: deflate here and restart
          d[i + 1] -= p;
          e[m] = 0;
          underflow = true;
          break;
        }
        s = f / r;
        c = g / r;
        g = d[i + 1] - p;
        r = (d[i] - g) * s + 2.0 * c * b;
        p = s * r;
        d[i + 1] = g + p;
        g = c * r - b;
        double* zi = zt + static_cast<int64_t>(i) * n;
        double* zj = zi + n;
        for (int k = 0; k < n; k++) {
          const double t = zj[k];
          zj[k] = s * zi[k] + c * t;
          zi[k] = c * zi[k] - s * t;
        }
      }
      if (underflow) continue;
      d[l] -= p;
      e[l] = g;
      e[m] = 0;
    }
  }
  return true;
}

// out = (S + ridge·I)^(−1/p) for one n×n float32 matrix S (symmetrised first); ridge = eps·λ_max(S) when relative
// (eps itself when S is zero), else eps. Returns false if the QL iteration failed to converge.
bool inverseRoot(const float* S, float* out, int n, double eps, double p, bool relative) {
  std::vector<double> a(static_cast<size_t>(n) * n), zt(static_cast<size_t>(n) * n), d(n), e(n), v(n), w(n);
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) a[i * n + j] = 0.5 * (static_cast<double>(S[i * n + j]) + static_cast<double>(S[j * n + i]));
  }
  tridiagonalize(a.data(), n, d.data(), e.data(), zt.data(), v.data(), w.data());
  if (!tridiagonalQL(d.data(), e.data(), zt.data(), n)) return false;
  double lmax = 0;
  for (int i = 0; i < n; i++) lmax = std::max(lmax, d[i]);
  const double ridge = relative && lmax > 0 ? eps * lmax : eps;
  // λ < 0 only by rounding (S is a sum of Gram matrices): clamp it to 0 so the ridge bounds the power.
  for (int i = 0; i < n; i++) w[i] = std::pow(std::max(d[i], 0.0) + ridge, -1.0 / p);
  // out = Σ_i w_i·z_i·z_iᵀ, accumulated row by row in float64 (a reused as the buffer).
  std::fill(a.begin(), a.end(), 0.0);
  for (int i = 0; i < n; i++) {
    const double* z = zt.data() + static_cast<int64_t>(i) * n;
    for (int r = 0; r < n; r++) {
      const double coef = w[i] * z[r];
      double* row = a.data() + static_cast<int64_t>(r) * n;
      for (int c = 0; c < n; c++) row[c] += coef * z[c];
    }
  }
  for (int i = 0; i < n * n; i++) out[i] = static_cast<float>(a[i]);
  return true;
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

// Kernel family 'optim' of the native backend: the fused in-place AdamW step (entry point registered in
// registerOptim). Argument checks and thread split here; the vectorised loop is in optim_simd.inc.
#include <cmath>
#include <cstdint>
#include "checks.h"
#include "napi_util.h"
#include "simd.h"

namespace lmf {

// Scalars of one AdamW step (bc1, bc2: bias corrections 1 − β^t).
struct AdamWConsts {
  double lr, beta1, beta2, eps, decay, gradScale, bc1, bc2;
};

namespace opt_avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")
#include "optim_simd.inc"
#pragma GCC pop_options
}  // namespace opt_avx512
namespace opt_avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include "optim_simd.inc"
#pragma GCC pop_options
}  // namespace opt_avx2
namespace opt_generic {
#include "optim_simd.inc"
}  // namespace opt_generic

namespace {

constexpr int64_t kGrainElems = 1 << 15;

// adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale)
napi_value adamw(napi_env env, napi_callback_info info) {
  Args a(env, info, "adamw", 11);
  size_t lp, lg, lm, lv;
  float* param = f32Arg(a, 0, "param", &lp);
  const float* grad = f32Arg(a, 1, "grad", &lg);
  float* m = f32Arg(a, 2, "m", &lm);
  float* v = f32Arg(a, 3, "v", &lv);
  double lr = a.num(4), beta1 = a.num(5), beta2 = a.num(6), eps = a.num(7), wd = a.num(8), step = a.num(9),
         gradScale = a.num(10);
  const int64_t n = static_cast<int64_t>(lp);
  needLength(a, "grad", lg, n, "param.length");
  needLength(a, "m", lm, n, "param.length");
  if (!needLength(a, "v", lv, n, "param.length")) return nullptr;
  if (!(step >= 1) || step != std::floor(step)) {
    a.fail("step: expected a 1-based integer step");
    return nullptr;
  }
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) {
    a.fail("beta1, beta2: expected values in [0, 1)");
    return nullptr;
  }
  AdamWConsts k{lr, beta1, beta2, eps, wd, gradScale, 1.0 - std::pow(beta1, step), 1.0 - std::pow(beta2, step)};
  Isa isa = cpuIsa();
  parallelFor(n, kGrainElems, [&](int64_t b, int64_t e) {
    switch (isa) {
      case Isa::Avx512: opt_avx512::adamwRange(param, grad, m, v, b, e, k); break;
      case Isa::Avx2: opt_avx2::adamwRange(param, grad, m, v, b, e, k); break;
      case Isa::Generic: opt_generic::adamwRange(param, grad, m, v, b, e, k); break;
    }
  });
  return a.undefined();
}

}  // namespace

void registerOptim(napi_env env, napi_value exports) { defineFunction(env, exports, "adamw", adamw); }

}  // namespace lmf

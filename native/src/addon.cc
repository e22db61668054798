// N-API entry point of lmforge's native backend: registers every kernel family and reports
// which SIMD paths this CPU can use. Kernels themselves live one family per file.
#include <omp.h>
#include <algorithm>
#include <cstdio>
#include "napi_util.h"
#include "threads.h"

namespace lmf {

void registerGemmBf16(napi_env env, napi_value exports);  // gemm_bf16.cc
void registerQuant(napi_env env, napi_value exports);  // quant.cc
void registerRetrieval(napi_env env, napi_value exports);  // retrieval.cc
void registerShampoo(napi_env env, napi_value exports);  // shampoo.cc
void registerSparseAttention(napi_env env, napi_value exports);  // sparse-attention.cc

static napi_value cpuInfo(napi_env env, napi_callback_info) {
  napi_value obj, v;
  napi_create_object(env, &obj);
  napi_get_boolean(env, __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), &v);
  napi_set_named_property(env, obj, "avx2", v);
  napi_get_boolean(env, __builtin_cpu_supports("avx512f"), &v);
  napi_set_named_property(env, obj, "avx512f", v);
  napi_create_int32(env, omp_get_max_threads(), &v);
  napi_set_named_property(env, obj, "threads", v);
  ThreadPolicy& tp = threadPolicy();
  napi_get_boolean(env, tp.adaptive.load(), &v);
  napi_set_named_property(env, obj, "adaptiveThreads", v);
  napi_get_boolean(env, tp.solo(), &v);
  napi_set_named_property(env, obj, "soloNow", v);
  napi_create_double(env, static_cast<double>(tp.spells()), &v);
  napi_set_named_property(env, obj, "soloSpells", v);
  return obj;
}

static napi_value setThreads(napi_env env, napi_callback_info info) {
  Args a(env, info, "setThreads", 1);
  int n = static_cast<int>(a.num(0));
  if (a.failed) return nullptr;
  if (n >= 1) omp_set_num_threads(n);
  return a.undefined();
}

// threadPolicySolo(ms): the kernels run on one thread for ms milliseconds (0 ends it), as the thread policy does
// under contention; for tests that results do not depend on it.
static napi_value threadPolicySolo(napi_env env, napi_callback_info info) {
  Args a(env, info, "threadPolicySolo", 1);
  double ms = a.num(0);
  if (a.failed) return nullptr;
  threadPolicy().forceSolo(static_cast<int64_t>(std::max(0.0, ms) * 1e6));
  return a.undefined();
}

static napi_value init(napi_env env, napi_value exports) {
  defineFunction(env, exports, "cpuInfo", cpuInfo);
  defineFunction(env, exports, "threadPolicySolo", threadPolicySolo);
  defineFunction(env, exports, "setThreads", setThreads);
  registerGemm(env, exports);
  registerGemmBf16(env, exports);
  registerAttention(env, exports);
  registerSparseAttention(env, exports);
  registerElementwise(env, exports);
  registerRowwise(env, exports);
  registerIndexing(env, exports);
  registerOptim(env, exports);
  registerShampoo(env, exports);
  registerMmap(env, exports);
  registerMoe(env, exports);
  registerQuant(env, exports);
  registerRetrieval(env, exports);
  return exports;
}

}  // namespace lmf

NAPI_MODULE(NODE_GYP_MODULE_NAME, lmf::init)

// Kernel family 'elementwise' of the native backend: copyStrided, fill, cast, unary, unaryBackward, binary,
// where and dropout (entry points registered in registerElementwise). N-API argument checking and strided
// iteration live here; the vectorised loops are in elementwise_simd.inc, compiled per instruction set.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
#include "dropout_hash.h"
#include "napi_util.h"
#include "simd.h"
#include "strided.h"
#include "checks.h"

namespace lmf {

// Codes in the order of UNARY_OPS / BINARY_OPS in src/core/kernels.ts (the TS wrapper maps names to codes).
enum class UnaryCode : int {
  Neg, Exp, Log, Sqrt, Rsqrt, Tanh, Relu, Gelu, GeluTanh, Silu, Sigmoid, Abs, Square, PowScalar, MulScalar, AddScalar
};
constexpr int kUnaryCount = 16;
enum class BinaryCode : int { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge };
constexpr int kBinaryCount = 13;

namespace ew_avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")
#define LMF_HAS_FMA 1  // the pragma does not define __FMA__
#include "vecmath.inc"
#define LMF_GELU16 1  // exact GELU in intrinsics (gelu_avx512.inc) instead of the auto-vectorised vgelu(Grad)
#include "gelu_avx512.inc"
#include "elementwise_simd.inc"
#undef LMF_GELU16
#undef LMF_HAS_FMA
#pragma GCC pop_options
}  // namespace ew_avx512
namespace ew_avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define LMF_HAS_FMA 1
#include "vecmath.inc"
#include "elementwise_simd.inc"
#undef LMF_HAS_FMA
#pragma GCC pop_options
}  // namespace ew_avx2
namespace ew_generic {
#include "vecmath.inc"
#include "elementwise_simd.inc"
}  // namespace ew_generic

namespace {

struct ElementwiseIsa {
  decltype(&ew_generic::unaryRange) unary;
  decltype(&ew_generic::unaryBackwardRange) unaryBackward;
  decltype(&ew_generic::binaryRun) binary;
  decltype(&ew_generic::dropoutRange) dropout;
};

const ElementwiseIsa& isaTable() {
  static const ElementwiseIsa tables[3] = {
      {ew_generic::unaryRange, ew_generic::unaryBackwardRange, ew_generic::binaryRun, ew_generic::dropoutRange},
      {ew_avx2::unaryRange, ew_avx2::unaryBackwardRange, ew_avx2::binaryRun, ew_avx2::dropoutRange},
      {ew_avx512::unaryRange, ew_avx512::unaryBackwardRange, ew_avx512::binaryRun, ew_avx512::dropoutRange},
  };
  return tables[static_cast<int>(cpuIsa())];
}

constexpr int64_t kGrainElems = 1 << 15;  // elements per thread below which threading costs more than it saves

// Any typed array with its element type (for kernels that accept several).
struct AnyTyped {
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type = napi_float32_array;
};

bool anyTyped(Args& a, size_t i, const char* name, AnyTyped* out) {
  if (a.failed) return false;
  bool is = false;
  napi_is_typedarray(a.env, a.argv[i], &is);
  char msg[160];
  if (!is) {
    snprintf(msg, sizeof msg, "%s: expected a typed array", name);
    a.fail(msg);
    return false;
  }
  napi_get_typedarray_info(a.env, a.argv[i], &out->type, &out->length, &out->data, nullptr, nullptr);
  if (out->type != napi_float32_array && out->type != napi_float64_array && out->type != napi_int32_array) {
    snprintf(msg, sizeof msg, "%s: expected a Float32Array, Float64Array or Int32Array", name);
    a.fail(msg);
    return false;
  }
  return true;
}

size_t elemSize(napi_typedarray_type t) { return t == napi_float64_array ? 8 : 4; }

// Reads (array, offset, strides) starting at argument i as one operand of a strided loop.
template <int K>
bool stridedOperand(Args& a, size_t i, const char* name, size_t length, const int64_t* shape, int ndim,
                    StridedLoop<K>& loop, int k) {
  int64_t offset = count(a, i + 1, name);
  int64_t strides[kMaxDims];
  int ns = static_cast<int>(a.ints(i + 2, strides, kMaxDims));
  if (a.failed) return false;
  if (!checkView(a, name, length, offset, strides, ns, shape, ndim)) return false;
  loop.offsets[k] = offset;
  for (int d = 0; d < ndim; d++) loop.strides[k][d] = strides[d];
  return true;
}

template <int K>
void setContiguous(StridedLoop<K>& loop, int k, const int64_t* shape, int ndim) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    loop.strides[k][d] = s;
    s *= shape[d];
  }
  loop.offsets[k] = 0;
}

int64_t product(const int64_t* shape, int ndim) {
  int64_t t = 1;
  for (int d = 0; d < ndim; d++) t = satMul(t, shape[d]);
  return t;
}

// copyStrided(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape)
template <typename T>
void copyRuns(const StridedLoop<2>& loop, const void* src, void* dst) {
  const T* s = static_cast<const T*>(src);
  T* d = static_cast<T*>(dst);
  loop.forEachRun(kGrainElems, [&](const int64_t* off, const int64_t* st, int64_t len) {
    const T* sp = s + off[0];
    T* dp = d + off[1];
    if (st[0] == 1 && st[1] == 1) {
      std::memcpy(dp, sp, static_cast<size_t>(len) * sizeof(T));
    } else {
      for (int64_t i = 0; i < len; i++) dp[i * st[1]] = sp[i * st[0]];
    }
  });
}

napi_value copyStrided(napi_env env, napi_callback_info info) {
  Args a(env, info, "copyStrided", 7);
  int64_t shape[kMaxDims];
  int ndim = readShape(a, 6, shape);
  AnyTyped src, dst;
  anyTyped(a, 0, "src", &src);
  anyTyped(a, 3, "dst", &dst);
  if (a.failed) return nullptr;
  if (src.type != dst.type) {
    a.fail("src and dst: element types differ (copyStrided copies elements as they are; use cast to convert)");
    return nullptr;
  }
  StridedLoop<2> loop;
  loop.ndim = ndim;
  for (int d = 0; d < ndim; d++) loop.shape[d] = shape[d];
  if (!stridedOperand(a, 0, "src", src.length, shape, ndim, loop, 0)) return nullptr;
  if (!stridedOperand(a, 3, "dst", dst.length, shape, ndim, loop, 1)) return nullptr;
  loop.coalesce();
  if (elemSize(src.type) == 8) copyRuns<uint64_t>(loop, src.data, dst.data);
  else copyRuns<uint32_t>(loop, src.data, dst.data);
  return a.undefined();
}

// fill(dst, value, offset, n)
napi_value fill(napi_env env, napi_callback_info info) {
  Args a(env, info, "fill", 4);
  AnyTyped dst;
  anyTyped(a, 0, "dst", &dst);
  double value = a.num(1);
  int64_t offset = count(a, 2, "offset");
  int64_t n = count(a, 3, "n");
  if (!needLength(a, "dst", dst.length, offset + n, "offset + n")) return nullptr;
  if (dst.type == napi_float32_array) {
    float v = static_cast<float>(value);
    std::fill_n(static_cast<float*>(dst.data) + offset, n, v);
  } else if (dst.type == napi_float64_array) {
    std::fill_n(static_cast<double*>(dst.data) + offset, n, value);
  } else {
    std::fill_n(static_cast<int32_t*>(dst.data) + offset, n, toInt32(value));
  }
  return a.undefined();
}

template <typename S, typename D>
void castLoop(const S* s, D* d, int64_t n) {
  parallelFor(n, kGrainElems, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      if constexpr (std::is_same_v<D, int32_t>) d[i] = toInt32(static_cast<double>(s[i]));
      else d[i] = static_cast<D>(s[i]);
    }
  });
}

template <typename S>
void castFrom(const S* s, const AnyTyped& dst, int64_t n) {
  switch (dst.type) {
    case napi_float32_array: castLoop(s, static_cast<float*>(dst.data), n); break;
    case napi_float64_array: castLoop(s, static_cast<double*>(dst.data), n); break;
    default: castLoop(s, static_cast<int32_t*>(dst.data), n); break;
  }
}

// cast(src, dst, n)
napi_value cast(napi_env env, napi_callback_info info) {
  Args a(env, info, "cast", 3);
  AnyTyped src, dst;
  anyTyped(a, 0, "src", &src);
  anyTyped(a, 1, "dst", &dst);
  int64_t n = count(a, 2, "n");
  needLength(a, "src", src.length, n, "n");
  if (!needLength(a, "dst", dst.length, n, "n")) return nullptr;
  switch (src.type) {
    case napi_float32_array: castFrom(static_cast<const float*>(src.data), dst, n); break;
    case napi_float64_array: castFrom(static_cast<const double*>(src.data), dst, n); break;
    default: castFrom(static_cast<const int32_t*>(src.data), dst, n); break;
  }
  return a.undefined();
}

int opCode(Args& a, size_t i, int count, const char* what) {
  double v = a.num(i);
  if (a.failed) return -1;
  if (!(v >= 0 && v < count) || v != std::floor(v)) {
    a.fail(what);
    return -1;
  }
  return static_cast<int>(v);
}

// unary(op, x, y, n, p)
napi_value unary(napi_env env, napi_callback_info info) {
  Args a(env, info, "unary", 5);
  int op = opCode(a, 0, kUnaryCount, "op: unknown unary op code");
  size_t lx = 0, ly = 0;
  const float* x = f32Arg(a, 1, "x", &lx);
  float* y = f32Arg(a, 2, "y", &ly);
  int64_t n = count(a, 3, "n");
  double p = a.num(4);
  needLength(a, "x", lx, n, "n");
  if (!needLength(a, "y", ly, n, "n")) return nullptr;
  auto fn = isaTable().unary;
  parallelFor(n, kGrainElems, [&](int64_t b, int64_t e) { fn(op, x + b, y + b, e - b, p); });
  return a.undefined();
}

// unaryBackward(op, x, y, gy, gx, n, p)
napi_value unaryBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, "unaryBackward", 7);
  int op = opCode(a, 0, kUnaryCount, "op: unknown unary op code");
  size_t lx = 0, ly = 0, lgy = 0, lgx = 0;
  const float* x = f32Arg(a, 1, "x", &lx);
  const float* y = f32Arg(a, 2, "y", &ly);
  const float* gy = f32Arg(a, 3, "gy", &lgy);
  float* gx = f32Arg(a, 4, "gx", &lgx);
  int64_t n = count(a, 5, "n");
  double p = a.num(6);
  needLength(a, "x", lx, n, "n");
  needLength(a, "y", ly, n, "n");
  needLength(a, "gy", lgy, n, "n");
  if (!needLength(a, "gx", lgx, n, "n")) return nullptr;
  auto fn = isaTable().unaryBackward;
  parallelFor(n, kGrainElems, [&](int64_t b, int64_t e) { fn(op, x + b, y + b, gy + b, gx + b, e - b, p); });
  return a.undefined();
}

// binary(op, a, aOffset, aStrides, b, bOffset, bStrides, out, shape)
napi_value binary(napi_env env, napi_callback_info info) {
  Args a(env, info, "binary", 9);
  int op = opCode(a, 0, kBinaryCount, "op: unknown binary op code");
  int64_t shape[kMaxDims];
  int ndim = readShape(a, 8, shape);
  size_t la = 0, lb = 0, lo = 0;
  const float* A = f32Arg(a, 1, "a", &la);
  const float* B = f32Arg(a, 4, "b", &lb);
  float* out = f32Arg(a, 7, "out", &lo);
  if (a.failed) return nullptr;
  StridedLoop<3> loop;
  loop.ndim = ndim;
  for (int d = 0; d < ndim; d++) loop.shape[d] = shape[d];
  if (!needLength(a, "out", lo, product(shape, ndim), "the shape's size")) return nullptr;
  setContiguous(loop, 0, shape, ndim);
  if (!stridedOperand(a, 1, "a", la, shape, ndim, loop, 1)) return nullptr;
  if (!stridedOperand(a, 4, "b", lb, shape, ndim, loop, 2)) return nullptr;
  loop.coalesce();
  auto fn = isaTable().binary;
  loop.forEachRun(kGrainElems, [&](const int64_t* off, const int64_t* st, int64_t len) {
    fn(op, A + off[1], st[1], B + off[2], st[2], out + off[0], len);
  });
  return a.undefined();
}

template <typename C>
void whereRuns(const StridedLoop<4>& loop, const C* cond, const float* A, const float* B, float* out) {
  loop.forEachRun(kGrainElems, [&](const int64_t* off, const int64_t* st, int64_t len) {
    const C* c = cond + off[1];
    const float* pa = A + off[2];
    const float* pb = B + off[3];
    float* o = out + off[0];
    for (int64_t i = 0; i < len; i++) o[i] = c[i * st[1]] != 0 ? pa[i * st[2]] : pb[i * st[3]];
  });
}

// where(cond, cOffset, cStrides, a, aOffset, aStrides, b, bOffset, bStrides, out, shape)
napi_value where(napi_env env, napi_callback_info info) {
  Args a(env, info, "where", 11);
  int64_t shape[kMaxDims];
  int ndim = readShape(a, 10, shape);
  AnyTyped cond;
  anyTyped(a, 0, "cond", &cond);
  size_t la = 0, lb = 0, lo = 0;
  const float* A = f32Arg(a, 3, "a", &la);
  const float* B = f32Arg(a, 6, "b", &lb);
  float* out = f32Arg(a, 9, "out", &lo);
  if (a.failed) return nullptr;
  StridedLoop<4> loop;
  loop.ndim = ndim;
  for (int d = 0; d < ndim; d++) loop.shape[d] = shape[d];
  if (!needLength(a, "out", lo, product(shape, ndim), "the shape's size")) return nullptr;
  setContiguous(loop, 0, shape, ndim);
  if (!stridedOperand(a, 0, "cond", cond.length, shape, ndim, loop, 1)) return nullptr;
  if (!stridedOperand(a, 3, "a", la, shape, ndim, loop, 2)) return nullptr;
  if (!stridedOperand(a, 6, "b", lb, shape, ndim, loop, 3)) return nullptr;
  loop.coalesce();
  switch (cond.type) {
    case napi_float32_array: whereRuns(loop, static_cast<const float*>(cond.data), A, B, out); break;
    case napi_float64_array: whereRuns(loop, static_cast<const double*>(cond.data), A, B, out); break;
    default: whereRuns(loop, static_cast<const int32_t*>(cond.data), A, B, out); break;
  }
  return a.undefined();
}

// dropout(x, y, n, p, seed)
napi_value dropout(napi_env env, napi_callback_info info) {
  Args a(env, info, "dropout", 5);
  size_t lx = 0, ly = 0;
  const float* x = f32Arg(a, 0, "x", &lx);
  float* y = f32Arg(a, 1, "y", &ly);
  int64_t n = count(a, 2, "n");
  double p = a.num(3);
  double seed = a.num(4);
  needLength(a, "x", lx, n, "n");
  if (!needLength(a, "y", ly, n, "n")) return nullptr;
  if (!(p >= 0 && p <= 1)) {
    a.fail("p: expected a probability in [0, 1]");
    return nullptr;
  }
  // seed >>> 0 as in random.ts, then the integer threshold ⌈p·2^24⌉ (see dropout_hash.h).
  uint32_t s = static_cast<uint32_t>(toInt32(seed));
  uint32_t seedHash = hash32(s);
  uint32_t threshold = dropoutThreshold(p);
  double scale = 1.0 / (1.0 - p);
  auto fn = isaTable().dropout;
  parallelFor(n, kGrainElems, [&](int64_t b, int64_t e) { fn(x, y, b, e, seedHash, threshold, scale); });
  return a.undefined();
}

// simdLevel(level?) → the level in use ('avx512' | 'avx2' | 'generic'); a level argument lowers it (for tests).
napi_value simdLevel(napi_env env, napi_callback_info info) {
  Args a(env, info, "simdLevel", 0);
  if (a.argc >= 1) {
    char buf[16] = {0};
    size_t len = 0;
    if (napi_get_value_string_utf8(env, a.argv[0], buf, sizeof buf, &len) != napi_ok) {
      a.fail("level: expected 'avx512', 'avx2' or 'generic'");
      return nullptr;
    }
    Isa want = std::strcmp(buf, "avx512") == 0 ? Isa::Avx512 : std::strcmp(buf, "avx2") == 0 ? Isa::Avx2 : Isa::Generic;
    if (std::strcmp(buf, "generic") != 0 && want == Isa::Generic) {
      a.fail("level: expected 'avx512', 'avx2' or 'generic'");
      return nullptr;
    }
    if (static_cast<int>(want) > static_cast<int>(detectIsa())) {
      a.fail("level: this CPU does not support it");
      return nullptr;
    }
    activeIsa() = want;
  }
  const char* names[3] = {"generic", "avx2", "avx512"};
  napi_value r;
  napi_create_string_utf8(env, names[static_cast<int>(cpuIsa())], NAPI_AUTO_LENGTH, &r);
  return r;
}

}  // namespace

void registerElementwise(napi_env env, napi_value exports) {
  defineFunction(env, exports, "copyStrided", copyStrided);
  defineFunction(env, exports, "fill", fill);
  defineFunction(env, exports, "cast", cast);
  defineFunction(env, exports, "unary", unary);
  defineFunction(env, exports, "unaryBackward", unaryBackward);
  defineFunction(env, exports, "binary", binary);
  defineFunction(env, exports, "where", where);
  defineFunction(env, exports, "dropout", dropout);
  defineFunction(env, exports, "simdLevel", simdLevel);
}

}  // namespace lmf

// Argument checks shared by lmforge's kernel families: every entry point reads its typed arrays and sizes
// through these, so a bad call becomes a TypeError "native <kernel>: <argument>: <what was expected>".
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include "napi_util.h"

namespace lmf {

// A non-negative integer size argument.
inline int64_t count(Args& a, size_t i, const char* name) {
  double v = a.num(i);
  if (a.failed) return 0;
  if (!(v >= 0) || v != std::floor(v) || v > 9.0e15) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: expected a non-negative integer, got %g", name, v);
    a.fail(msg);
    return 0;
  }
  return static_cast<int64_t>(v);
}

// a·b saturated at INT64_MAX (sizes are non-negative), so a huge shape fails the length check instead of wrapping.
inline int64_t satMul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? INT64_MAX : r;
}
inline int64_t satMul(int64_t a, int64_t b, int64_t c) { return satMul(satMul(a, b), c); }

// Fails unless have ≥ need.
inline bool needLength(Args& a, const char* name, size_t have, int64_t need, const char* what) {
  if (a.failed) return false;
  if (static_cast<int64_t>(have) < need) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s: length %zu is less than %s = %lld", name, have, what, static_cast<long long>(need));
    a.fail(msg);
    return false;
  }
  return true;
}

// A typed array of the given type (or null when allowNull and the value is null/undefined).
inline void* typedArg(Args& a, size_t i, const char* name, napi_typedarray_type want, const char* wantName, size_t* len,
                      bool allowNull) {
  *len = 0;
  if (a.failed) return nullptr;
  if (allowNull) {
    napi_valuetype vt;
    napi_typeof(a.env, a.argv[i], &vt);
    if (vt == napi_null || vt == napi_undefined) return nullptr;
  }
  bool is = false;
  napi_is_typedarray(a.env, a.argv[i], &is);
  napi_typedarray_type type = napi_int8_array;
  void* data = nullptr;
  if (is) napi_get_typedarray_info(a.env, a.argv[i], &type, len, &data, nullptr, nullptr);
  if (!is || type != want) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: expected a%s %s", name, allowNull ? " null or" : "", wantName);
    a.fail(msg);
    return nullptr;
  }
  return data;
}
inline float* f32Arg(Args& a, size_t i, const char* name, size_t* len, bool allowNull = false) {
  return static_cast<float*>(typedArg(a, i, name, napi_float32_array, "Float32Array", len, allowNull));
}
inline int32_t* i32Arg(Args& a, size_t i, const char* name, size_t* len, bool allowNull = false) {
  return static_cast<int32_t*>(typedArg(a, i, name, napi_int32_array, "Int32Array", len, allowNull));
}

// JavaScript ToInt32 (what storing a number into an Int32Array does): truncate, wrap modulo 2^32, NaN/±∞ → 0.
inline int32_t toInt32(double v) {
  if (v > -2147483649.0 && v < 2147483648.0) return static_cast<int32_t>(v);
  if (!std::isfinite(v)) return 0;
  double t = std::fmod(std::trunc(v), 4294967296.0);
  if (t < 0) t += 4294967296.0;
  return static_cast<int32_t>(static_cast<uint32_t>(t));
}

// An integer argument that may be negative (ignoreIndex).
inline int32_t int32Arg(Args& a, size_t i, const char* name) {
  double v = a.num(i);
  if (a.failed) return 0;
  if (v != std::floor(v) || v < -2147483648.0 || v > 2147483647.0) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s: expected a 32-bit integer, got %g", name, v);
    a.fail(msg);
    return 0;
  }
  return static_cast<int32_t>(v);
}

}  // namespace lmf

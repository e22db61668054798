// Small helpers for reading N-API arguments. Every kernel entry point validates what it reads
// and throws a JS TypeError naming the kernel and the argument, instead of crashing.
#pragma once
#include <node_api.h>
#include <cstddef>
#include <cstdint>
#include <cstdio>

namespace lmf {

struct Args {
  napi_env env;
  const char* fn;
  size_t argc;
  napi_value argv[32];
  bool failed = false;

  Args(napi_env e, napi_callback_info info, const char* name, size_t expected) : env(e), fn(name), argc(32) {
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
    if (argc < expected) fail("expected more arguments");
  }

  void fail(const char* what, size_t index = SIZE_MAX) {
    if (failed) return;
    failed = true;
    char msg[256];
    if (index == SIZE_MAX) snprintf(msg, sizeof msg, "native %s: %s", fn, what);
    else snprintf(msg, sizeof msg, "native %s: argument %zu: %s", fn, index, what);
    napi_throw_type_error(env, nullptr, msg);
  }

  // A typed array of element type T (or null when allowNull and the JS value is null/undefined).
  template <typename T>
  T* array(size_t i, napi_typedarray_type want, size_t* length = nullptr, bool allowNull = false) {
    if (failed) return nullptr;
    napi_valuetype vt;
    napi_typeof(env, argv[i], &vt);
    if (allowNull && (vt == napi_null || vt == napi_undefined)) {
      if (length) *length = 0;
      return nullptr;
    }
    bool is = false;
    napi_is_typedarray(env, argv[i], &is);
    if (!is) { fail("expected a typed array", i); return nullptr; }
    napi_typedarray_type type;
    size_t len;
    void* data;
    napi_get_typedarray_info(env, argv[i], &type, &len, &data, nullptr, nullptr);
    if (type != want) { fail("wrong typed array element type", i); return nullptr; }
    if (length) *length = len;
    return static_cast<T*>(data);
  }
  float* f32(size_t i, size_t* len = nullptr, bool allowNull = false) { return array<float>(i, napi_float32_array, len, allowNull); }
  int32_t* i32(size_t i, size_t* len = nullptr, bool allowNull = false) { return array<int32_t>(i, napi_int32_array, len, allowNull); }

  // Any typed array as raw bytes (for dtype-agnostic copies).
  void* bytes(size_t i, size_t* elemSize, size_t* length) {
    if (failed) return nullptr;
    bool is = false;
    napi_is_typedarray(env, argv[i], &is);
    if (!is) { fail("expected a typed array", i); return nullptr; }
    napi_typedarray_type type;
    void* data;
    napi_get_typedarray_info(env, argv[i], &type, length, &data, nullptr, nullptr);
    switch (type) {
      case napi_float32_array: case napi_int32_array: case napi_uint32_array: *elemSize = 4; break;
      case napi_float64_array: *elemSize = 8; break;
      case napi_uint16_array: case napi_int16_array: *elemSize = 2; break;
      case napi_uint8_array: case napi_int8_array: case napi_uint8_clamped_array: *elemSize = 1; break;
      default: fail("unsupported typed array type", i); return nullptr;
    }
    return data;
  }

  double num(size_t i) {
    if (failed) return 0;
    double v = 0;
    if (napi_get_value_double(env, argv[i], &v) != napi_ok) fail("expected a number", i);
    return v;
  }
  int64_t int64(size_t i) { return static_cast<int64_t>(num(i)); }
  bool boolean(size_t i) {
    if (failed) return false;
    bool v = false;
    if (napi_get_value_bool(env, argv[i], &v) != napi_ok) fail("expected a boolean", i);
    return v;
  }
  // A JS array of numbers (shapes, strides) into out[0..n); returns n.
  size_t ints(size_t i, int64_t* out, size_t cap) {
    if (failed) return 0;
    bool is = false;
    napi_is_array(env, argv[i], &is);
    if (!is) { fail("expected an array of numbers", i); return 0; }
    uint32_t n = 0;
    napi_get_array_length(env, argv[i], &n);
    if (n > cap) { fail("array too long", i); return 0; }
    for (uint32_t j = 0; j < n; j++) {
      napi_value el;
      napi_get_element(env, argv[i], j, &el);
      double v;
      if (napi_get_value_double(env, el, &v) != napi_ok) { fail("expected an array of numbers", i); return 0; }
      out[j] = static_cast<int64_t>(v);
    }
    return n;
  }
  napi_value undefined() { napi_value u; napi_get_undefined(env, &u); return u; }
  napi_value number(double v) { napi_value r; napi_create_double(env, v, &r); return r; }
};

inline void defineFunction(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn);
  napi_set_named_property(env, exports, name, fn);
}

// Each kernel family registers its entry points here (see addon.cc).
void registerGemm(napi_env env, napi_value exports);
void registerAttention(napi_env env, napi_value exports);
void registerElementwise(napi_env env, napi_value exports);
void registerRowwise(napi_env env, napi_value exports);
void registerIndexing(napi_env env, napi_value exports);
void registerOptim(napi_env env, napi_value exports);
void registerMmap(napi_env env, napi_value exports);
void registerMoe(napi_env env, napi_value exports);

}  // namespace lmf

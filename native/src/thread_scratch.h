// Per-thread, 64-byte aligned scratch that only grows and is reused across calls: the GEMMs' packing buffers
// (fp32 panels in gemm.cc, bf16 pairs in gemm_bf16.cc). Not for memory that must be accounted or freed per call.
#pragma once
#include <cstdio>
#include <cstdlib>

namespace lmf {

template <typename T>
struct GrowingScratch {
  T* p = nullptr;
  size_t cap = 0;
  T* get(size_t n) {
    if (n > cap) {
      std::free(p);
      const size_t bytes = (n * sizeof(T) + 63) & ~size_t(63);
      p = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (!p) {  // no way to report an error from inside a parallel region
        std::fprintf(stderr, "lmforge native: out of memory allocating %zu bytes of scratch\n", bytes);
        std::abort();
      }
      cap = n;
    }
    return p;
  }
  ~GrowingScratch() { std::free(p); }
};

// This thread's buffer number `which` (0 or 1: one per purpose) of at least n elements of T.
template <typename T>
T* threadScratch(int which, size_t n) {
  static thread_local GrowingScratch<T> s[2];
  return s[which].get(n);
}

}  // namespace lmf

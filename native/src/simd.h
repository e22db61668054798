// Instruction-set dispatch and OpenMP range splitting shared by lmforge's native kernel families.
// Kernels are compiled once per instruction set by including their *_simd.inc body inside a namespace under
// `#pragma GCC target(...)` (the pragma form of __attribute__((target))); cpuIsa() picks one at run time
// with __builtin_cpu_supports, so the addon never needs -march=native. Not a kernel itself.
#pragma once
#include <omp.h>
#include <algorithm>
#include <cstdint>
#include "threads.h"

namespace lmf {

enum class Isa : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

// The best level this CPU supports.
inline Isa detectIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
  return Isa::Generic;
}

// The level in use: the detected one unless lowered through simdLevel() (tests run every path).
inline Isa& activeIsa() {
  static Isa isa = detectIsa();
  return isa;
}
inline Isa cpuIsa() { return activeIsa(); }

// Runs f(begin, end) over [0, n) across OpenMP threads, or inline when there are fewer than 2·minPerThread
// items (thread start-up costs a few microseconds), when already inside a parallel region, or while the thread
// policy has the process on one thread (threads.h). Large ranges are cut into up to 8 chunks per thread handed
// out dynamically, so a thread the OS deschedules (the machine is shared) delays one small chunk instead of half.
// These regions obey the policy but do not time their workers: the GEMM, attention and row-partial regions give
// the evidence, and timing here (a separate parallel and for construct) cost ~3% of a small model's step.
template <class F>
inline void parallelFor(int64_t n, int64_t minPerThread, F&& f) {
  if (n <= 0) return;
  const int64_t want = n / std::max<int64_t>(minPerThread, 1);
  const int maxThreads = want < 2 || omp_in_parallel() ? 1 : threadPolicy().cap();
  if (maxThreads <= 1) {
    f(int64_t{0}, n);
    return;
  }
  int threads = static_cast<int>(std::min<int64_t>(maxThreads, want));
  const int64_t chunks = std::min<int64_t>(want, int64_t{8} * threads);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    if (b < e) f(b, e);
  }
}

}  // namespace lmf

// Helpers of the per-ISA bodies are forced inline: GCC's inliner gives up on them in large translation units,
// and a call left inside a loop stops it from being vectorised.
#define LMF_VINLINE static inline __attribute__((always_inline))

// Opens an instruction-set namespace: NS is its name, TARGET the pragma's option string.
#define LMF_SIMD_TARGET_AVX512 "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512"
#define LMF_SIMD_TARGET_AVX2 "avx2,fma"

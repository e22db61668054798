// Kernel family 'gemm': batched single-precision C (+)= op(A)·op(B), the MatmulArgs contract of src/core/kernels.ts.
// GotoBLAS/BLIS blocking (pack B into a KC×NC block shared by the threads, pack A into per-thread MC×KC blocks, a
// register-blocked micro-kernel), one micro-kernel per instruction set chosen at run time (AVX-512, AVX2+FMA,
// portable). Not here: other dtypes, strided C, or any system BLAS.
#include <omp.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include "napi_util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMF_X86 1
#endif

#define LMF_INLINE inline __attribute__((always_inline))

namespace lmf {
namespace {

using UkrFn = void (*)(int64_t kc, const float* a, int64_t rsA, int64_t csA, const float* b, int64_t ldb, float* c,
                       int64_t ldc, int m, int n, bool add);

// ---- AVX-512 (16 lanes): Zen 4/5, Skylake-X and later. --------------------------------------------------------
#ifdef LMF_X86
namespace avx512 {
#define LMF_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")))
struct V {
  using vec = __m512;
  static constexpr int W = 16;
  static LMF_TARGET LMF_INLINE __mmask16 mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
  static LMF_TARGET LMF_INLINE vec zero() { return _mm512_setzero_ps(); }
  static LMF_TARGET LMF_INLINE vec load(const float* p) { return _mm512_loadu_ps(p); }
  static LMF_TARGET LMF_INLINE vec loadn(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static LMF_TARGET LMF_INLINE vec bcast(const float* p) { return _mm512_set1_ps(*p); }
  static LMF_TARGET LMF_INLINE vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static LMF_TARGET LMF_INLINE vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  static LMF_TARGET LMF_INLINE void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
  static LMF_TARGET LMF_INLINE void storen(float* p, vec v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }
};
#ifndef LMF_AVX512_MR  // overridable only for tuning experiments (dev/gemm)
#define LMF_AVX512_MR 12
#define LMF_AVX512_NV 2
#endif
constexpr int KMR = LMF_AVX512_MR, KNV = LMF_AVX512_NV;
#include "gemm_ukernel.inc"
#undef LMF_TARGET
}  // namespace avx512

// ---- AVX2 + FMA (8 lanes): Haswell, Zen 1-3. ------------------------------------------------------------------
namespace avx2 {
#define LMF_TARGET __attribute__((target("avx2,fma")))
struct V {
  using vec = __m256;
  static constexpr int W = 8;
  static LMF_TARGET LMF_INLINE __m256i mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static LMF_TARGET LMF_INLINE vec zero() { return _mm256_setzero_ps(); }
  static LMF_TARGET LMF_INLINE vec load(const float* p) { return _mm256_loadu_ps(p); }
  static LMF_TARGET LMF_INLINE vec loadn(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static LMF_TARGET LMF_INLINE vec bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static LMF_TARGET LMF_INLINE vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static LMF_TARGET LMF_INLINE vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  static LMF_TARGET LMF_INLINE void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
  static LMF_TARGET LMF_INLINE void storen(float* p, vec v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
};
constexpr int KMR = 6, KNV = 2;
#include "gemm_ukernel.inc"
#undef LMF_TARGET
}  // namespace avx2
#endif

// ---- Portable (GCC/Clang vector extensions, 4 lanes): SSE2 on any x86-64, NEON elsewhere. ----------------------
namespace generic {
#define LMF_TARGET
typedef float v4 __attribute__((vector_size(16)));
struct V {
  using vec = v4;
  static constexpr int W = 4;
  static LMF_INLINE vec zero() { return vec{0, 0, 0, 0}; }
  static LMF_INLINE vec load(const float* p) { vec v; std::memcpy(&v, p, sizeof v); return v; }
  static LMF_INLINE vec loadn(const float* p, int n) {
    vec v = zero();
    for (int i = 0; i < n; i++) v[i] = p[i];
    return v;
  }
  static LMF_INLINE vec bcast(const float* p) { float x = *p; return vec{x, x, x, x}; }
  static LMF_INLINE vec fma(vec a, vec b, vec c) { return a * b + c; }
  static LMF_INLINE vec add(vec a, vec b) { return a + b; }
  static LMF_INLINE void store(float* p, vec v) { std::memcpy(p, &v, sizeof v); }
  static LMF_INLINE void storen(float* p, vec v, int n) { for (int i = 0; i < n; i++) p[i] = v[i]; }
};
constexpr int KMR = 6, KNV = 2;
#include "gemm_ukernel.inc"
#undef LMF_TARGET
}  // namespace generic

// A kernel family and its cache blocking: a KC×NR micro-panel of B stays in L1 across the ir loop, the MC×KC
// block of A in L2, the KC×NC block of B in the shared L3.
struct KernelSet {
  const char* name;
  int MR, NR;
  int64_t KC, MC, NC;
  UkrFn packedFull, packedEdge, directFull, directEdge;
};

#ifdef LMF_X86
#ifndef LMF_AVX512_KC  // overridable only for tuning experiments (dev/gemm)
#define LMF_AVX512_KC 384
#define LMF_AVX512_MC 192
#define LMF_AVX512_NC 4096
#endif
const KernelSet kAvx512 = {"avx512", avx512::KMR, avx512::KNV * 16, LMF_AVX512_KC, LMF_AVX512_MC, LMF_AVX512_NC,
                           avx512::ukrPackedFull, avx512::ukrPackedEdge, avx512::ukrDirectFull, avx512::ukrDirectEdge};
const KernelSet kAvx2 = {"avx2", avx2::KMR, avx2::KNV * 8, 256, 144, 4096,
                         avx2::ukrPackedFull, avx2::ukrPackedEdge, avx2::ukrDirectFull, avx2::ukrDirectEdge};
#endif
const KernelSet kGeneric = {"generic", generic::KMR, generic::KNV * 4, 256, 96, 2048,
                            generic::ukrPackedFull, generic::ukrPackedEdge, generic::ukrDirectFull,
                            generic::ukrDirectEdge};

const KernelSet* bestKernelSet() {
#ifdef LMF_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    return &kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &kAvx2;
#endif
  return &kGeneric;
}
const KernelSet* gKernels = bestKernelSet();

// A strided matrix view: element (i, j) is p[i·rs + j·cs].
struct Mat {
  const float* p;
  int64_t rs, cs;
};

// A 64-byte aligned scratch buffer that only grows (one per thread and purpose, reused across calls).
struct Scratch {
  float* p = nullptr;
  size_t cap = 0;
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      size_t bytes = (n * sizeof(float) + 63) & ~size_t(63);
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      cap = p ? n : 0;
    }
    return p;
  }
  ~Scratch() { std::free(p); }
};
float* threadScratch(int which, size_t n) {
  static thread_local Scratch s[2];
  return s[which].get(n);
}

// Pack rows [i0, i0+mc) × cols [p0, p0+kc) of A into MR-row panels: for each k, MR values (rows beyond mc
// are zero), so the micro-kernel reads A as one contiguous stream.
void packA(const Mat& A, int64_t i0, int64_t mc, int64_t p0, int64_t kc, int MR, float* dst) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ip));
    const float* src = A.p + (i0 + ip) * A.rs + p0 * A.cs;
    if (A.rs == 1) {  // transposed A: the MR values of one k are contiguous
      for (int64_t k = 0; k < kc; k++) {
        const float* s = src + k * A.cs;
        float* d = dst + k * MR;
        int i = 0;
        for (; i < mr; i++) d[i] = s[i];
        for (; i < MR; i++) d[i] = 0.f;
      }
    } else {  // row-major A: read each row contiguously, write with stride MR
      for (int i = 0; i < mr; i++) {
        const float* s = src + i * A.rs;
        for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = s[k * A.cs];
      }
      for (int i = mr; i < MR; i++)
        for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = 0.f;
    }
    dst += kc * MR;
  }
}

// Pack rows [p0, p0+kc) × cols [j0, j0+nc) of B into NR-column panels (columns beyond nc are zero),
// panels [first, last) only, so that threads share the work.
void packB(const Mat& B, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int NR, int64_t first, int64_t last,
           float* dst) {
  for (int64_t jp = first; jp < last; jp++) {
    const int64_t j = jp * NR;
    const int nr = static_cast<int>(std::min<int64_t>(NR, nc - j));
    const float* src = B.p + p0 * B.rs + (j0 + j) * B.cs;
    float* d0 = dst + jp * kc * NR;
    if (B.cs == 1) {  // row-major B: each k row is contiguous
      for (int64_t k = 0; k < kc; k++) {
        const float* s = src + k * B.rs;
        float* d = d0 + k * NR;
        int jj = 0;
        for (; jj < nr; jj++) d[jj] = s[jj];
        for (; jj < NR; jj++) d[jj] = 0.f;
      }
    } else {  // transposed B: read each column contiguously, write with stride NR
      for (int jj = 0; jj < nr; jj++) {
        const float* s = src + jj * B.cs;
        for (int64_t k = 0; k < kc; k++) d0[k * NR + jj] = s[k * B.rs];
      }
      for (int jj = nr; jj < NR; jj++)
        for (int64_t k = 0; k < kc; k++) d0[k * NR + jj] = 0.f;
    }
  }
}

struct Problem {
  Mat A, B;
  float* C;
  int64_t ldc, M, N, K;
  bool add;
};

// Shared by a team working on one matrix: the packed B block and two task counters used on alternate
// (jc, pc) steps, so one can be reset while the other is in use.
struct Team {
  float* bbuf;
  std::atomic<int64_t> next[2];
};

// One matrix, run by thread `tid` of `nt`. All nt threads call it together and meet at barriers, so nt > 1
// only inside a parallel region of exactly nt threads. packA = false reads A in place; packB = false reads B in
// place (needs B.cs == 1). Tasks are (row block, column chunk) pairs handed out dynamically, so a thread that
// loses its core to another process does not hold the others up for more than one task.
void gemmBlocked(const KernelSet& ks, const Problem& P, bool doPackA, bool doPackB, int tid, int nt, Team& team) {
  const int MR = ks.MR, NR = ks.NR;
  const int64_t M = P.M, N = P.N, K = P.K;
  const int64_t KC = std::min<int64_t>(ks.KC, K), NC = std::min<int64_t>(ks.NC, (N + NR - 1) / NR * NR);
  // Row blocks of at most MC rows, their count a multiple of nt when M allows, so the shares come out even.
  int64_t mBlocks = (M + ks.MC - 1) / ks.MC;
  mBlocks = (mBlocks + nt - 1) / nt * nt;
  const int64_t MC = ((M + mBlocks - 1) / mBlocks + MR - 1) / MR * MR;
  mBlocks = (M + MC - 1) / MC;
  // Too few row blocks for the team (small M): split the columns too.
  const int64_t nChunks = mBlocks < nt ? nt : 1;
  const int64_t tasks = mBlocks * nChunks;
  float* abuf = doPackA ? threadScratch(0, static_cast<size_t>(MC * KC)) : nullptr;

  int step = 0;
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t panels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += KC, step++) {
      const int64_t kc = std::min(KC, K - pc);
      const bool add = P.add || pc > 0;
      if (doPackB) packB(P.B, pc, kc, jc, nc, NR, panels * tid / nt, panels * (tid + 1) / nt, team.bbuf);
      if (nt > 1) {
#pragma omp barrier
        if (tid == 0) team.next[(step + 1) & 1].store(0, std::memory_order_relaxed);
      }
      std::atomic<int64_t>& next = team.next[step & 1];
      for (int64_t own = 0;;) {
        const int64_t t = nt > 1 ? next.fetch_add(1, std::memory_order_relaxed) : own++;
        if (t >= tasks) break;
        const int64_t ib = t / nChunks, chunk = t % nChunks;
        const int64_t ic = ib * MC, mc = std::min(MC, M - ic);
        const int64_t j0 = panels * chunk / nChunks * NR, j1 = std::min(nc, panels * (chunk + 1) / nChunks * NR);
        if (doPackA) packA(P.A, ic, mc, pc, kc, MR, abuf);
        for (int64_t jr = j0; jr < j1; jr += NR) {
          const int n = static_cast<int>(std::min<int64_t>(NR, j1 - jr));
          const float* b = doPackB ? team.bbuf + (jr / NR) * kc * NR : P.B.p + pc * P.B.rs + (jc + jr);
          const int64_t ldb = doPackB ? NR : P.B.rs;
          float* c = P.C + ic * P.ldc + jc + jr;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int m = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            if (doPackA) {
              UkrFn f = n == NR ? ks.packedFull : ks.packedEdge;
              f(kc, abuf + ir * kc, 1, MR, b, ldb, c + ir * P.ldc, P.ldc, m, n, add);
            } else {
              UkrFn f = n == NR ? ks.directFull : ks.directEdge;
              const float* a = P.A.p + (ic + ir) * P.A.rs + pc * P.A.cs;
              f(kc, a, P.A.rs, P.A.cs, b, ldb, c + ir * P.ldc, P.ldc, m, n, add);
            }
          }
        }
      }
      if (nt > 1) {
#pragma omp barrier
      }
    }
  }
}

// Below this many multiply-adds a matrix runs on one thread; at or below kNoPackWork it skips packing.
constexpr double kParallelWork = 1 << 18;
constexpr double kNoPackWork = 1 << 16;

// C (+)= A·B for one matrix on up to nt threads (nt == 1 when called from inside a parallel loop).
void gemmOne(const KernelSet& ks, const Problem& P, int nt) {
  if (P.M == 0 || P.N == 0) return;
  if (P.K == 0) {
    if (!P.add)
      for (int64_t i = 0; i < P.M; i++) std::memset(P.C + i * P.ldc, 0, static_cast<size_t>(P.N) * sizeof(float));
    return;
  }
  const double work = static_cast<double>(P.M) * static_cast<double>(P.N) * static_cast<double>(P.K);
  // Packing A costs O(M·K) against O(M·N·K) of work: skip it for few columns; packing B likewise for few rows.
  const bool packA = work > kNoPackWork && P.N > 2 * ks.NR;
  const bool packB = P.B.cs != 1 || (work > kNoPackWork && P.M > 2 * ks.MR);
  if (work < kParallelWork) nt = 1;
  const int64_t KC = std::min<int64_t>(ks.KC, P.K), NC = std::min<int64_t>(ks.NC, (P.N + ks.NR - 1) / ks.NR * ks.NR);
  Team team;
  team.bbuf = packB ? threadScratch(1, static_cast<size_t>(KC * NC)) : nullptr;
  team.next[0].store(0);
  team.next[1].store(0);
  if (nt <= 1) {
    gemmBlocked(ks, P, packA, packB, 0, 1, team);
    return;
  }
#pragma omp parallel num_threads(nt)
  gemmBlocked(ks, P, packA, packB, omp_get_thread_num(), omp_get_num_threads(), team);
}

}  // namespace

// The whole batched contract. Strides are in elements; a batch stride of 0 broadcasts that operand.
void sgemmBatched(const float* a, const float* b, float* c, int64_t batch, int64_t M, int64_t N, int64_t K,
                  bool transA, bool transB, int64_t aBatchStride, int64_t bBatchStride, bool accumulate) {
  const KernelSet& ks = *gKernels;
  if (batch <= 0 || M == 0 || N == 0) return;
  const Mat A0 = transA ? Mat{a, 1, M} : Mat{a, K, 1};
  const Mat B0 = transB ? Mat{b, 1, K} : Mat{b, N, 1};
  const int nt = omp_get_max_threads();
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  auto problem = [&](int64_t i) {
    return Problem{{A0.p + i * aBatchStride, A0.rs, A0.cs}, {B0.p + i * bBatchStride, B0.rs, B0.cs},
                   c + i * M * N, N, M, N, K, accumulate};
  };
  // Many matrices: one per thread at a time (each thread with its own scratch), unless the batch would
  // split unevenly over large matrices, where threading inside each matrix balances better.
  if (nt > 1 && batch >= nt && (batch % nt == 0 || batch >= 4 * nt || work < kParallelWork)) {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t i = 0; i < batch; i++) gemmOne(ks, problem(i), 1);
    return;
  }
  for (int64_t i = 0; i < batch; i++) gemmOne(ks, problem(i), nt);
}

// Which micro-kernel family runs ("avx512", "avx2", "generic"); setGemmIsa picks a supported one (for tests).
const char* gemmIsa() { return gKernels->name; }
bool setGemmIsa(const char* name) {
  const KernelSet* best = bestKernelSet();
  const KernelSet* all[] = {
#ifdef LMF_X86
      &kAvx512, &kAvx2,
#endif
      &kGeneric};
  bool supported = false;
  for (const KernelSet* k : all) {
    if (k == best) supported = true;  // `all` runs from the widest ISA down: `best` and after are supported
    if (supported && std::strcmp(k->name, name) == 0) {
      gKernels = k;
      return true;
    }
  }
  return false;
}

namespace {

// Reads argument i as a non-negative integer (an index or size into a typed array); names `what` in errors.
int64_t index(Args& args, size_t i, const char* what) {
  const double v = args.num(i);
  if (args.failed) return 0;
  if (!std::isfinite(v) || v < 0 || v != std::floor(v) || v > 9007199254740991.0) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a non-negative integer (got %g)", what, v);
    args.fail(msg, i);
    return 0;
  }
  return static_cast<int64_t>(v);
}

// Checks that `batch` matrices of `size` elements, `stride` apart from `offset`, fit in an array of `len`.
bool fits(Args& args, size_t i, const char* what, size_t len, int64_t offset, int64_t batch, int64_t stride,
          double size) {
  if (args.failed) return false;
  double end = static_cast<double>(offset);
  if (batch > 0 && size > 0) end += static_cast<double>(batch - 1) * static_cast<double>(stride) + size;
  if (end > static_cast<double>(len)) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s is too short: the shapes need %.0f elements, it has %zu", what, end, len);
    args.fail(msg, i);
    return false;
  }
  return true;
}

// matmul(a, aOffset, b, bOffset, c, cOffset, batch, M, N, K, transA, transB, aBatchStride, bBatchStride, accumulate)
napi_value matmul(napi_env env, napi_callback_info info) {
  Args args(env, info, "matmul", 15);
  size_t aLen = 0, bLen = 0, cLen = 0;
  const float* a = args.f32(0, &aLen);
  const int64_t aOffset = index(args, 1, "aOffset");
  const float* b = args.f32(2, &bLen);
  const int64_t bOffset = index(args, 3, "bOffset");
  float* c = args.f32(4, &cLen);
  const int64_t cOffset = index(args, 5, "cOffset");
  const int64_t batch = index(args, 6, "batch");
  const int64_t M = index(args, 7, "M");
  const int64_t N = index(args, 8, "N");
  const int64_t K = index(args, 9, "K");
  const bool transA = args.boolean(10);
  const bool transB = args.boolean(11);
  const int64_t aStride = index(args, 12, "aBatchStride");
  const int64_t bStride = index(args, 13, "bBatchStride");
  const bool accumulate = args.boolean(14);
  if (args.failed) return nullptr;
  const double mk = static_cast<double>(M) * static_cast<double>(K);
  const double kn = static_cast<double>(K) * static_cast<double>(N);
  const double mn = static_cast<double>(M) * static_cast<double>(N);
  if (!fits(args, 0, "a", aLen, aOffset, batch, aStride, mk)) return nullptr;
  if (!fits(args, 2, "b", bLen, bOffset, batch, bStride, kn)) return nullptr;
  if (!fits(args, 4, "c", cLen, cOffset, batch, static_cast<int64_t>(mn), mn)) return nullptr;
  // Empty views may sit at the very end of their array; no pointer past it is formed, let alone read.
  if (batch == 0 || mn == 0) return args.undefined();
  sgemmBatched(a + aOffset, b + bOffset, c + cOffset, batch, M, N, K, transA, transB, aStride, bStride, accumulate);
  return args.undefined();
}

// gemmIsa() → the micro-kernel family in use; gemmIsa(name) switches to a supported one or throws.
napi_value gemmIsaJs(napi_env env, napi_callback_info info) {
  Args args(env, info, "gemmIsa", 0);
  if (args.argc > 0) {
    char name[32];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, args.argv[0], name, sizeof name, &len) != napi_ok) {
      args.fail("expected a string", 0);
      return nullptr;
    }
    if (!setGemmIsa(name)) {
      args.fail("unknown or unsupported ISA (expected avx512, avx2 or generic, as this CPU allows)", 0);
      return nullptr;
    }
  }
  napi_value r;
  napi_create_string_utf8(env, gemmIsa(), NAPI_AUTO_LENGTH, &r);
  return r;
}

}  // namespace

void registerGemm(napi_env env, napi_value exports) {
  defineFunction(env, exports, "matmul", matmul);
  defineFunction(env, exports, "gemmIsa", gemmIsaJs);
}

}  // namespace lmf

// Kernel family 'gemm_bf16': batched C (+)= op(A)·op(B) with fp32 operands and result (the MatmulArgs contract of
// src/core/kernels.ts) computed from bf16-rounded A and B with fp32 accumulation, and its N-API entry points.
// A and B are converted while packing (round to nearest even), so fp32 master weights need no bf16 copy. Kernels
// (gemm_bf16_kernels.inc): AVX512-BF16 vdpbf16ps (Zen 4/5 and recent Xeons) or AMX-BF16 tiles (Sapphire Rapids and
// later Xeons), chosen at run time; a CPU with neither runs gemm.cc's fp32 GEMM instead (exact fp32 results).
// Blocking follows gemm.cc: B packed in 32-column panels shared by the team, A in micro-tile panels of a per-thread
// MC×KC block, row blocks claimed dynamically. Not here: bf16 tensors, the fp32 kernels, attention.
#include <omp.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include "gemm_call.h"
#include "thread_scratch.h"
#include "napi_util.h"
#include "simd.h"
#include "threads.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define LMF_BF16_X86 1
#endif

#define LMF_INLINE inline __attribute__((always_inline))

namespace lmf {

// gemm.cc: the fp32 GEMM (the fallback) and how many threads a product of `macs` multiply-adds should get now.
void sgemmBatched(const float* a, const float* b, float* c, int64_t batch, int64_t M, int64_t N, int64_t K,
                  bool transA, bool transB, int64_t aBatchStride, int64_t bBatchStride, bool accumulate);
int gemmTeamFor(double macs);

namespace {

#ifdef LMF_BF16_X86
#include "gemm_bf16_kernels.inc"
#endif

// A kernel and its cache blocking: K in blocks of KC (a multiple of 32; the KC×32 B micro-panel is reused across
// a row block), M in blocks of at most MC rows (the packed MC×KC block of A stays in L2).
struct Bf16Kernel {
  const char* name;
  int MR;
  int64_t KC, MC;
  // Packs mn ≤ MR rows × kc k of A (element (i, k) at s[i·ri + k·rk]) into one micro-tile panel of kcPad/2·MR words.
  void (*packA)(const float* s, int64_t ri, int64_t rk, int64_t kc, int mn, int64_t kcPad, uint32_t* dst);
  // C tile (m ≤ MR rows, n ≤ 32 columns) (+)= packed A panel · packed B panel over kp pairs of k.
  void (*ukr)(int64_t kp, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int m, int n, bool add);
  // Per-thread set-up and tear-down around a run of ukr calls (AMX's tile configuration), or nullptr.
  void (*begin)();
  void (*end)();
};

#ifdef LMF_BF16_X86
// KC 512: a B micro-panel is 512·32 bf16 = 32 KiB (L1 on Zen 4/5); MC 192: A block 192 KiB (L2).
const Bf16Kernel kAvx512Bf16 = {"avx512bf16", kAvxMR, 512, 192, packAAvx512Bf16, ukrAvx512Bf16, nullptr, nullptr};
// AMX streams tiles from L2: a longer K block halves the C tile's round trips through memory.
const Bf16Kernel kAmx = {"amx", kAmxMR, 1024, 256, packRows, ukrAmx, amxBegin, amxEnd};

bool cpuHasAvx512Bf16() {
  if (detectIsa() != Isa::Avx512) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
  return (a >> 5) & 1u;  // CPUID.(7,1):EAX[5] AVX512_BF16
}

// AMX needs the CPU (CPUID.(7,0):EDX[22] AMX-BF16, [24] AMX-TILE) and the kernel's permission for the tile data
// state (Linux ≥ 5.16: arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, once per process).
bool cpuHasAmx() {
  if (!cpuHasAvx512Bf16()) return false;  // packing uses the AVX512-BF16 conversions
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  if (!((d >> 22) & 1u) || !((d >> 24) & 1u)) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}
#endif

// Every kernel this CPU runs, fastest first, and the one in use (nullptr: the fp32 fallback).
struct Bf16Registry {
  const Bf16Kernel* supported[2] = {nullptr, nullptr};
  const Bf16Kernel* active = nullptr;
  Bf16Registry() {
#ifdef LMF_BF16_X86
    int n = 0;
    if (cpuHasAmx()) supported[n++] = &kAmx;
    if (cpuHasAvx512Bf16()) supported[n++] = &kAvx512Bf16;
#endif
    active = supported[0];
    // LMFORGE_BF16_GEMM=fp32 forces the fallback, =avx512bf16 or =amx a kernel this CPU supports.
    if (const char* want = std::getenv("LMFORGE_BF16_GEMM")) {
      if (!select(want))
        std::fprintf(stderr, "lmforge: LMFORGE_BF16_GEMM=%s is not one of this CPU's bf16 GEMM kernels (%s); using %s\n",
                     want, list().c_str(), name());
    }
  }
  bool select(const char* want) {
    if (std::strcmp(want, "fp32") == 0) {
      active = nullptr;
      return true;
    }
    for (const Bf16Kernel* k : supported)
      if (k && std::strcmp(k->name, want) == 0) {
        active = k;
        return true;
      }
    return false;
  }
  const char* name() const { return active ? active->name : "fp32"; }
  std::string list() const {
    std::string s;
    for (const Bf16Kernel* k : supported)
      if (k) s += std::string(k->name) + ", ";
    return s + "fp32";
  }
};
Bf16Registry& registry() {
  static Bf16Registry r;
  return r;
}

#ifdef LMF_BF16_X86
// A strided matrix view: element (i, j) is p[i·rs + j·cs]; one of rs, cs is 1.
struct Mat {
  const float* p;
  int64_t rs, cs;
};

struct Problem {
  Mat A, B;
  float* C;
  int64_t ldc, M, N, K;
  bool add;
};

// Packed B for one chunk is at most this many bf16 pairs (16 MiB, so it stays in L3).
constexpr int64_t kPackBudget = int64_t(1) << 22;
// Below this many multiply-adds per matrix a batch runs one matrix per thread.
constexpr double kTeamWork = 1 << 21;

int64_t roundUp(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

// How one matrix is cut: B in chunks of NC columns × KR rows (all of B when it fits kPackBudget), each chunk in K
// blocks of KC, packed into `bbuf` (block lb, panel jp at bbuf + (lb·NC + jp·32)·KC/2); row blocks of MC rows.
struct Plan {
  int64_t KC, NC, KR, MC, mBlocks, colSplit;
};

Plan plan(const Bf16Kernel& kk, const Problem& P, int nt) {
  Plan pl;
  pl.KC = std::min(kk.KC, roundUp(P.K, 32));
  const int64_t Npad = roundUp(P.N, kNR), Kpad = roundUp(P.K, pl.KC);
  pl.NC = Npad;
  pl.KR = Kpad;
  if (Kpad / 2 * Npad > kPackBudget) {  // all of K over fewer columns, but at least 2048 (packed A is reused across them)
    pl.NC = std::min(Npad, std::max<int64_t>(2048, kPackBudget / (Kpad / 2) / kNR * kNR));
    pl.KR = std::min(Kpad, std::max<int64_t>(1, kPackBudget / (pl.NC * pl.KC / 2)) * pl.KC);
  }
  // Row blocks of at most MC rows, their count a multiple of nt when M allows and at least 4 per thread (of at least
  // 4·MR rows), so that a thread that loses its core to another process leaves little the others cannot take over.
  const int MR = kk.MR;
  int64_t mBlocks = (P.M + kk.MC - 1) / kk.MC;
  if (nt > 1) mBlocks = std::max(mBlocks, std::min<int64_t>(4 * nt, P.M / (4 * MR)));
  mBlocks = (mBlocks + nt - 1) / nt * nt;
  pl.MC = roundUp((P.M + mBlocks - 1) / mBlocks, MR);
  pl.mBlocks = (P.M + pl.MC - 1) / pl.MC;
  pl.colSplit = pl.mBlocks < nt ? nt : 1;  // too few row blocks for the team (small M): split the columns too
  return pl;
}

// Shared by the team working on one matrix: packed B, a state per (K block, panel) of a chunk (0 empty, 1 being
// packed, 2 ready) and a task counter per chunk. Whichever thread first needs a panel packs it, so no thread waits
// for another except between chunks (only when B exceeds kPackBudget) and at the end: on a shared machine a barrier
// can cost a scheduler slice.
struct Team {
  uint32_t* bbuf = nullptr;
  std::unique_ptr<std::atomic<int>[]> state;
  std::unique_ptr<std::atomic<int64_t>[]> next;
};

LMF_INLINE void spinPause() { _mm_pause(); }

// One matrix, run by each of `nt` threads together (nt > 1 only inside a parallel region of exactly nt threads).
// Each C tile sums its K blocks in order, and a panel's packing does not depend on who packs it, so results do not
// depend on the thread count.
void gemmBlocked(const Bf16Kernel& kk, const Problem& P, const Plan& pl, int nt, Team& team) {
  const int MR = kk.MR;
  const int64_t M = P.M, N = P.N, K = P.K, KC = pl.KC, NC = pl.NC, KR = pl.KR;
  uint32_t* abuf = threadScratch<uint32_t>(0, static_cast<size_t>(pl.MC * KC / 2));
  const int64_t kChunks = (K + KR - 1) / KR, chunks = (N + NC - 1) / NC * kChunks;
  const int64_t tasks = pl.mBlocks * pl.colSplit, chunkPanels = NC / kNR, chunkBlocks = KR / KC;
  static thread_local std::vector<int64_t> skipped;
  if (kk.begin) kk.begin();
  for (int64_t chunk = 0; chunk < chunks; chunk++) {
    const int64_t jc = chunk / kChunks * NC, k0 = chunk % kChunks * KR;
    const int64_t nc = std::min(NC, N - jc), panels = (nc + kNR - 1) / kNR, k1 = std::min(K, k0 + KR);
    if (chunk > 0 && nt > 1) {
#pragma omp barrier  // every thread is done with the previous chunk: its C tiles and its packed B
    }
    for (int64_t own = 0;;) {
      const int64_t t = nt > 1 ? team.next[chunk].fetch_add(1, std::memory_order_relaxed) : own++;
      if (t >= tasks) break;
      const int64_t ib = t / pl.colSplit, part = t % pl.colSplit;
      const int64_t ic = ib * pl.MC, mc = std::min(pl.MC, M - ic);
      const int64_t j0 = panels * part / pl.colSplit, j1 = panels * (part + 1) / pl.colSplit;
      if (j0 == j1) continue;
      for (int64_t lb = 0; k0 + lb * KC < k1; lb++) {
        const int64_t pc = k0 + lb * KC, kc = std::min(KC, k1 - pc), kcPad = roundUp(kc, 32);
        const bool add = P.add || pc > 0;
        for (int64_t ir = 0; ir < mc; ir += MR)
          kk.packA(P.A.p + (ic + ir) * P.A.rs + pc * P.A.cs, P.A.rs, P.A.cs, kc,
                   static_cast<int>(std::min<int64_t>(MR, mc - ir)), kcPad, abuf + ir * kcPad / 2);
        std::atomic<int>* state = team.state.get() + (chunk * chunkBlocks + lb) * chunkPanels;
        // Rows ic..ic+mc times panel jp, packing the panel first if nobody has; returns false (computing nothing)
        // when another thread is packing it and `wait` is not set.
        auto panel = [&](int64_t jp, bool wait) -> bool {
          uint32_t* b = team.bbuf + (lb * NC + jp * kNR) * (KC / 2);
          std::atomic<int>& s = state[jp];
          if (s.load(std::memory_order_acquire) != 2) {
            int expected = 0;
            if (s.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
              const int64_t j = jc + jp * kNR;
              packPairs(P.B.p + pc * P.B.rs + j * P.B.cs, P.B.rs, P.B.cs, kc,
                        static_cast<int>(std::min<int64_t>(kNR, N - j)), kNR, kcPad, b);
              s.store(2, std::memory_order_release);
            } else if (!wait) {
              return false;
            } else {
              for (int spins = 0; s.load(std::memory_order_acquire) != 2; spins++) {
                if (spins < 256) spinPause();
                else std::this_thread::yield();
              }
            }
          }
          const int n = static_cast<int>(std::min<int64_t>(kNR, nc - jp * kNR));
          float* c = P.C + ic * P.ldc + jc + jp * kNR;
          for (int64_t ir = 0; ir < mc; ir += MR)
            kk.ukr(kcPad / 2, abuf + ir * kcPad / 2, b, c + ir * P.ldc, P.ldc,
                   static_cast<int>(std::min<int64_t>(MR, mc - ir)), n, add);
          return true;
        };
        skipped.clear();
        for (int64_t jp = j0; jp < j1; jp++)
          if (!panel(jp, false)) skipped.push_back(jp);
        for (int64_t jp : skipped) panel(jp, true);
      }
    }
  }
  if (kk.end) kk.end();
}

// C (+)= A·B for one matrix on up to nt threads (nt == 1 when called from inside a parallel loop).
void gemmOne(const Bf16Kernel& kk, const Problem& P, int nt) {
  if (P.M == 0 || P.N == 0) return;
  if (P.K == 0) {
    if (!P.add)
      for (int64_t i = 0; i < P.M; i++) std::memset(P.C + i * P.ldc, 0, static_cast<size_t>(P.N) * sizeof(float));
    return;
  }
  const Plan pl = plan(kk, P, nt);
  const int64_t kChunks = (P.K + pl.KR - 1) / pl.KR, chunks = (P.N + pl.NC - 1) / pl.NC * kChunks;
  Team team;
  team.bbuf = threadScratch<uint32_t>(1, static_cast<size_t>(pl.KR / 2 * pl.NC));
  team.state.reset(new std::atomic<int>[static_cast<size_t>(chunks * (pl.KR / pl.KC) * (pl.NC / kNR))]());
  if (nt <= 1) {
    gemmBlocked(kk, P, pl, 1, team);
    return;
  }
  team.next.reset(new std::atomic<int64_t>[static_cast<size_t>(chunks)]());
  RegionClock clock;
#pragma omp parallel num_threads(nt)
  {
    clock.arrive();
    gemmBlocked(kk, P, pl, omp_get_num_threads(), team);
  }
  clock.finish();
}
#endif

}  // namespace

// The whole batched contract (strides in elements; a batch stride of 0 broadcasts that operand), in bf16 when this
// CPU has a bf16 kernel, else through the fp32 GEMM.
void bf16gemmBatched(const float* a, const float* b, float* c, int64_t batch, int64_t M, int64_t N, int64_t K,
                     bool transA, bool transB, int64_t aBatchStride, int64_t bBatchStride, bool accumulate) {
  const Bf16Kernel* kk = registry().active;
#ifndef LMF_BF16_X86
  kk = nullptr;
#endif
  if (!kk) {
    sgemmBatched(a, b, c, batch, M, N, K, transA, transB, aBatchStride, bBatchStride, accumulate);
    return;
  }
#ifdef LMF_BF16_X86
  if (batch <= 0 || M == 0 || N == 0) return;
  const Mat A0 = transA ? Mat{a, 1, M} : Mat{a, K, 1};
  const Mat B0 = transB ? Mat{b, 1, K} : Mat{b, N, 1};
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  auto problem = [&](int64_t i) {
    return Problem{{A0.p + i * aBatchStride, A0.rs, A0.cs}, {B0.p + i * bBatchStride, B0.rs, B0.cs},
                   c + i * M * N, N, M, N, K, accumulate};
  };
  const int nt = gemmTeamFor(work * static_cast<double>(batch));
  // Many small matrices: one per thread at a time (each thread with its own scratch).
  if (nt > 1 && batch >= nt && work < kTeamWork) {
    RegionClock clock;
#pragma omp parallel num_threads(nt)
    {
      clock.arrive();
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < batch; i++) gemmOne(*kk, problem(i), 1);
    }
    clock.finish();
    return;
  }
  const int team = gemmTeamFor(work);
  for (int64_t i = 0; i < batch; i++) gemmOne(*kk, problem(i), team);
#endif
}

// The bf16 kernel in use ("amx", "avx512bf16", or "fp32" for the fallback).
const char* bf16GemmKernel() { return registry().name(); }

namespace {

// matmulBf16(a, aOffset, b, bOffset, c, cOffset, batch, M, N, K, transA, transB, aBatchStride, bBatchStride,
// accumulate): the arguments of gemm.cc's matmul.
napi_value matmulBf16(napi_env env, napi_callback_info info) {
  Args args(env, info, "matmulBf16", 15);
  MatmulCall m;
  if (!readMatmulCall(args, &m)) return nullptr;
  if (!m.empty()) bf16gemmBatched(m.a, m.b, m.c, m.batch, m.M, m.N, m.K, m.transA, m.transB, m.aStride, m.bStride, m.accumulate);
  return args.undefined();
}

// gemmBf16Kernel() → the bf16 kernel in use; gemmBf16Kernel(name) switches to one this CPU runs ("fp32": the
// fallback) or throws.
napi_value gemmBf16KernelJs(napi_env env, napi_callback_info info) {
  Args args(env, info, "gemmBf16Kernel", 0);
  if (args.argc > 0) {
    char name[32];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, args.argv[0], name, sizeof name, &len) != napi_ok) {
      args.fail("expected a string", 0);
      return nullptr;
    }
    if (!registry().select(name)) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "unknown or unsupported bf16 GEMM kernel '%s' (this CPU runs: %s)", name,
                    registry().list().c_str());
      args.fail(msg, 0);
      return nullptr;
    }
  }
  napi_value r;
  napi_create_string_utf8(env, registry().name(), NAPI_AUTO_LENGTH, &r);
  return r;
}

// gemmBf16Kernels() → every kernel this CPU runs, fastest first, then "fp32".
napi_value gemmBf16KernelsJs(napi_env env, napi_callback_info info) {
  Args args(env, info, "gemmBf16Kernels", 0);
  napi_value arr, s;
  napi_create_array(env, &arr);
  uint32_t n = 0;
  for (const Bf16Kernel* k : registry().supported)
    if (k) {
      napi_create_string_utf8(env, k->name, NAPI_AUTO_LENGTH, &s);
      napi_set_element(env, arr, n++, s);
    }
  napi_create_string_utf8(env, "fp32", NAPI_AUTO_LENGTH, &s);
  napi_set_element(env, arr, n, s);
  return arr;
}

}  // namespace

void registerGemmBf16(napi_env env, napi_value exports) {
  defineFunction(env, exports, "matmulBf16", matmulBf16);
  defineFunction(env, exports, "gemmBf16Kernel", gemmBf16KernelJs);
  defineFunction(env, exports, "gemmBf16Kernels", gemmBf16KernelsJs);
}

}  // namespace lmf

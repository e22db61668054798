// Kernel family 'gemm': batched single-precision C (+)= op(A)·op(B), the MatmulArgs contract of src/core/kernels.ts,
// and its N-API entry points. GotoBLAS/BLIS-style: B packed into NR-column panels shared by the threads, A into
// MR-row panels of a per-thread MC×KC block, a register-blocked micro-kernel per instruction set chosen at run
// time (gemm_isa.inc); small or thin products skip packing, and a few rows times row-major B streams B once. OpenMP threads claim row blocks dynamically.
// Not here: other dtypes, strided C, or any system BLAS.
#include <omp.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>
#include "gemm_call.h"
#include "thread_scratch.h"
#include "napi_util.h"
#include "simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMF_X86 1
#endif

#define LMF_INLINE inline __attribute__((always_inline))

namespace lmf {
namespace {

#include "gemm_isa.inc"

// A strided matrix view: element (i, j) is p[i·rs + j·cs].
struct Mat {
  const float* p;
  int64_t rs, cs;
};

// The full-panel case of packing a transposed A: kc runs of MR contiguous floats. With MR a constant each copy
// is a few vector moves; a library memcpy of a run-time size per k (48 bytes) cost ~7% of a ViT training step.
template <int MR>
void copyRunsT(const float* src, int64_t cs, int64_t kc, float* dst) {
  for (int64_t k = 0; k < kc; k++) std::memcpy(dst + k * MR, src + k * cs, sizeof(float) * MR);
}

void copyRunsT(int MR, const float* src, int64_t cs, int64_t kc, float* dst) {
  switch (MR) {
    case 6: copyRunsT<6>(src, cs, kc, dst); break;
    case 8: copyRunsT<8>(src, cs, kc, dst); break;
    case 12: copyRunsT<12>(src, cs, kc, dst); break;
    case 16: copyRunsT<16>(src, cs, kc, dst); break;
    default:
      for (int64_t k = 0; k < kc; k++) std::memcpy(dst + k * MR, src + k * cs, sizeof(float) * MR);
  }
}

// Pack rows [i0, i0+mc) × cols [p0, p0+kc) of A into MR-row panels: for each k, MR values (rows beyond mc
// are zero), so the micro-kernel reads A as one contiguous stream.
void packA(const KernelSet& ks, const Mat& A, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* dst) {
  const int MR = ks.MR;
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ip));
    const float* src = A.p + (i0 + ip) * A.rs + p0 * A.cs;
    if (A.rs == 1 && mr == MR) {  // transposed A: the MR values of one k are contiguous
      copyRunsT(MR, src, A.cs, kc, dst);
    } else if (A.rs == 1) {
      for (int64_t k = 0; k < kc; k++) {
        const float* s = src + k * A.cs;
        float* d = dst + k * MR;
        int i = 0;
        for (; i < mr; i++) d[i] = s[i];
        for (; i < MR; i++) d[i] = 0.f;
      }
    } else if (ks.transpose16 && A.cs == 1 && MR <= 16) {  // row-major A, in 16×MR register tiles
      for (int64_t k0 = 0; k0 < kc; k0 += 16)
        ks.transpose16(src + k0, A.rs, static_cast<int>(std::min<int64_t>(16, kc - k0)), mr, dst + k0 * MR, MR, MR);
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
void packB(const KernelSet& ks, const Mat& B, int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t first,
           int64_t last, float* dst) {
  const int NR = ks.NR;
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
    } else if (ks.transpose16 && B.rs == 1 && NR % 16 == 0) {  // transposed B, in 16×16 register tiles
      for (int64_t k0 = 0; k0 < kc; k0 += 16)
        for (int jb = 0; jb < NR; jb += 16)
          ks.transpose16(src + jb * B.cs + k0, B.cs, static_cast<int>(std::min<int64_t>(16, kc - k0)),
                         std::max(0, std::min(16, nr - jb)), d0 + k0 * NR + jb, NR, 16);
    } else {  // transposed B: a transpose, done in 16-row steps so that reads and writes both stay in L1
      for (int64_t k0 = 0; k0 < kc; k0 += 16) {
        const int64_t k1 = std::min<int64_t>(kc, k0 + 16);
        for (int jj = 0; jj < nr; jj++) {
          const float* s = src + jj * B.cs;
          for (int64_t k = k0; k < k1; k++) d0[k * NR + jj] = s[k * B.rs];
        }
        for (int jj = nr; jj < NR; jj++)
          for (int64_t k = k0; k < k1; k++) d0[k * NR + jj] = 0.f;
      }
    }
  }
}

struct Problem {
  Mat A, B;
  float* C;
  int64_t ldc, M, N, K;
  bool add;
};

// Shared by the team working on one matrix. B is split into chunks of NC columns × KR rows (all of B when it
// fits kPackBudget), each packed into bbuf (K block pc − k0 of panel j at bbuf + (pc − k0)·NC + j·kc·NR) panel
// by panel on demand: whichever thread first needs a panel packs it, flagging it in `state` (0 empty, 1 being
// packed, 2 ready). With row-block tasks claimed from `next`, no thread waits for another except between chunks
// (only when K·N exceeds kPackBudget) and at the end.
struct Team {
  float* bbuf = nullptr;
  int64_t NC = 0;  // columns per chunk, a multiple of NR
  int64_t KR = 0;  // rows of B per chunk, a multiple of KC (or all of K)
  std::unique_ptr<std::atomic<int>[]> state;
  std::unique_ptr<std::atomic<int64_t>[]> next;  // one task counter per chunk
};

// Packed B for one chunk is at most this many floats (16 MiB, so it lives in L3).
constexpr int64_t kPackBudget = int64_t(1) << 22;

LMF_INLINE void spinPause() {
#ifdef LMF_X86
  _mm_pause();
#endif
}

// One matrix, run by each of `nt` threads together (nt > 1 only inside a parallel region of exactly nt
// threads). doPackA = false reads A in place; doPackB = false reads B in place (needs B.cs == 1). Each C tile sums its K blocks in order, so results do not depend on the thread count.
void gemmBlocked(const KernelSet& ks, const Problem& P, bool doPackA, bool doPackB, int nt, Team& team) {
  const int MR = ks.MR, NR = ks.NR;
  const int64_t M = P.M, N = P.N, K = P.K;
  const int64_t KC = std::min<int64_t>(ks.KC, K), NC = team.NC, KR = team.KR, chunkPanels = NC / NR;
  const int64_t chunkBlocks = (KR + KC - 1) / KC;
  // Row blocks of at most MC rows, their count a multiple of nt when M allows, so the shares come out even, and
  // at least 4 per thread (of at least 4·MR rows) so that a thread that loses its core to another process
  // leaves little behind that the others cannot take over.
  int64_t mBlocks = (M + ks.MC - 1) / ks.MC;
  if (nt > 1) mBlocks = std::max(mBlocks, std::min<int64_t>(4 * nt, M / (4 * MR)));
  mBlocks = (mBlocks + nt - 1) / nt * nt;
  const int64_t MC = ((M + mBlocks - 1) / mBlocks + MR - 1) / MR * MR;
  mBlocks = (M + MC - 1) / MC;
  // Too few row blocks for the team (small M): split the columns too.
  const int64_t colSplit = mBlocks < nt ? nt : 1;
  const int64_t tasks = mBlocks * colSplit;
  float* abuf = doPackA ? threadScratch<float>(0, static_cast<size_t>(MC * KC)) : nullptr;
  static thread_local std::vector<int64_t> skipped;

  const int64_t kChunks = (K + KR - 1) / KR, chunks = (N + NC - 1) / NC * kChunks;
  for (int64_t chunk = 0; chunk < chunks; chunk++) {
    const int64_t jc = chunk / kChunks * NC, k0 = chunk % kChunks * KR;
    const int64_t nc = std::min(NC, N - jc), panels = (nc + NR - 1) / NR, k1 = std::min(K, k0 + KR);
    if (chunk > 0 && nt > 1) {
#pragma omp barrier  // every thread is done with the previous chunk: its C tiles and its packed B
    }
    for (int64_t own = 0;;) {
      const int64_t t = nt > 1 ? team.next[chunk].fetch_add(1, std::memory_order_relaxed) : own++;
      if (t >= tasks) break;
      const int64_t ib = t / colSplit, part = t % colSplit;
      const int64_t ic = ib * MC, mc = std::min(MC, M - ic);
      const int64_t j0 = panels * part / colSplit, j1 = panels * (part + 1) / colSplit;
      for (int64_t pb = 0; k0 + pb * KC < k1; pb++) {
        const int64_t pc = k0 + pb * KC, kc = std::min(KC, k1 - pc);
        const bool add = P.add || pc > 0;
        if (doPackA) packA(ks, P.A, ic, mc, pc, kc, abuf);
        float* bblock = doPackB ? team.bbuf + (pc - k0) * NC : nullptr;
        std::atomic<int>* state = doPackB ? team.state.get() + (chunk * chunkBlocks + pb) * chunkPanels : nullptr;
        // The rows ic..ic+mc times column panel jp, packing the panel first if nobody has; returns false
        // (computing nothing) when another thread is packing it and `wait` is not set.
        auto panel = [&](int64_t jp, bool wait) -> bool {
          const float* b;
          int64_t ldb;
          if (doPackB) {
            std::atomic<int>& s = state[jp];
            if (s.load(std::memory_order_acquire) != 2) {
              int expected = 0;
              if (s.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
                packB(ks, P.B, pc, kc, jc, nc, jp, jp + 1, bblock);
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
            b = bblock + jp * kc * NR;
            ldb = NR;
          } else {
            b = P.B.p + pc * P.B.rs + jc + jp * NR;
            ldb = P.B.rs;
          }
          const int n = static_cast<int>(std::min<int64_t>(NR, nc - jp * NR));
          float* c = P.C + ic * P.ldc + jc + jp * NR;
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
          return true;
        };
        skipped.clear();
        for (int64_t jp = j0; jp < j1; jp++)
          if (!panel(jp, false)) skipped.push_back(jp);
        for (int64_t jp : skipped) panel(jp, true);
      }
    }
  }
}

// Below this many multiply-adds a matrix runs on one thread; at or below kNoPackWork it skips packing.
constexpr double kParallelWork = 1 << 18;
constexpr double kNoPackWork = 1 << 16;

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// How late worker threads join a parallel region, learnt from recent regions. On a machine shared with other
// busy processes a worker can wait milliseconds for a core, and the region's closing barrier waits for it, so
// work that one thread finishes well within that time runs on one thread. The least lateness of the last few
// regions decides: one descheduled worker (a VM here shows a 0.4-4 ms stall every ~100 ms against a usual 0.4 us)
// must not send the next 50 ms of work to one thread; lateness in every recent region does. Measurements older than
// kWakeStaleNs are ignored, so with none left the next parallel region measures again.
struct WakeMonitor {
  static constexpr int64_t kWakeStaleNs = 50'000'000;
  static constexpr double kSoloMacsPerNs = 100.0;  // one AVX-512 core, roughly
  static constexpr int kSamples = 4;
  std::atomic<int64_t> lateNs[kSamples] = {}, stampNs[kSamples] = {};
  std::atomic<unsigned> nextSample{0};

  std::atomic<bool> enabled{true};

  int threadsFor(double macs, int nt) const {
    if (nt <= 1 || macs < kParallelWork) return 1;
    if (!enabled.load(std::memory_order_relaxed)) return nt;
    const int64_t now = nowNs();
    int64_t least = -1;
    for (int i = 0; i < kSamples; i++) {
      const int64_t stamp = stampNs[i].load(std::memory_order_relaxed);
      const int64_t late = lateNs[i].load(std::memory_order_relaxed);
      if (stamp > 0 && now - stamp <= kWakeStaleNs && (least < 0 || late < least)) least = late;
    }
    if (least < 0) return nt;
    return macs / kSoloMacsPerNs < 4.0 * static_cast<double>(least) ? 1 : nt;
  }
  void record(int64_t late) {
    threadPolicy().record(late);
    const unsigned i = nextSample.fetch_add(1, std::memory_order_relaxed) % kSamples;
    lateNs[i].store(late, std::memory_order_relaxed);
    stampNs[i].store(nowNs(), std::memory_order_relaxed);
  }
};
WakeMonitor gWake;

// Called by each thread on entering a parallel region that started at `start`: keeps the latest arrival.
void noteArrival(std::atomic<int64_t>& latest, int64_t start) {
  const int64_t late = nowNs() - start;
  int64_t seen = latest.load(std::memory_order_relaxed);
  while (late > seen && !latest.compare_exchange_weak(seen, late, std::memory_order_relaxed)) {
  }
}

// Few rows times Bᵀ with A rows contiguous: dot-product tiles over columns [j0, j1), no packing.
#ifndef LMF_DOT_MAX_ROWS  // overridable only for tuning experiments (dev/gemm)
#define LMF_DOT_MAX_ROWS 64
#endif
constexpr int64_t kDotMaxRows = LMF_DOT_MAX_ROWS;
void gemmDot(const KernelSet& ks, const Problem& P, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += kDotCols) {
    const int n = static_cast<int>(std::min<int64_t>(kDotCols, j1 - j));
    for (int64_t i = 0; i < P.M; i += kDotRows) {
      const int m = static_cast<int>(std::min<int64_t>(kDotRows, P.M - i));
      ks.dot(P.K, P.A.p + i * P.A.rs, P.A.rs, m, P.B.p + j * P.B.cs, P.B.cs, n, P.C + i * P.ldc + j, P.ldc, P.add);
    }
  }
}

// Runs f(j0, j1) over column ranges of [0, N) cut in whole units, one range per thread of an nt-thread team
// (inline when nt ≤ 1), recording how late the workers joined (gWake).
template <class F>
void splitColumns(int64_t N, int64_t unit, int nt, F&& f) {
  if (nt <= 1) {
    f(0, N);
    return;
  }
  const int64_t units = (N + unit - 1) / unit;
  const int64_t start = nowNs();
  std::atomic<int64_t> latest{0};
#pragma omp parallel num_threads(nt)
  {
    noteArrival(latest, start);
    const int64_t tid = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t j0 = std::min(N, units * tid / team * unit), j1 = std::min(N, units * (tid + 1) / team * unit);
    if (j1 > j0) f(j0, j1);
  }
  gWake.record(latest.load());
}

// C (+)= A·B for one matrix on up to nt threads (nt == 1 when called from inside a parallel loop).
void gemmOne(const KernelSet& ks, const Problem& P, int nt) {
  if (P.M == 0 || P.N == 0) return;
  if (P.K == 0) {
    if (!P.add)
      for (int64_t i = 0; i < P.M; i++) std::memset(P.C + i * P.ldc, 0, static_cast<size_t>(P.N) * sizeof(float));
    return;
  }
  const double work = static_cast<double>(P.M) * static_cast<double>(P.N) * static_cast<double>(P.K);
  if (P.M <= kRowStreamRows && P.A.cs == 1 && P.B.cs == 1) {  // a row or few times row-major B: stream B once
    // Threads take whole 64-byte lines of each row.
    splitColumns(P.N, 16, gWake.threadsFor(work, nt), [&](int64_t j0, int64_t j1) {
      ks.rowStream(P.K, P.A.p, P.A.rs, static_cast<int>(P.M), P.B.p + j0, P.B.rs, j1 - j0, P.C + j0, P.ldc, P.add);
    });
    return;
  }
  if (P.M <= kDotMaxRows && P.A.cs == 1 && P.B.rs == 1) {
    splitColumns(P.N, kDotCols, gWake.threadsFor(work, nt), [&](int64_t j0, int64_t j1) { gemmDot(ks, P, j0, j1); });
    return;
  }
  // Packing A costs O(M·K) against O(M·N·K) of work: skip it for few columns; packing B likewise for few rows.
  const bool packA = work > kNoPackWork && P.N > 2 * ks.NR;
  const bool packB = P.B.cs != 1 || (work > kNoPackWork && P.M > 2 * ks.MR);
  nt = gWake.threadsFor(work, nt);
  const int64_t NR = ks.NR, Npad = (P.N + NR - 1) / NR * NR;
  const int64_t KC = std::min<int64_t>(ks.KC, P.K);
  Team team;
  // Chunks: all of B when it fits the budget; else all of K over fewer columns, but no fewer than ks.NC
  // (packed A is reused across a chunk's columns), taking fewer K blocks per chunk instead.
  team.NC = Npad;
  team.KR = P.K;
  if (packB && P.K * Npad > kPackBudget) {
    team.NC = std::min(Npad, std::max(ks.NC, std::max<int64_t>(NR, kPackBudget / P.K / NR * NR)));
    team.KR = std::min(P.K, std::max<int64_t>(1, kPackBudget / team.NC / KC) * KC);
  }
  const int64_t chunks = (P.N + team.NC - 1) / team.NC * ((P.K + team.KR - 1) / team.KR);
  team.next.reset(new std::atomic<int64_t>[static_cast<size_t>(chunks)]());
  if (packB) {
    team.bbuf = threadScratch<float>(1, static_cast<size_t>(team.KR * team.NC));
    team.state.reset(new std::atomic<int>[static_cast<size_t>(chunks * ((team.KR + KC - 1) / KC) * (team.NC / NR))]());
  }
  if (nt <= 1) {
    gemmBlocked(ks, P, packA, packB, 1, team);
    return;
  }
  const int64_t start = nowNs();
  std::atomic<int64_t> latest{0};
#pragma omp parallel num_threads(nt)
  {
    noteArrival(latest, start);
    gemmBlocked(ks, P, packA, packB, omp_get_num_threads(), team);
  }
  gWake.record(latest.load());
}

}  // namespace

// The whole batched contract. Strides are in elements; a batch stride of 0 broadcasts that operand.
void sgemmBatched(const float* a, const float* b, float* c, int64_t batch, int64_t M, int64_t N, int64_t K,
                  bool transA, bool transB, int64_t aBatchStride, int64_t bBatchStride, bool accumulate) {
  const KernelSet& ks = *gKernels;
  if (batch <= 0 || M == 0 || N == 0) return;
  const Mat A0 = transA ? Mat{a, 1, M} : Mat{a, K, 1};
  const Mat B0 = transB ? Mat{b, 1, K} : Mat{b, N, 1};
  const int nt = threadPolicy().cap();
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  auto problem = [&](int64_t i) {
    return Problem{{A0.p + i * aBatchStride, A0.rs, A0.cs}, {B0.p + i * bBatchStride, B0.rs, B0.cs},
                   c + i * M * N, N, M, N, K, accumulate};
  };
  // Many matrices: one per thread at a time (each thread with its own scratch), unless the batch would
  // split unevenly over large matrices, where threading inside each matrix balances better.
  if (nt > 1 && batch >= nt && (batch % nt == 0 || batch >= 4 * nt || work < kParallelWork)) {
    const int teamSize = gWake.threadsFor(work * static_cast<double>(batch), nt);
    if (teamSize > 1) {
      const int64_t start = nowNs();
      std::atomic<int64_t> latest{0};
#pragma omp parallel num_threads(teamSize)
      {
        noteArrival(latest, start);
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < batch; i++) gemmOne(ks, problem(i), 1);
      }
      gWake.record(latest.load());
      return;
    }
    for (int64_t i = 0; i < batch; i++) gemmOne(ks, problem(i), 1);
    return;
  }
  for (int64_t i = 0; i < batch; i++) gemmOne(ks, problem(i), nt);
}

// One strided product C (+)= A·B on up to nt threads (A (M, K) at a[i·ars + k·acs], B (K, N) at b[k·brs + j·bcs], C
// row-major with row stride ldc): the grouped matmul of moe.cc runs each expert's group through it, so the groups
// share this file's packing and micro-kernels. teamFor says how many threads a product of `macs` should get now.
void sgemmStrided(const float* a, int64_t ars, int64_t acs, const float* b, int64_t brs, int64_t bcs, float* c,
                  int64_t ldc, int64_t M, int64_t N, int64_t K, bool accumulate, int nt) {
  gemmOne(*gKernels, Problem{{a, ars, acs}, {b, brs, bcs}, c, ldc, M, N, K, accumulate}, nt);
}
int gemmTeamFor(double macs) { return gWake.threadsFor(macs, threadPolicy().cap()); }

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

}  // namespace

bool readMatmulCall(Args& args, MatmulCall* call) {
  size_t aLen = 0, bLen = 0, cLen = 0;
  const float* a = args.f32(0, &aLen);
  const int64_t aOffset = index(args, 1, "aOffset");
  const float* b = args.f32(2, &bLen);
  const int64_t bOffset = index(args, 3, "bOffset");
  float* c = args.f32(4, &cLen);
  const int64_t cOffset = index(args, 5, "cOffset");
  MatmulCall m;
  m.batch = index(args, 6, "batch");
  m.M = index(args, 7, "M");
  m.N = index(args, 8, "N");
  m.K = index(args, 9, "K");
  m.transA = args.boolean(10);
  m.transB = args.boolean(11);
  m.aStride = index(args, 12, "aBatchStride");
  m.bStride = index(args, 13, "bBatchStride");
  m.accumulate = args.boolean(14);
  if (args.failed) return false;
  const double mk = static_cast<double>(m.M) * static_cast<double>(m.K);
  const double kn = static_cast<double>(m.K) * static_cast<double>(m.N);
  const double mn = static_cast<double>(m.M) * static_cast<double>(m.N);
  if (!fits(args, 0, "a", aLen, aOffset, m.batch, m.aStride, mk)) return false;
  if (!fits(args, 2, "b", bLen, bOffset, m.batch, m.bStride, kn)) return false;
  if (!fits(args, 4, "c", cLen, cOffset, m.batch, static_cast<int64_t>(mn), mn)) return false;
  if (m.batch > 0 && mn > 0) {
    m.a = a + aOffset;
    m.b = b + bOffset;
    m.c = c + cOffset;
  }
  *call = m;
  return true;
}

namespace {

// matmul(a, aOffset, b, bOffset, c, cOffset, batch, M, N, K, transA, transB, aBatchStride, bBatchStride, accumulate)
napi_value matmul(napi_env env, napi_callback_info info) {
  Args args(env, info, "matmul", 15);
  MatmulCall m;
  if (!readMatmulCall(args, &m)) return nullptr;
  if (!m.empty()) sgemmBatched(m.a, m.b, m.c, m.batch, m.M, m.N, m.K, m.transA, m.transB, m.aStride, m.bStride, m.accumulate);
  return args.undefined();
}

// gemmAdaptiveThreads(on) turns the late-worker fallback to one thread on or off (tests turn it off so
// that they exercise the threaded paths whatever the machine's load); returns the previous setting.
napi_value gemmAdaptiveThreads(napi_env env, napi_callback_info info) {
  Args args(env, info, "gemmAdaptiveThreads", 1);
  const bool on = args.boolean(0);
  if (args.failed) return nullptr;
  napi_value r;
  threadPolicy().adaptive.store(on);
  napi_get_boolean(env, gWake.enabled.exchange(on), &r);
  return r;
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
  defineFunction(env, exports, "gemmAdaptiveThreads", gemmAdaptiveThreads);
}

}  // namespace lmf

// Kernel family 'moe': the grouped matrix products of a mixture-of-experts layer over tokens sorted by expert.
// Rows [off[g], off[g+1]) of x form group g (the tokens routed to expert g); each group is one GEMM against its own
// weight matrix, run through gemm.cc's packing and micro-kernels (sgemmStrided). Many groups run side by side, one
// thread each; few or large groups run one after another with the threads inside each product.
// Not here: routing, slot assignment, gathering or scattering tokens (src/nn/moe.ts with the indexing kernels).
#include <omp.h>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>
#include "checks.h"
#include "napi_util.h"
#include "threads.h"

namespace lmf {

void sgemmStrided(const float* a, int64_t ars, int64_t acs, const float* b, int64_t brs, int64_t bcs, float* c,
                  int64_t ldc, int64_t M, int64_t N, int64_t K, bool accumulate, int nt);
int gemmTeamFor(double macs);

namespace {

// Checks offsets: G + 1 entries, off[0] = 0, non-decreasing; returns S = off[G] (or -1 after failing).
int64_t checkOffsets(Args& a, const int32_t* off, size_t len, int64_t G) {
  if (!needLength(a, "offsets", len, G + 1, "G + 1")) return -1;
  if (off[0] != 0) {
    a.fail("offsets: the first entry must be 0");
    return -1;
  }
  for (int64_t g = 0; g < G; g++) {
    if (off[g + 1] < off[g]) {
      char msg[160];
      snprintf(msg, sizeof msg, "offsets: entry %lld (%d) is less than entry %lld (%d); groups must be in order",
               static_cast<long long>(g + 1), off[g + 1], static_cast<long long>(g), off[g]);
      a.fail(msg);
      return -1;
    }
  }
  return off[G];
}

// Runs f(g, nt) for every group g: in parallel over groups (nt = 1 each) when there are enough of them for the team,
// else one after another with the team inside each product. Larger groups are started first (dynamic schedule).
// The group-parallel region reports how late its worker joined (RegionClock, threads.h) like the GEMM's own regions,
// so that on a contended machine the thread policy sends these products to one thread too instead of leaving them
// to wait at the region's barrier for a descheduled worker (measured beside busy processes: median 34 ms against a
// 0.6 ms best for one recipe-shaped product).
template <class F>
void forGroups(const int32_t* off, int64_t G, double macsPerRow, F&& f) {
  double total = 0;
  int64_t busy = 0;
  for (int64_t g = 0; g < G; g++) {
    total += macsPerRow * (off[g + 1] - off[g]);
    busy += off[g + 1] > off[g];
  }
  const int team = gemmTeamFor(total);
  if (team <= 1 || busy < 2 * team) {
    for (int64_t g = 0; g < G; g++) f(g, team);
    return;
  }
  std::vector<int64_t> order(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; g++) order[static_cast<size_t>(g)] = g;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return off[x + 1] - off[x] > off[y + 1] - off[y]; });
  RegionClock clock;
#pragma omp parallel num_threads(team)
  {
    clock.arrive();
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < G; i++) f(order[static_cast<size_t>(i)], 1);
  }
  clock.finish();
}

// groupedMatmul(x, w, out, offsets, G, K, N, transW, accumulate): out[rows of g] (+)= x[rows of g]·W_g with x (S, K),
// W (G, K, N) — or (G, N, K) read transposed when transW — and out (S, N), S = offsets[G].
napi_value groupedMatmul(napi_env env, napi_callback_info info) {
  Args a(env, info, "groupedMatmul", 9);
  size_t lx, lw, lo, loff;
  const float* x = f32Arg(a, 0, "x", &lx);
  const float* w = f32Arg(a, 1, "w", &lw);
  float* out = f32Arg(a, 2, "out", &lo);
  const int32_t* off = i32Arg(a, 3, "offsets", &loff);
  const int64_t G = count(a, 4, "G"), K = count(a, 5, "K"), N = count(a, 6, "N");
  const bool transW = a.boolean(7);
  const bool accumulate = a.boolean(8);
  if (a.failed) return nullptr;
  const int64_t S = checkOffsets(a, off, loff, G);
  if (S < 0) return nullptr;
  needLength(a, "x", lx, satMul(S, K), "offsets[G]·K");
  needLength(a, "w", lw, satMul(G, K, N), "G·K·N");
  if (!needLength(a, "out", lo, satMul(S, N), "offsets[G]·N")) return nullptr;
  forGroups(off, G, static_cast<double>(K) * static_cast<double>(N), [&](int64_t g, int nt) {
    const int64_t r0 = off[g], rows = off[g + 1] - off[g];
    if (rows == 0) return;
    const float* wg = w + g * K * N;
    // W_g (K, N) row-major: element (k, j) at k·N + j; stored (N, K): at j·K + k.
    sgemmStrided(x + r0 * K, K, 1, wg, transW ? 1 : N, transW ? K : 1, out + r0 * N, N, rows, N, K, accumulate, nt);
  });
  return a.undefined();
}

// groupedMatmulGradW(x, gy, gw, offsets, G, K, N, accumulate): gW_g (+)= x[rows of g]ᵀ·gy[rows of g] with x (S, K),
// gy (S, N), gw (G, K, N). An empty group gets 0 (or is left as is when accumulating).
napi_value groupedMatmulGradW(napi_env env, napi_callback_info info) {
  Args a(env, info, "groupedMatmulGradW", 8);
  size_t lx, lg, lw, loff;
  const float* x = f32Arg(a, 0, "x", &lx);
  const float* gy = f32Arg(a, 1, "gy", &lg);
  float* gw = f32Arg(a, 2, "gw", &lw);
  const int32_t* off = i32Arg(a, 3, "offsets", &loff);
  const int64_t G = count(a, 4, "G"), K = count(a, 5, "K"), N = count(a, 6, "N");
  const bool accumulate = a.boolean(7);
  if (a.failed) return nullptr;
  const int64_t S = checkOffsets(a, off, loff, G);
  if (S < 0) return nullptr;
  needLength(a, "x", lx, satMul(S, K), "offsets[G]·K");
  needLength(a, "gy", lg, satMul(S, N), "offsets[G]·N");
  if (!needLength(a, "gw", lw, satMul(G, K, N), "G·K·N")) return nullptr;
  forGroups(off, G, static_cast<double>(K) * static_cast<double>(N), [&](int64_t g, int nt) {
    const int64_t r0 = off[g], rows = off[g + 1] - off[g];
    // x_gᵀ (K, rows): element (k, r) at (r0 + r)·K + k, i.e. row stride 1, column stride K.
    sgemmStrided(x + r0 * K, 1, K, gy + r0 * N, N, 1, gw + g * K * N, N, K, N, rows, accumulate, nt);
  });
  return a.undefined();
}

}  // namespace

void registerMoe(napi_env env, napi_value exports) {
  defineFunction(env, exports, "groupedMatmul", groupedMatmul);
  defineFunction(env, exports, "groupedMatmulGradW", groupedMatmulGradW);
}

}  // namespace lmf

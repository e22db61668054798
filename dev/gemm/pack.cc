// Dev: cost of packA/packB per element for each layout (CPU time, best of many), to see what packing costs
// against the micro-kernel.
#include "../../native/src/gemm.cc"
#include <cstdio>
#include <ctime>
#include <vector>

static double cpuNow() { timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

int main(int argc, char** argv) {
  using namespace lmf;
  const int MR = 12, NR = 32;
  const int64_t M = 192, K = 384, N = 1536, ld = argc > 1 ? atoi(argv[1]) : 4096;
  std::vector<float> src(ld * ld, 1.f), dst(K * N + 64);
  for (int trans = 0; trans < 2; trans++) {
    Mat A = trans ? Mat{src.data(), 1, ld} : Mat{src.data(), ld, 1};
    double best = 1e9;
    for (int r = 0; r < 200; r++) {
      double t0 = cpuNow();
      packA(*gKernels, A, 0, M, 0, K, dst.data());
      best = std::min(best, cpuNow() - t0);
    }
    printf("packA %s: %.3f ns/element\n", trans ? "transposed" : "row-major", best / (M * K) * 1e9);
    Mat B = trans ? Mat{src.data(), 1, ld} : Mat{src.data(), ld, 1};
    best = 1e9;
    for (int r = 0; r < 100; r++) {
      double t0 = cpuNow();
      packB(*gKernels, B, 0, K, 0, N, 0, N / NR, dst.data());
      best = std::min(best, cpuNow() - t0);
    }
    printf("packB %s: %.3f ns/element\n", trans ? "transposed" : "row-major", best / (N * K) * 1e9);
  }
  // For scale: the micro-kernel spends 2·MR·NR·kc flops per (MR + NR)·kc packed elements at ~270 GFLOPS.
  printf("12x32 micro-kernel at 270 GFLOPS: %.3f ns per 12x32x1 step\n", 2.0 * MR * NR / 270.0);
}

// Dev harness (not part of the addon): times lmf::sgemmBatched directly, for tuning micro-kernel shapes and
// blocking without node. Build: see dev/gemm/README.md.
#include "../../native/src/gemm.cc"
#include <chrono>
#include <ctime>
#include <cstdio>
#include <vector>
#include <algorithm>

int main(int argc, char** argv) {
  int64_t M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
  int ta = argc > 4 ? atoi(argv[4]) : 0, tb = argc > 5 ? atoi(argv[5]) : 0;
  int reps = argc > 6 ? atoi(argv[6]) : 9;
  if (argc > 7) lmf::setGemmIsa(argv[7]);
  const int64_t batch = argc > 8 ? atoi(argv[8]) : 1;
  std::vector<float> a(batch * M * K), b(batch * K * N), c(batch * M * N);
  for (auto& x : a) x = (rand() % 100) / 50.f - 1;
  for (auto& x : b) x = (rand() % 100) / 50.f - 1;
  // Process CPU time besides wall time: on a shared machine, with one thread, CPU time leaves out the time
  // the thread waited for a core, so tuning comparisons stay meaningful under load.
  std::vector<double> ts, cpu;
  auto cpuNow = [] { timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; };
  for (int r = 0; r < reps + 2; r++) {
    const double c0 = cpuNow();
    auto t0 = std::chrono::steady_clock::now();
    lmf::sgemmBatched(a.data(), b.data(), c.data(), batch, M, N, K, ta, tb, M * K, K * N, false);
    auto t1 = std::chrono::steady_clock::now();
    const double c1 = cpuNow();
    if (r >= 2) ts.push_back(std::chrono::duration<double>(t1 - t0).count()), cpu.push_back(c1 - c0);
  }
  std::sort(ts.begin(), ts.end());
  std::sort(cpu.begin(), cpu.end());
  double med = ts[ts.size() / 2];
  const double flop = 2.0 * batch * M * N * K;
  printf("%s M=%ld N=%ld K=%ld ta=%d tb=%d threads=%d  %.1f GFLOPS (best %.1f, per CPU-second %.1f)\n", lmf::gemmIsa(),
         M, N, K, ta, tb, omp_get_max_threads(), flop / med / 1e9, flop / ts[0] / 1e9,
         flop / cpu[cpu.size() / 2] / 1e9 * omp_get_max_threads());
}

// Dev harness (not part of the addon): times lmf::sgemmBatched directly, for tuning micro-kernel shapes and
// blocking without node. Build: see dev/gemm/README.md.
#include "../../native/src/gemm.cc"
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>

int main(int argc, char** argv) {
  int64_t M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
  int ta = argc > 4 ? atoi(argv[4]) : 0, tb = argc > 5 ? atoi(argv[5]) : 0;
  int reps = argc > 6 ? atoi(argv[6]) : 9;
  if (argc > 7) lmf::setGemmIsa(argv[7]);
  std::vector<float> a(M * K), b(K * N), c(M * N);
  for (auto& x : a) x = (rand() % 100) / 50.f - 1;
  for (auto& x : b) x = (rand() % 100) / 50.f - 1;
  std::vector<double> ts;
  for (int r = 0; r < reps + 2; r++) {
    auto t0 = std::chrono::steady_clock::now();
    lmf::sgemmBatched(a.data(), b.data(), c.data(), 1, M, N, K, ta, tb, 0, 0, false);
    auto t1 = std::chrono::steady_clock::now();
    if (r >= 2) ts.push_back(std::chrono::duration<double>(t1 - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  double med = ts[ts.size() / 2];
  printf("%s M=%ld N=%ld K=%ld ta=%d tb=%d threads=%d  %.1f GFLOPS (best %.1f)\n", lmf::gemmIsa(), M, N, K, ta, tb,
         omp_get_max_threads(), 2.0 * M * N * K / med / 1e9, 2.0 * M * N * K / ts[0] / 1e9);
}

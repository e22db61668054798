// Dev: the AVX-512 micro-kernel alone on L1-resident panels (its ceiling), and a bare FMA loop (the core's peak).
#include "../../native/src/gemm.cc"
#include <chrono>
#include <cstdio>
#include <vector>

__attribute__((target("avx512f"))) double fmaPeak(long iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps(0.f);
  const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
  auto t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
  auto t1 = std::chrono::steady_clock::now();
  float s = 0;
  for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(acc[i]);
  if (s == 1234.5f) printf("!");
  return 12.0 * 32 * iters / std::chrono::duration<double>(t1 - t0).count() / 1e9;
}

int main() {
  const int MR = lmf::avx512::KMR, NR = lmf::avx512::KNV * 16;
  for (int kc : {128, 256, 384, 512}) {
    std::vector<float> a(MR * kc, 0.5f), b(NR * kc, 0.25f), c(MR * NR);
    // Best of 200 short chunks (~1 ms each): the machine is shared, the best chunk is the uncontended speed.
    const long calls = 4000000L / kc / 8;
    double best = 1e9;
    for (int rep = 0; rep < 200; rep++) {
      auto t0 = std::chrono::steady_clock::now();
      for (long i = 0; i < calls; i++)
        lmf::avx512::ukrPackedFull(kc, a.data(), 1, MR, b.data(), NR, c.data(), NR, MR, NR, true);
      auto t1 = std::chrono::steady_clock::now();
      best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    }
    printf("ukr %dx%d kc=%d: %.1f GFLOPS\n", MR, NR, kc, 2.0 * MR * NR * kc * calls / best / 1e9);
  }
  double peak = 0;
  for (int rep = 0; rep < 200; rep++) peak = std::max(peak, fmaPeak(200000));
  printf("bare FMA peak: %.1f GFLOPS\n", peak);
}

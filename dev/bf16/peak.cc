// Peak throughput of one core's fp32 FMA (vfmadd231ps zmm), AVX512-BF16 dot product (vdpbf16ps zmm) and, where the
// CPU has it, AMX-BF16 (tdpbf16ps), from 16 (AMX: 4) independent accumulators: what bounds the bf16 GEMM's kernels
// on a given CPU. A kernel experiment, not part of the addon.
// Build and run: g++ -O3 dev/bf16/peak.cc -o /tmp/bf16-peak && /tmp/bf16-peak
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstring>

volatile int kOnes = 0x3f803f80;  // two bf16 1.0s; volatile so the compiler cannot fold the loops away
volatile float kOne = 1.0f;

template <class F>
double gflops(F&& body, double flopsPerIter, long iters) {
  const auto t0 = std::chrono::steady_clock::now();
  body(iters);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return flopsPerIter * static_cast<double>(iters) / s / 1e9;
}

__attribute__((target("avx512f,fma"))) void fmaLoop(long n) {
  __m512 acc[16];
  for (auto& v : acc) v = _mm512_setzero_ps();
  const __m512 a = _mm512_set1_ps(kOne), b = _mm512_set1_ps(kOne);
  for (long k = 0; k < n; k++)
#pragma GCC unroll 16
    for (auto& v : acc) v = _mm512_fmadd_ps(a, b, v);
  float s = 0;
  for (auto& v : acc) s += _mm512_reduce_add_ps(v);
  if (s == 1) std::puts("");
}

__attribute__((target("avx512f,avx512bf16"))) void dpLoop(long n) {
  __m512 acc[16];
  for (auto& v : acc) v = _mm512_setzero_ps();
  const __m512bh a = (__m512bh)_mm512_set1_epi32(kOnes), b = (__m512bh)_mm512_set1_epi32(kOnes);
  for (long k = 0; k < n; k++)
#pragma GCC unroll 16
    for (auto& v : acc) v = _mm512_dpbf16_ps(v, a, b);
  float s = 0;
  for (auto& v : acc) s += _mm512_reduce_add_ps(v);
  if (s == 1) std::puts("");
}

struct TileConfig {
  unsigned char palette, startRow, reserved[14];
  unsigned short colsb[16];
  unsigned char rows[16];
};
alignas(64) TileConfig gCfg;
alignas(64) unsigned short gA[16 * 32], gB[16 * 32];

__attribute__((target("amx-tile,amx-bf16"))) void amxLoop(long n) {
  _tile_loadconfig(&gCfg);
  _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
  _tile_loadd(4, gA, 64); _tile_loadd(5, gA, 64); _tile_loadd(6, gB, 64); _tile_loadd(7, gB, 64);
  for (long k = 0; k < n; k++) {
    _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float out[256];
  _tile_stored(0, out, 64);
  _tile_release();
  if (out[0] == 1) std::puts("");
}

int main() {
  __builtin_cpu_init();
  const bool bf16 = __builtin_cpu_supports("avx512bf16");
  gCfg.palette = 1;
  for (int t = 0; t < 8; t++) { gCfg.rows[t] = 16; gCfg.colsb[t] = 64; }
  for (int i = 0; i < 16 * 32; i++) gA[i] = gB[i] = 0x3f80;
  const bool amx = bf16 && syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
  for (int r = 0; r < 3; r++) {
    std::printf("fp32 FMA %.1f GFLOP/s", gflops(fmaLoop, 16 * 32, 20'000'000));
    if (bf16) std::printf("   vdpbf16ps %.1f GFLOP/s", gflops(dpLoop, 16 * 64, 20'000'000));
    if (amx) std::printf("   AMX tdpbf16ps %.1f GFLOP/s", gflops(amxLoop, 4 * 16 * 16 * 32 * 2, 1'000'000));
    std::printf("\n");
  }
}

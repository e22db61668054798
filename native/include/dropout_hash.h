// The counter-based hash behind every dropout mask of the native backend, bit-identical to core/random.ts
// (hash32 and hashUniform). Shared by the elementwise dropout kernel and the fused attention's dropout on the
// probabilities, so the two cannot drift apart. Integer-only and header-only: it inlines into every ISA path.
#pragma once
#include <cmath>
#include <cstdint>

namespace lmf {

// lowbias32, as core/random.ts hash32.
__attribute__((always_inline)) static inline uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// hashUniform(seed, i) = (hash32(i ^ hash32(seed)) >> 8) / 2^24, so hashUniform(seed, i) ≥ p ⇔
// (hash32(i ^ seedHash) >> 8) ≥ ⌈p·2^24⌉ — an exact integer test (p·2^24 is exact in double).
static inline uint32_t dropoutThreshold(double p) { return static_cast<uint32_t>(std::ceil(p * 16777216.0)); }

// Whether element i survives dropout: hashUniform(seed, i) ≥ p, with seedHash = hash32(seed >>> 0).
__attribute__((always_inline)) static inline bool dropoutKeep(uint32_t i, uint32_t seedHash, uint32_t threshold) {
  return (hash32(i ^ seedHash) >> 8) >= threshold;
}

}  // namespace lmf

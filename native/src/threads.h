// The process-wide thread policy of lmforge's kernels: how many threads a parallel region may use now, learnt
// from how late worker threads join recent regions. Not a thread pool (OpenMP's is used) and not a kernel.
//
// Why: on a machine shared with another busy process, an OpenMP team of as many threads as cores has to share
// a core with it. A worker that is off its core joins a region, or reaches a barrier, a scheduler slice (ms)
// late while the others wait, and a training step runs hundreds of small regions: measured on 2 cores with one
// busy-loop process, nanoGPT's CPU recipe went from 38 to ~700 ms/iter on 2 threads. One thread gets a core of
// its own and no barrier to wait at. So: when at least kLateToCap of the last kWindow multi-threaded regions had
// a worker more than kLateNs late, every region runs on one thread for a while, then the full team is tried
// again (a probe of a few regions); while contention persists the solo spells double, up to kMaxSoloNs.
// On a quiet VM a lone stall (0.4–4 ms every ~100 ms here) does not trip it: two in eight regions are needed.
#pragma once
#include <omp.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace lmf {

inline int64_t monoNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class ThreadPolicy {
 public:
  static constexpr int64_t kLateNs = 100'000;
  static constexpr int kWindow = 8;
  static constexpr int kLateToCap = 2;
  static constexpr int64_t kFirstSoloNs = 200'000'000;
  static constexpr int64_t kMaxSoloNs = 3'200'000'000;

  std::atomic<bool> adaptive{true};

  // Threads a region may use now: OpenMP's maximum, or 1 during a solo spell.
  int cap() {
    const int nt = omp_get_max_threads();
    if (nt <= 1 || !adaptive.load(std::memory_order_relaxed)) return nt;
    return monoNs() < soloUntil_.load(std::memory_order_relaxed) ? 1 : nt;
  }

  // After a multi-threaded region: the latest worker's arrival after the region's start.
  void record(int64_t lateNs) {
    if (!adaptive.load(std::memory_order_relaxed)) return;
    const bool late = lateNs > kLateNs;
    const unsigned i = next_.fetch_add(1, std::memory_order_relaxed);
    const int prev = window_[i % kWindow].exchange(late ? 1 : 0, std::memory_order_relaxed);
    const int lateCount = late_.fetch_add((late ? 1 : 0) - prev, std::memory_order_relaxed) + (late ? 1 : 0) - prev;
    if (lateCount >= kLateToCap) {
      // Contended: go solo, and clear the window so that the next probe judges on its own regions.
      const int64_t spell = solo_.load(std::memory_order_relaxed);
      soloUntil_.store(monoNs() + spell, std::memory_order_relaxed);
      solo_.store(std::min(kMaxSoloNs, 2 * spell), std::memory_order_relaxed);
      spells_.fetch_add(1, std::memory_order_relaxed);
      for (auto& w : window_) w.store(0, std::memory_order_relaxed);
      late_.store(0, std::memory_order_relaxed);
    } else if (i % kWindow == kWindow - 1 && lateCount == 0) {
      solo_.store(kFirstSoloNs, std::memory_order_relaxed);  // a clean window: the next spell starts short again
    }
  }

  bool solo() const { return monoNs() < soloUntil_.load(std::memory_order_relaxed); }
  // Starts (ns > 0) or ends (0) a solo spell by hand: tests prove results do not depend on it.
  void forceSolo(int64_t ns) { soloUntil_.store(ns > 0 ? monoNs() + ns : 0, std::memory_order_relaxed); }
  int64_t spells() const { return spells_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> window_[kWindow] = {};
  std::atomic<int> late_{0};
  std::atomic<unsigned> next_{0};
  std::atomic<int64_t> soloUntil_{0};
  std::atomic<int64_t> solo_{kFirstSoloNs};
  std::atomic<int64_t> spells_{0};
};

inline ThreadPolicy& threadPolicy() {
  static ThreadPolicy policy;
  return policy;
}

// Measures one parallel region: construct before it, call arrive() first thing in every thread, finish() after.
struct RegionClock {
  int64_t start = monoNs();
  std::atomic<int64_t> latest{0};
  std::atomic<int> arrivals{0};
  void arrive() {
    arrivals.fetch_add(1, std::memory_order_relaxed);
    const int64_t late = monoNs() - start;
    int64_t seen = latest.load(std::memory_order_relaxed);
    while (late > seen && !latest.compare_exchange_weak(seen, late, std::memory_order_relaxed)) {
    }
  }
  // Only teams of several threads say anything about contention.
  void finish() {
    if (arrivals.load(std::memory_order_relaxed) > 1) threadPolicy().record(latest.load(std::memory_order_relaxed));
  }
};

}  // namespace lmf

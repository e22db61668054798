// The process-wide thread policy of lmforge's kernels: how many threads a parallel region may use now, learnt
// from how late worker threads join recent regions (GEMM, attention and row-partial regions are timed).
// Not a thread pool (OpenMP's is used) and not a kernel.
//
// Why: on a machine shared with another busy process, an OpenMP team of as many threads as cores has to share
// a core with it. A worker that is off its core joins a region, or reaches a barrier, a scheduler slice (ms)
// late while the others wait, and a training step runs hundreds of small regions: measured on 2 cores with one
// busy-loop process, nanoGPT's CPU recipe went from 36 to 270 ms/iter on 2 threads (1.1 s with a second process).
// One thread gets a core of its own and no barrier to wait at.
//
// The rule: when at least kLateToCap of the last kWindow multi-threaded regions had a worker join more than kLateNs
// late, every region runs on one thread for a spell, then the full team is tried again; spells double while
// contention persists (up to kMaxSoloNs) and start short again after kCalmNs without one. Measured here (2-core VM,
// nanoGPT's CPU recipe on 2 threads): quiet, one region in 400 has a late worker (a 1–10 ms hypervisor stall every
// ~100 ms, one region at a time); beside a busy process, one in seven. Four in 32 is then ~10⁻⁶ likely when quiet
// (per window) and ~2/3 when contended. Ordinary futex wake-ups of sleeping workers (< 100 µs) never count.
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
  static constexpr int64_t kLateNs = 1'000'000;
  static constexpr int kWindow = 32;
  static constexpr int kLateToCap = 4;
  static constexpr int64_t kFirstSoloNs = 50'000'000;
  static constexpr int64_t kMaxSoloNs = 3'200'000'000;
  static constexpr int64_t kCalmNs = 10'000'000'000;

  std::atomic<bool> adaptive{true};

  // Threads a region may use now: OpenMP's maximum, or 1 during a solo spell.
  int cap() {
    const int nt = omp_get_max_threads();
    // The quiet path reads one flag; the clock is read only during a spell (kernels ask thousands of times a second).
    if (nt <= 1 || !inSpell_.load(std::memory_order_relaxed) || !adaptive.load(std::memory_order_relaxed)) return nt;
    if (monoNs() < soloUntil_.load(std::memory_order_relaxed)) return 1;
    inSpell_.store(false, std::memory_order_relaxed);
    return nt;
  }

  // After a multi-threaded region: how late its latest worker joined.
  void record(int64_t lateNs) {
    if (!adaptive.load(std::memory_order_relaxed)) return;
    const int late = lateNs > kLateNs ? 1 : 0;
    const unsigned i = next_.fetch_add(1, std::memory_order_relaxed) % kWindow;
    const int delta = late - window_[i].exchange(late, std::memory_order_relaxed);
    const int lateCount = lateCount_.fetch_add(delta, std::memory_order_relaxed) + delta;  // approximate under races
    if (late == 0 || lateCount < kLateToCap) return;
    // Contended: a solo spell; forget the evidence so that the next probe judges on its own regions.
    const int64_t now = monoNs();
    int64_t spell = solo_.load(std::memory_order_relaxed);
    if (now - lastSpell_.load(std::memory_order_relaxed) > kCalmNs) spell = kFirstSoloNs;
    soloUntil_.store(now + spell, std::memory_order_relaxed);
    inSpell_.store(true, std::memory_order_relaxed);
    solo_.store(std::min(kMaxSoloNs, 2 * spell), std::memory_order_relaxed);
    lastSpell_.store(now, std::memory_order_relaxed);
    spells_.fetch_add(1, std::memory_order_relaxed);
    for (auto& w : window_) w.store(0, std::memory_order_relaxed);
    lateCount_.store(0, std::memory_order_relaxed);
  }

  bool solo() const { return monoNs() < soloUntil_.load(std::memory_order_relaxed); }
  // Starts (ns > 0) or ends (0) a solo spell by hand: tests prove results do not depend on it.
  void forceSolo(int64_t ns) {
    soloUntil_.store(ns > 0 ? monoNs() + ns : 0, std::memory_order_relaxed);
    inSpell_.store(ns > 0, std::memory_order_relaxed);
  }
  int64_t spells() const { return spells_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int> window_[kWindow] = {};
  std::atomic<int> lateCount_{0};
  std::atomic<unsigned> next_{0};
  std::atomic<bool> inSpell_{false};
  std::atomic<int64_t> soloUntil_{0}, solo_{kFirstSoloNs}, lastSpell_{0}, spells_{0};
};

inline ThreadPolicy& threadPolicy() {
  static ThreadPolicy policy;
  return policy;
}

// Measures one parallel region in kSample: construct before it, call arrive() first thing in every thread, finish()
// after. Each worker stores its join time once in a slot of its own. Regions are thousands a second, so a sample
// of them is evidence enough, and the others pay nothing.
struct RegionClock {
  static constexpr int kSlots = 8;
  static constexpr unsigned kSample = 4;
  bool on = sampled();
  int64_t start = on ? monoNs() : 0;
  int64_t joined[kSlots] = {};
  void arrive() {
    const int t = omp_get_thread_num();
    if (on && t > 0 && t < kSlots) joined[t] = monoNs();
  }
  // Only teams with workers say anything about contention (a slot left at 0 had no worker).
  void finish() {
    if (!on) return;
    int64_t latest = -1;
    for (int t = 1; t < kSlots; t++) if (joined[t] != 0) latest = std::max(latest, joined[t] - start);
    if (latest >= 0) threadPolicy().record(latest);
  }

 private:
  static bool sampled() {
    static thread_local unsigned n = 0;
    return n++ % kSample == 0;
  }
};

}  // namespace lmf

// The native bucketAttention kernels on shapes large enough for their threaded paths (whole heads per thread, a
// remainder head split over the team, one head split), against the reference backend, and bit-identical on the
// full team and in a one-thread spell. The small op cases (op-cases.ts) cover the serial path and finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { loadAddon } from '../../src/core/native/addon.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { assertClose, runCase } from './harness.js';
import type { OpCase } from './op-cases.js';

const native = loadNativeBackend();

/** Slots and groups (B, H, R·T): per head and round, positions sorted by a seeded random bucket in [0, nb). */
function randomBuckets(B: number, H: number, T: number, rounds: number, nb: number, seed: number): [lm.Tensor, lm.Tensor] {
  const rng = new lm.Rng(seed);
  const slots: number[] = [];
  const groups: number[] = [];
  for (let i = 0; i < B * H * rounds; i++) {
    const g = Array.from({ length: T }, () => rng.int(nb));
    const order = Array.from({ length: T }, (_, p) => p).sort((a, b) => g[a]! - g[b]! || a - b);
    for (const p of order) {
      slots.push(p);
      groups.push(g[p]!);
    }
  }
  const shape = [B, H, rounds * T];
  return [lm.tensor(slots, shape, 'int32'), lm.tensor(groups, shape, 'int32')];
}

const cases: OpCase[] = [
  {
    // 3 heads on 2 threads: two whole heads, then the third split; shared unit keys, two rounds, a window that cuts
    // the larger buckets (several query blocks per run).
    name: 'LSH-like, 3 heads, unit keys', inputs: [[1, 3, 160, 64], [1, 3, 160, 64]],
    run: (xs) => {
      const [slots, groups] = randomBuckets(1, 3, 160, 2, 6, 1);
      return lm.bucketAttention(xs[0]!, xs[0]!, xs[1]!, slots, groups, { window: 31, rounds: 2, selfPenalty: 100, unitKeys: true });
    },
  },
  {
    // 4 heads (B = 2): whole heads per thread; a head size that is not a multiple of 16 (padded rows).
    name: 'Routing-like, B = 2, head size 40', inputs: [[2, 2, 150, 40], [2, 2, 150, 40], [2, 2, 150, 40]],
    run: (xs) => {
      const [slots, groups] = randomBuckets(2, 2, 150, 1, 4, 2);
      return lm.bucketAttention(xs[0]!, xs[1]!, xs[2]!, slots, groups, { window: 20 });
    },
  },
  {
    // One head split over the team, a window past every run, a small penalty.
    name: 'one head, head size 16', inputs: [[1, 1, 100, 16], [1, 1, 100, 16], [1, 1, 100, 16]],
    run: (xs) => {
      const [slots, groups] = randomBuckets(1, 1, 100, 2, 3, 3);
      return lm.bucketAttention(xs[0]!, xs[1]!, xs[2]!, slots, groups, { window: 80, rounds: 2, selfPenalty: 2 });
    },
  },
];

for (const c of cases) {
  test(`native bucketAttention, threaded: ${c.name} matches the reference and does not depend on the thread count`, { skip: !native.loaded }, () => {
    const addon = loadAddon();
    const setAdaptive = addon.gemmAdaptiveThreads as (on: boolean) => boolean;
    const was = setAdaptive(false); // the full team for sure
    try {
      const want = runCase(c, 'reference', 'float32');
      const got = runCase(c, 'native', 'float32');
      assertClose(got.out, want.out, 2e-5, 2e-6, `${c.name} output`);
      got.grads.forEach((g, i) => assertClose(g, want.grads[i]!, 1e-4, 1e-5, `${c.name} grad ${i}`));
      setAdaptive(true);
      addon.threadPolicySolo(60_000);
      const solo = runCase(c, 'native', 'float32');
      assert.deepEqual(solo.out, got.out, `${c.name}: output on one thread`);
      solo.grads.forEach((g, i) => assert.deepEqual(g, got.grads[i], `${c.name}: grad ${i} on one thread`));
    } finally {
      addon.threadPolicySolo(0);
      setAdaptive(was);
    }
  });
}

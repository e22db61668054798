import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkSchedule, learningRate, type LrSchedule } from '../../src/optim/schedule.js';
import { UserError } from '../../src/util/errors.js';

// nanoGPT's shakespeare-char recipe: learning_rate 1e-3, min_lr 1e-4, warmup_iters 100, lr_decay_iters 5000.
const cosine: LrSchedule = { kind: 'cosine', lr: 1e-3, minLr: 1e-4, warmupIters: 100, decayIters: 5000 };

test('cosine matches nanoGPT get_lr (values printed by the Python function, repr precision)', () => {
  // From: python3 with nanoGPT's get_lr (it+1)/(warmup+1) warmup, cosine to min_lr, min_lr past lr_decay_iters.
  const expected: [number, number][] = [
    [0, 9.900990099009901e-6], [1, 1.9801980198019803e-5], [50, 0.000504950495049505], [99, 0.0009900990099009901],
    [100, 0.001], [101, 0.000999999907510999], [1000, 0.0009271396472013282], [2550, 0.00055],
    [4999, 0.00010000009248900101], [5000, 0.0001], [5001, 0.0001], [9000, 0.0001],
  ];
  for (const [it, lr] of expected) {
    const got = learningRate(cosine, it);
    // Warmup and the flat tail are exact; cosine values may differ from glibc's cos by at most an ulp or two.
    assert.ok(Math.abs(got - lr) <= 4 * Number.EPSILON * lr, `it=${it}: ${got} vs ${lr}`);
    if (it < 100 || it > 5000) assert.equal(got, lr);
  }
});

test('linear and constant schedules', () => {
  const lin: LrSchedule = { kind: 'linear', lr: 1, minLr: 0.1, warmupIters: 4, decayIters: 14 };
  assert.equal(learningRate(lin, 0), 0.2);
  assert.equal(learningRate(lin, 3), 0.8);
  assert.equal(learningRate(lin, 4), 1);
  assert.ok(Math.abs(learningRate(lin, 9) - 0.55) < 1e-15);
  assert.equal(learningRate(lin, 14), 0.1);
  assert.equal(learningRate(lin, 100), 0.1);
  // Monotone non-increasing after warmup.
  for (let it = 4; it < 20; it++) assert.ok(learningRate(lin, it + 1) <= learningRate(lin, it));
  assert.equal(learningRate({ kind: 'constant', lr: 3e-4 }, 12345), 3e-4);
});

test('checkSchedule rejects bad numbers with the field name', () => {
  checkSchedule(cosine);
  assert.throws(() => checkSchedule({ ...cosine, decayIters: 100 }), (e: unknown) => e instanceof UserError && /lr_decay_iters: expected an integer > warmup_iters \(100\)/.test(e.message));
  assert.throws(() => checkSchedule({ ...cosine, minLr: -1 }), /min_lr/);
  assert.throws(() => checkSchedule({ kind: 'constant', lr: NaN }), /lr: expected a finite number/);
});

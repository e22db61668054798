// The scaling model's arithmetic (src/train/distributed/scaling.ts): ring all-reduce cost and bytes, the pipeline
// bubble, a step's prediction in the limits where it must reduce to plain compute, and the α/β fit.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allReduceBytes, allReduceSeconds, bubbleFraction, fitLatencyBandwidth, predictStep } from '../../../src/train/distributed/scaling.js';

test('ring all-reduce: 2(N−1)/N of the bytes per rank, 2(N−1) latencies; nothing on one rank', () => {
  assert.equal(allReduceBytes(1000, 4), 1500);
  assert.equal(allReduceBytes(1000, 1), 0);
  assert.equal(allReduceSeconds(1e9, 2, { latency: 1e-3, bandwidth: 1e9 }), 2e-3 + 1);
});

test('pipeline bubble (p−1)/(m+p−1)', () => {
  assert.equal(bubbleFraction(1, 8), 0);
  assert.equal(bubbleFraction(4, 13), 3 / 16);
});

test('one device is pure compute at the achieved rate; data parallelism adds the exposed all-reduce', () => {
  const model = { params: 1e6, layers: 4, hidden: 128, flopsPerToken: 6e6, wireBytes: 4 };
  const cluster = { devices: 4, achievedFlops: 1e9, peakFlops: 2e9, latency: 0, bandwidth: 1e9 };
  const one = predictStep(model, cluster, { dp: 1, tp: 1, pp: 1, microBatches: 1, tokensPerStep: 1000, overlap: 0 });
  assert.equal(one.stepS, 6);
  assert.equal(one.mfu, 0.5);
  const dp4 = predictStep(model, cluster, { dp: 4, tp: 1, pp: 1, microBatches: 1, tokensPerStep: 1000, overlap: 0 });
  assert.equal(dp4.computeS, 1.5);
  assert.equal(dp4.bytes.dp, 1.5 * 4e6); // 2·3/4 of 4 MB of gradients
  assert.ok(Math.abs(dp4.dpS - 6e-3) < 1e-12);
  const hidden = predictStep(model, cluster, { dp: 4, tp: 1, pp: 1, microBatches: 1, tokensPerStep: 1000, overlap: 1 });
  assert.equal(hidden.dpS, 0); // 6 ms of all-reduce fits behind 1 s of backward
  assert.throws(() => predictStep(model, cluster, { dp: 8, tp: 1, pp: 1, microBatches: 1, tokensPerStep: 1000, overlap: 0 }), /needs 8 devices/);
});

test('α and β come back from samples of t = α·steps + bytes/β', () => {
  const alpha = 2e-5, beta = 5e8;
  const samples = [1e3, 1e5, 1e6, 4e6].map((bytes) => ({ steps: 2, bytes, seconds: 2 * alpha + bytes / beta }));
  const fit = fitLatencyBandwidth(samples);
  assert.ok(Math.abs(fit.latency - alpha) < 1e-9);
  assert.ok(Math.abs(fit.bandwidth - beta) / beta < 1e-6);
});

test('the α/β fit stays physical on noisy samples', () => {
  const flat = fitLatencyBandwidth([{ steps: 1, bytes: 1e3, seconds: 2e-3 }, { steps: 1, bytes: 1e6, seconds: 1e-3 }]);
  assert.ok(flat.latency > 0 && Number.isFinite(flat.bandwidth) && flat.bandwidth > 0);
  const steep = fitLatencyBandwidth([{ steps: 1, bytes: 1e3, seconds: 1e-9 }, { steps: 1, bytes: 2e3, seconds: 1e-3 }, { steps: 1, bytes: 3e3, seconds: 2e-3 }]);
  assert.equal(steep.latency, 0);
  assert.ok(Number.isFinite(steep.bandwidth) && steep.bandwidth > 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MIX, copiesOf, idUniform, planMix, qualityWeight } from '../../src/data/mix.js';

test('mix plan: p_i ∝ n_i^(1/T), T=1 natural, large T uniform, weights multiply', () => {
  const n = { a: 900, b: 100 };
  const t1 = planMix(n, { ...DEFAULT_MIX, temperature: 1, maxEpochs: 100 });
  assert.deepEqual(t1.map((r) => r.share), [0.9, 0.1]);
  const t2 = planMix(n, { ...DEFAULT_MIX, temperature: 2, maxEpochs: 100 });
  // sqrt(900) : sqrt(100) = 30 : 10.
  assert.ok(Math.abs(t2[0]!.share - 0.75) < 1e-12 && Math.abs(t2[1]!.share - 0.25) < 1e-12);
  assert.ok(Math.abs(t2[1]!.epochs - 2.5) < 1e-12);
  const tInf = planMix(n, { ...DEFAULT_MIX, temperature: 1e9, maxEpochs: 100 });
  assert.ok(Math.abs(tInf[0]!.share - 0.5) < 1e-6);
  const w = planMix(n, { ...DEFAULT_MIX, temperature: 1, maxEpochs: 100, sources: { b: { weight: 9 } } });
  assert.ok(Math.abs(w[0]!.share - 0.5) < 1e-12);
});

test('mix plan: epoch cap binds and the excess goes to the other sources', () => {
  const plan = planMix({ a: 900, b: 100 }, { ...DEFAULT_MIX, temperature: 2, maxEpochs: 4, sources: { b: { weight: 1, maxEpochs: 1.5 } } });
  const b = plan.find((r) => r.source === 'b')!;
  const a = plan.find((r) => r.source === 'a')!;
  assert.equal(b.capped, true);
  assert.equal(b.target, 150);
  assert.equal(a.target, 850);
  assert.ok(Math.abs(a.share + b.share - 1) < 1e-12);
  // Everything capped: the mixture shrinks to what the caps allow.
  const all = planMix({ a: 10, b: 10 }, { ...DEFAULT_MIX, total: 1000, maxEpochs: 2 });
  assert.deepEqual(all.map((r) => [r.target, r.capped]), [[20, true], [20, true]]);
});

test('mix sampling: copies average to the planned epochs; quality weights are relative; coins are deterministic', () => {
  let sum = 0;
  for (let i = 0; i < 20000; i++) sum += copiesOf(`doc${i}`, 1.3, 1, 4, 0);
  assert.ok(Math.abs(sum / 20000 - 1.3) < 0.02);
  assert.equal(copiesOf('x', 10, 1, 4, 0), 4);
  assert.equal(idUniform('abc', 1), idUniform('abc', 1));
  assert.notEqual(idUniform('abc', 1), idUniform('abc', 2));
  const q = { field: 'ppl', alpha: 1, lowerIsBetter: true };
  assert.equal(qualityWeight(q, { ppl: 100 }), 0.01);
  assert.equal(qualityWeight(q, {}), 1);
  assert.equal(qualityWeight(null, { ppl: 100 }), 1);
  assert.throws(() => planMix({ a: 1 }, { ...DEFAULT_MIX, temperature: 0 }), /mix\.temperature/);
});

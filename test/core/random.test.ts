import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, hash32, hashUniform } from '../../src/core/random.js';

test('hash32 matches known values and hashUniform stays in [0, 1)', () => {
  assert.equal(hash32(0), 0);
  assert.notEqual(hash32(1), hash32(2));
  for (let i = 0; i < 1000; i++) {
    const u = hashUniform(1234, i);
    assert.ok(u >= 0 && u < 1);
  }
});

test('Rng is deterministic per seed, restorable from its state, and roughly uniform', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  for (let i = 0; i < 10; i++) assert.equal(a.nextU32(), b.nextU32());
  const saved = a.state();
  const x = a.uniform();
  assert.equal(new Rng(saved).uniform(), x);
  let sum = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) sum += a.uniform();
  assert.ok(Math.abs(sum / n - 0.5) < 0.01);
  let s2 = 0;
  for (let i = 0; i < n; i++) s2 += a.normal() ** 2;
  assert.ok(Math.abs(s2 / n - 1) < 0.05);
});

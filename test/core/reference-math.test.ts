import { test } from 'node:test';
import assert from 'node:assert/strict';
import { erf, gelu, geluGrad } from '../../src/core/reference/math.js';

test('erf matches tabulated values to 1e-15 across both branches', () => {
  // Values from Abramowitz & Stegun table 7.1 (extended precision).
  const table: [number, number][] = [
    [0, 0],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [2.9, 0.9999589021219005],
    [3.5, 0.9999992569016276],
    [5, 0.9999999999984626],
  ];
  for (const [x, want] of table) {
    assert.ok(Math.abs(erf(x) - want) < 1e-15, `erf(${x}) = ${erf(x)}, want ${want}`);
    assert.ok(Math.abs(erf(-x) + want) < 1e-15);
  }
  assert.ok(Number.isNaN(erf(NaN)));
});

test('geluGrad is the derivative of gelu (central differences)', () => {
  for (const x of [-4, -1.3, -0.2, 0, 0.7, 2.5, 3.1]) {
    const h = 1e-6;
    const fd = (gelu(x + h) - gelu(x - h)) / (2 * h);
    assert.ok(Math.abs(fd - geluGrad(x)) < 1e-8, `x=${x}: fd ${fd} vs ${geluGrad(x)}`);
  }
});

// Every op case, forward and backward, on the native backend against the reference backend (float32 both).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { opCases } from './op-cases.js';
import { assertClose, runCase } from './harness.js';

const native = loadNativeBackend();

test('the native backend loads', () => {
  assert.ok(native.loaded, `native addon did not load: ${native.reason}`);
});

for (const c of opCases) {
  test(`native ${c.name} matches the reference (forward and backward)`, { skip: !native.loaded }, () => {
    const want = runCase(c, 'reference', 'float32');
    const got = runCase(c, 'native', 'float32');
    assertClose(got.out, want.out, 2e-5, 2e-6, `${c.name} output`);
    got.grads.forEach((g, i) => assertClose(g, want.grads[i]!, 1e-4, 1e-5, `${c.name} grad ${i}`));
  });
}

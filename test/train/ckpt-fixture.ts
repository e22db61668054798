// Deterministic checkpoint contents for a step, so a loaded checkpoint can be checked against its own step.
// The big arrays are a fixed pattern copied (fast) with step-dependent first and last elements, so the writer child
// spends its time writing, not computing.
import type { CheckpointData } from '../../src/train/checkpoint.js';

const bases = new Map<number, { w: Float32Array; m: Float32Array; v: Float32Array }>();

function base(n: number): { w: Float32Array; m: Float32Array; v: Float32Array } {
  let b = bases.get(n);
  if (!b) {
    const w = new Float32Array(n);
    for (let i = 0; i < n; i++) w[i] = i % 997;
    b = { w, m: w.map((x) => -x), v: w.map((x) => x + 0.5) };
    bases.set(n, b);
  }
  return b;
}

function stamped(a: Float32Array, step: number, scale: number): Float32Array {
  const out = a.slice();
  out[0] = step * scale;
  out[out.length - 1] = -step * scale;
  return out;
}

export function checkpointContents(step: number, n: number): CheckpointData {
  const b = base(n);
  const bias = new Float32Array([step, -step]);
  return {
    step,
    params: [['h.0.mlp.c_fc.weight', { shape: [n / 4, 4], data: stamped(b.w, step, 1) }], ['h.0.mlp.c_fc.bias', { shape: [2], data: bias }]],
    optimizer: {
      kind: 'adamw',
      version: 1,
      step,
      tensors: new Map([
        ['h.0.mlp.c_fc.weight.m', { shape: [n / 4, 4], data: stamped(b.m, step, 2) }],
        ['h.0.mlp.c_fc.weight.v', { shape: [n / 4, 4], data: stamped(b.v, step, 3) }],
        ['h.0.mlp.c_fc.bias.m', { shape: [2], data: bias.map((x) => -x) }],
        ['h.0.mlp.c_fc.bias.v', { shape: [2], data: bias.map((x) => x + 0.5) }],
      ]),
    },
    task: { samplerRng: [step, step + 1, step + 2, 0xffffffff] },
    bestValLoss: step === 0 ? null : 1 / (step + 1),
    config: { n_layer: 1, optim: { lr: 0.001 }, label: `step ${step}` },
    extra: { note: 'fixture' },
  };
}

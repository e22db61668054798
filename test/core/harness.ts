// Test helpers: run an op case forward and backward under a given backend and dtype, and central finite
// differences of a scalar function of the case's inputs.
import * as lm from '../../src/core/index.js';
import type { BackendName, DType, Tensor } from '../../src/core/index.js';
import type { OpCase } from './op-cases.js';

export interface CaseResult {
  out: number[];
  grads: number[][];
}

/** Deterministic input values for a case (seeded by its name). */
export function caseInputs(c: OpCase): number[][] {
  let seed = 0;
  for (const ch of c.name) seed = (seed * 31 + ch.charCodeAt(0)) >>> 0;
  const rng = new lm.Rng(seed);
  const [low, high] = c.range ?? [-2, 2];
  return c.inputs.map((shape) => Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => low + (high - low) * rng.uniform()));
}

/** Weights that turn the output into a scalar loss Σ w·out (all gradients then non-trivial). */
function lossWeights(n: number): number[] {
  const rng = new lm.Rng(99);
  return Array.from({ length: n }, () => rng.uniform() * 2 - 1);
}

export function runCase(c: OpCase, backend: BackendName, dtype: DType, values = caseInputs(c)): CaseResult {
  return lm.withBackend(backend, () =>
    lm.tidy(() => {
      const xs = c.inputs.map((shape, i) => lm.requireGrad(lm.tensor(values[i]!, shape, dtype)));
      const out = c.run(xs, dtype);
      const w = lm.tensor(lossWeights(out.size), out.shape, dtype);
      const loss = lm.sum(lm.mul(out, w));
      lm.backward(loss);
      const result = { out: out.toArray(), grads: xs.map((x) => x.grad?.toArray() ?? new Array<number>(x.size).fill(0)) };
      for (const x of xs) x.dispose();
      return result;
    }),
  );
}

/** ∂loss/∂input by central differences in float64 on the reference backend. */
export function numericGrads(c: OpCase, h = 1e-6): number[][] {
  const values = caseInputs(c);
  const lossAt = (vals: number[][]): number =>
    lm.withBackend('reference', () =>
      lm.noGrad(() =>
        lm.tidy(() => {
          const xs = c.inputs.map((shape, i) => lm.tensor(vals[i]!, shape, 'float64'));
          const out = c.run(xs, 'float64');
          const w = lm.tensor(lossWeights(out.size), out.shape, 'float64');
          return lm.sum(lm.mul(out, w)).item();
        }),
      ),
    );
  return values.map((vals, i) =>
    vals.map((v, j) => {
      const plus = values.map((a) => [...a]);
      const minus = values.map((a) => [...a]);
      plus[i]![j] = v + h;
      minus[i]![j] = v - h;
      return (lossAt(plus) - lossAt(minus)) / (2 * h);
    }),
  );
}

export function assertClose(actual: readonly number[], expected: readonly number[], rtol: number, atol: number, what: string): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} vs ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      throw new Error(`${what}: element ${i} is ${a}, expected ${e} (|diff| ${Math.abs(a - e)})`);
    }
  }
}

export type { Tensor };

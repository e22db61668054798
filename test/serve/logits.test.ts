// The radix-selection logits processors against the comparison-sort ones they replaced (kept verbatim in
// logits-reference.ts): for every option combination the processed row is the same bit for bit and the token drawn
// for a seed is the same — on vocabularies with ties, −0, ±∞ entries, top_k ≥ V, top_p = 1 and tiny top_p, below and
// above the insertion-sort cutoff, and on full-size rows (V 4,100 and 50,257); with the token's log-probability
// the same bit for bit as logSoftmaxAt's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Rng } from '../../src/core/index.js';
import { logSoftmaxAt, repetitionPenalty, sampleFrom, samplingProcessors, sampleWithLogprob, temperature, topK, topP, type LogitsProcessor } from '../../src/serve/logits.js';
import { sampleFromSorted, topKSorted, topPSorted } from './logits-reference.js';

interface Options {
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
}

/** The processor list samplingProcessors builds, with the old top-k and top-p in place of the new. */
function sortedProcessors(o: Options): LogitsProcessor[] {
  const out: LogitsProcessor[] = [];
  if (o.repetitionPenalty !== 1) out.push(repetitionPenalty(o.repetitionPenalty));
  out.push(temperature(o.temperature));
  if (o.topK) out.push(topKSorted(o.topK));
  if (o.topP < 1) out.push(topPSorted(o.topP));
  return out;
}

/** The processed row and the drawn token (or the error message) of one side, for `draws` draws from Rng(seed). */
function run(row: Float32Array, history: number[], processors: LogitsProcessor[], draw: (l: Float32Array, r: Rng) => number, seed: number, draws: number): { processed: Float32Array; tokens: (number | string)[] } {
  const processed = Float32Array.from(row);
  for (const p of processors) p(processed, { tokens: history, promptLength: 0 });
  const rng = new Rng(seed);
  const tokens: (number | string)[] = [];
  for (let i = 0; i < draws; i++) {
    try {
      tokens.push(draw(Float32Array.from(processed), rng));
    } catch (e) {
      tokens.push((e as Error).message);
    }
  }
  return { processed, tokens };
}

function assertSame(row: Float32Array, history: number[], o: Options, seed: number, draws = 3): void {
  const fast = run(row, history, samplingProcessors(o), sampleFrom, seed, draws);
  const sorted = run(row, history, sortedProcessors(o), sampleFromSorted, seed, draws);
  assert.deepEqual(Buffer.from(fast.processed.buffer), Buffer.from(sorted.processed.buffer), `processed rows differ for ${JSON.stringify(o)}`);
  assert.deepEqual(fast.tokens, sorted.tokens, `drawn tokens differ for ${JSON.stringify(o)}`);
  // The draw with its log-probability (the generator's path): the same token, and exactly logSoftmaxAt's value —
  // also when the processors changed nothing, where it reuses the draw's exponentials.
  for (const processed of [fast.processed, row]) {
    const rng = new Rng(seed), ref = new Rng(seed);
    for (let i = 0; i < draws; i++) {
      let want: number | string;
      try {
        want = sampleFromSorted(Float32Array.from(processed), ref);
      } catch (e) {
        want = (e as Error).message;
      }
      if (typeof want === 'string') {
        assert.throws(() => sampleWithLogprob(Float32Array.from(processed), row, rng), { message: want });
        continue;
      }
      const got = sampleWithLogprob(Float32Array.from(processed), row, rng);
      assert.equal(got.token, want);
      assert.ok(Object.is(got.logprob, logSoftmaxAt(row, want)), `log-probability ${got.logprob} against ${logSoftmaxAt(row, want)}`);
    }
  }
}

const logit = fc.oneof(
  { weight: 4, arbitrary: fc.double({ min: -30, max: 30, noNaN: true }) },
  { weight: 3, arbitrary: fc.constantFrom(0, -0, 1, -1, 0.5, 2.25, -7) }, // ties
  { weight: 1, arbitrary: fc.constant(-Infinity) },
  { weight: 1, arbitrary: fc.double({ noNaN: true }) }, // huge magnitudes, subnormals and +∞ too
);

const options = (V: number): fc.Arbitrary<Options> => fc.record({
  temperature: fc.constantFrom(1, 0.7, 1.5, 0.05),
  topK: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: V + 3 }), fc.constant(V)),
  topP: fc.oneof(fc.constant(1), fc.double({ min: 1e-9, max: 1, noNaN: true }), fc.constantFrom(0.5, 0.9, 1e-9)),
  repetitionPenalty: fc.constantFrom(1, 1.3, 0.8),
});

test('top-k, top-p and the draw give exactly what the comparison sort gave (property test)', () => {
  const arb = fc.integer({ min: 1, max: 120 }).chain((V) => fc.record({
    row: fc.array(logit, { minLength: V, maxLength: V }),
    history: fc.array(fc.integer({ min: 0, max: V - 1 }), { maxLength: 6 }),
    o: options(V),
    seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
  }));
  fc.assert(fc.property(arb, ({ row, history, o, seed }) => assertSame(Float32Array.from(row), history, o, seed)), { numRuns: 600, seed: 15 });
});

test('ties everywhere: few distinct values, many tokens (radix passes over equal keys, order by index)', () => {
  const arb = fc.record({
    row: fc.array(fc.constantFrom(0, -0, 1, 3, -Infinity), { minLength: 33, maxLength: 400 }),
    o: fc.record({ temperature: fc.constant(1), topK: fc.integer({ min: 0, max: 410 }), topP: fc.oneof(fc.constant(1), fc.double({ min: 1e-9, max: 1, noNaN: true })), repetitionPenalty: fc.constant(1) }),
    seed: fc.nat(),
  });
  fc.assert(fc.property(arb, ({ row, o, seed }) => assertSame(Float32Array.from(row), [], o, seed)), { numRuns: 300, seed: 18 });
});

test('full-size rows (V 4,100 and 50,257, normal logits) give the same tokens with every option', () => {
  for (const V of [4100, 50257]) {
    const rng = new Rng(V);
    const row = Float32Array.from({ length: V }, () => 3 * rng.normal());
    for (const o of [
      { temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1 },
      { temperature: 0.8, topK: 50, topP: 1, repetitionPenalty: 1 },
      { temperature: 1, topK: 0, topP: 0.9, repetitionPenalty: 1.2 },
      { temperature: 1.3, topK: 200, topP: 0.95, repetitionPenalty: 1 },
      { temperature: 1, topK: V - 1, topP: 0.999, repetitionPenalty: 1 },
    ]) assertSame(row, [1, 2, 3, 5, 8], o, 7, 20);
  }
});

test('top-k keeps ties at the k-th value; top-p keeps at least one token; everything removed is an error', () => {
  const row = Float32Array.from([1, 3, 3, 2, 3, -Infinity, 0]);
  topK(2)(row, { tokens: [], promptLength: 0 });
  assert.deepEqual(Array.from(row), [-Infinity, 3, 3, -Infinity, 3, -Infinity, -Infinity]);
  const one = Float32Array.from([0, 5, 1]);
  topP(1e-9)(one, { tokens: [], promptLength: 0 });
  assert.deepEqual(Array.from(one), [-Infinity, 5, -Infinity]);
  assert.throws(() => sampleFrom(Float32Array.from([-Infinity, -Infinity]), new Rng(1)), /every token was removed/);
});

// The fuzzing harness shared by the parser fuzz tests: fast-check arbitraries that mutate valid seed files (random
// bytes, truncations, bit flips, splices, inserts/deletes, JSON-aware value swaps) and a runner that accepts only a
// clean result or a clean refusal (UserError) within a time bound per case. Not a test file itself.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { UserError } from '../../src/util/errors.js';

/** Cases per target in the default suite (LMFORGE_FUZZ_SCALE=10 runs ten times as many). */
export const SCALE = Number(process.env.LMFORGE_FUZZ_SCALE ?? '1');
/** A fixed seed so a failure reproduces; LMFORGE_FUZZ_SEED explores others. */
export const SEED = Number(process.env.LMFORGE_FUZZ_SEED ?? '20261203');
/**
 * No single case may take longer than this (a blow-up on a crafted length; cases take milliseconds). Generous, so a
 * loaded 2-core machine does not make it flaky; a true hang is still caught by the test runner's timeout.
 */
const CASE_MS = 10_000;

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x0a, 0x0d, 0x5c, 0x30, 0x39, 0x2d, 0xc3, 0xed, 0xf4];
const INTERESTING_NUMBERS = ['-1', '0', '1', '255', '256', '65535', '65536', '4294967295', '4294967296', '9007199254740993', '1e308', '-1e308', '0.5', '1e-7', '2147483647', '99999999999'];
const INTERESTING_STRINGS = ['""', '"\\ud800"', '"\\u0000"', '"x"', '"bpe"', '"unigram"', '"BPE"', '"Unigram"', '"gpt2"', '"("', '"[\\\\p{L}"', 'null', 'true', '[]', '{}', '[1,2]', '{"a":1}'];

/** Byte-level mutations of the seeds (and pure random bytes). */
export function mutatedBytes(seeds: readonly Uint8Array[], maxRandom = 512): fc.Arbitrary<Uint8Array> {
  const seed = fc.constantFrom(...seeds);
  return fc.oneof(
    fc.uint8Array({ maxLength: maxRandom }),
    fc.tuple(seed, fc.double({ min: 0, max: 1, noNaN: true })).map(([s, f]) => s.subarray(0, Math.floor(s.length * f))),
    fc.tuple(seed, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 8 })).map(([s, flips]) => {
      const b = Uint8Array.from(s);
      for (const [i, bit] of flips) if (b.length > 0) b[i % b.length]! ^= 1 << bit;
      return b;
    }),
    fc.tuple(seed, seed, fc.nat(), fc.nat()).map(([a, b, i, j]) => concat(a.subarray(0, i % (a.length + 1)), b.subarray(j % (b.length + 1)))),
    fc.tuple(seed, fc.nat(), fc.nat({ max: 64 }), fc.uint8Array({ maxLength: 16 })).map(([s, i, del, ins]) => {
      const p = i % (s.length + 1);
      return concat(s.subarray(0, p), ins, s.subarray(p + del));
    }),
    fc.tuple(seed, fc.array(fc.tuple(fc.nat(), fc.constantFrom(...INTERESTING_BYTES)), { minLength: 1, maxLength: 4 })).map(([s, sets]) => {
      const b = Uint8Array.from(s);
      for (const [i, v] of sets) if (b.length > 0) b[i % b.length] = v;
      return b;
    }),
  );
}

/** Text mutations that keep JSON (or YAML) mostly parseable: swap the k-th number / string / array element. */
export function mutatedJsonText(seeds: readonly string[]): fc.Arbitrary<string> {
  const seed = fc.constantFrom(...seeds);
  const swap = (re: RegExp, values: readonly string[]): fc.Arbitrary<string> =>
    fc.tuple(seed, fc.array(fc.tuple(fc.nat(), fc.constantFrom(...values)), { minLength: 1, maxLength: 3 })).map(([s, swaps]) => {
      let out = s;
      for (const [k, v] of swaps) {
        const hits = [...out.matchAll(re)];
        const h = hits.length > 0 ? hits[k % hits.length] : undefined;
        if (h?.index !== undefined) out = out.slice(0, h.index) + v + out.slice(h.index + h[0].length);
      }
      return out;
    });
  return fc.oneof(
    swap(/-?\d+(\.\d+)?(e[+-]?\d+)?/g, INTERESTING_NUMBERS),
    swap(/"(?:[^"\\]|\\.)*"/g, [...INTERESTING_STRINGS, ...INTERESTING_NUMBERS]),
    swap(/\b(true|false|null)\b/g, [...INTERESTING_STRINGS, ...INTERESTING_NUMBERS]),
    // Duplicate or drop a comma-separated element (repeats a merge, a rank, a key, a tensor entry).
    fc.tuple(seed, fc.nat(), fc.boolean()).map(([s, k, dup]) => {
      const commas = [...s.matchAll(/,/g)].map((m) => m.index);
      if (commas.length < 2) return s;
      const i = k % (commas.length - 1);
      const [a, b] = [commas[i]!, commas[i + 1]!];
      return dup ? s.slice(0, b) + s.slice(a, b) + s.slice(b) : s.slice(0, a) + s.slice(b);
    }),
    mutatedBytes(seeds.map((s) => Uint8Array.from(Buffer.from(s))), 256).map((b) => Buffer.from(b).toString('utf8')),
  );
}

/** True for the only refusals a parser may throw: UserError (and its subclasses). */
export function isCleanRefusal(e: unknown): boolean {
  return e instanceof UserError;
}

function check(e: unknown, show: () => string): void {
  if (isCleanRefusal(e)) return;
  const err = e instanceof Error ? e : new Error(String(e));
  assert.fail(`not a clean refusal (${err.name}: ${err.message}) for input ${show()}\n${err.stack ?? ''}`);
}

function preview(x: unknown): string {
  const s = x instanceof Uint8Array ? `bytes(${x.length}) ${Buffer.from(x.subarray(0, 120)).toString('hex')}` : JSON.stringify(x)?.slice(0, 300);
  return s ?? String(x);
}

export interface FuzzStats {
  runs: number;
  accepted: number;
  refused: number;
  ms: number;
}

/** Runs `target` on `runs` generated inputs; each must return or throw a UserError, within CASE_MS. */
export function fuzz<T>(arb: fc.Arbitrary<T>, runs: number, target: (input: T) => unknown): FuzzStats {
  const stats: FuzzStats = { runs: Math.round(runs * SCALE), accepted: 0, refused: 0, ms: 0 };
  const t0 = performance.now();
  fc.assert(
    fc.property(arb, (input) => {
      const c0 = performance.now();
      try {
        target(input);
        stats.accepted++;
      } catch (e) {
        check(e, () => preview(input));
        stats.refused++;
      }
      const took = performance.now() - c0;
      assert.ok(took < CASE_MS, `one case took ${took.toFixed(0)} ms (input ${preview(input)})`);
    }),
    { numRuns: stats.runs, seed: SEED, endOnFailure: true, includeErrorInReport: true },
  );
  stats.ms = performance.now() - t0;
  return stats;
}

/** fuzz() for async targets (readers over files). */
export async function fuzzAsync<T>(arb: fc.Arbitrary<T>, runs: number, target: (input: T) => Promise<unknown>): Promise<FuzzStats> {
  const stats: FuzzStats = { runs: Math.round(runs * SCALE), accepted: 0, refused: 0, ms: 0 };
  const t0 = performance.now();
  await fc.assert(
    fc.asyncProperty(arb, async (input) => {
      const c0 = performance.now();
      try {
        await target(input);
        stats.accepted++;
      } catch (e) {
        check(e, () => preview(input));
        stats.refused++;
      }
      const took = performance.now() - c0;
      assert.ok(took < CASE_MS, `one case took ${took.toFixed(0)} ms (input ${preview(input)})`);
    }),
    { numRuns: stats.runs, seed: SEED, endOnFailure: true, includeErrorInReport: true },
  );
  stats.ms = performance.now() - t0;
  return stats;
}

/** One line per target for the test log: how many cases, how many accepted / refused, and the time. */
export function report(name: string, s: FuzzStats): void {
  console.log(`# fuzz ${name}: ${s.runs} cases (${s.accepted} accepted, ${s.refused} refused) in ${(s.ms / 1000).toFixed(2)} s`);
}

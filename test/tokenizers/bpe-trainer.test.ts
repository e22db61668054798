// BPE trainer: incremental pair counts give the same merges as a full recount per merge; vocabulary size,
// min_frequency and special tokens are respected; the trained tokenizer round-trips text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { countPreTokens, trainBpe } from '../../src/tokenizers/bpe-trainer.js';
import { haveData, shakespearePath } from './fixtures.js';

const skip = haveData ? false : 'shared data not found (set LMFORGE_DATA)';

/** Reference: recount every pair from scratch before each merge (slow, obvious). */
function naiveMerges(counts: Map<string, number>, merges: number, minFrequency: number): Array<[number, number]> {
  let words = [...counts].map(([w, c]) => ({ syms: Array.from(new TextEncoder().encode(w)), c }));
  const out: Array<[number, number]> = [];
  for (let step = 0; step < merges; step++) {
    const pc = new Map<number, number>();
    for (const { syms, c } of words) for (let i = 0; i + 1 < syms.length; i++) {
      const k = (syms[i] as number) * 2097152 + (syms[i + 1] as number);
      pc.set(k, (pc.get(k) ?? 0) + c);
    }
    let best = -1;
    let bestCount = 0;
    for (const [k, c] of pc) if (c > bestCount || (c === bestCount && k < best)) [best, bestCount] = [k, c];
    if (best < 0 || bestCount < minFrequency) break;
    const a = Math.floor(best / 2097152);
    const b = best % 2097152;
    const id = 256 + out.length;
    out.push([a, b]);
    words = words.map(({ syms, c }) => {
      const n: number[] = [];
      for (let i = 0; i < syms.length; i++) {
        if (i + 1 < syms.length && syms[i] === a && syms[i + 1] === b) {
          n.push(id);
          i++;
        } else n.push(syms[i] as number);
      }
      return { syms: n, c };
    });
  }
  return out;
}

test('incremental pair counting gives the same merges as a full recount', { skip }, () => {
  const counts = new Map<string, number>();
  countPreTokens(readFileSync(shakespearePath, 'utf8').slice(0, 60_000), counts);
  const tok = trainBpe(counts, { vocabSize: 256 + 200, minFrequency: 2 });
  const ref = naiveMerges(counts, 200, 2);
  assert.deepEqual(tok.merges.map((m) => [m.left, m.right]), ref);
});

test('trained tokenizer: size, specials, min_frequency and lossless round trip', { skip }, () => {
  const text = readFileSync(shakespearePath, 'utf8');
  const counts = new Map<string, number>();
  countPreTokens(text.slice(0, 500_000), counts);
  const tok = trainBpe(counts, { vocabSize: 2000, specialTokens: ['<|endoftext|>', '<|pad|>'] });
  assert.equal(tok.vocabSize, 2000);
  assert.equal(tok.specialTokens.get('<|pad|>'), 1999);
  const held = text.slice(1_000_000, 1_050_000);
  const ids = tok.encode(held);
  assert.equal(tok.decode(ids), held);
  assert.ok(ids.length / Buffer.byteLength(held) < 0.4, `compression ${ids.length / held.length}`);
  assert.deepEqual(tok.encode('a<|pad|>', { allowedSpecial: 'all' }).slice(-1), [1999]);
  // A high min_frequency stops merging early.
  const few = trainBpe(counts, { vocabSize: 5000, minFrequency: 2000 });
  assert.ok(few.merges.length < 200 && few.merges.length > 10, `merges ${few.merges.length}`);
  assert.throws(() => trainBpe(counts, { vocabSize: 100 }), /vocabSize must be an integer ≥ 256/);
});

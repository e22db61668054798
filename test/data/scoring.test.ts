import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { KneserNeyLM, modifiedDiscounts } from '../../src/data/scoring/kneser-ney.js';
import { KneserNeyScorer, ScoreFilter, createScorer, quantile, registerScorer, scorerKinds } from '../../src/data/scoring/scorer.js';

function wikiParagraphs(): string[] {
  const j = JSON.parse(gunzipSync(readFileSync('/work/shared/data/xquad-en/xquad.en.json.gz')).toString()) as {
    data: { paragraphs: { context: string }[] }[];
  };
  return j.data.flatMap((a) => a.paragraphs.map((p) => p.context));
}

test('modified Kneser-Ney: hand-computed probabilities on a two-sentence corpus', () => {
  const lm = KneserNeyLM.train(['a b', 'a c'], 2);
  // Continuation counts a=1, b=1, c=1, </s>=2 (total 5); fallback discounts 0.5/1/1.5; V=5 with <unk>.
  const p = (w: string, h: string[]): number => Math.pow(10, lm.logProb(w, h));
  assert.ok(Math.abs(p('b', []) - 0.2) < 1e-12);
  assert.ok(Math.abs(p('</s>', []) - 0.3) < 1e-12);
  assert.ok(Math.abs(p('zzz', []) - 0.1) < 1e-12);
  assert.ok(Math.abs(p('b', ['a']) - 0.35) < 1e-12);
  assert.ok(Math.abs(p('</s>', ['a']) - 0.15) < 1e-12);
  // Count-of-counts estimate (Chen & Goodman): n = 10, 5, 3, 2.
  const Y = 10 / 20;
  const d = modifiedDiscounts([10, 5, 3, 2]);
  assert.ok(Math.abs(d[0] - (1 - 2 * Y * 0.5)) < 1e-12);
  assert.ok(Math.abs(d[1] - (2 - 3 * Y * 0.6)) < 1e-12);
  assert.ok(Math.abs(d[2] - (3 - 4 * Y * (2 / 3))) < 1e-12);
});

test('Kneser-Ney on Wikipedia paragraphs: distributions sum to 1, held-out prose beats shuffled words, save/load', async () => {
  const paras = wikiParagraphs();
  const train = paras.slice(0, 200).flatMap((p) => p.split(/(?<=\.) /));
  const lm = KneserNeyLM.train(train, 4);
  const vocab = new Set(train.flatMap((l) => l.toLowerCase().match(/[\p{L}\p{N}\p{M}]+(?:['’-][\p{L}\p{N}\p{M}]+)*|[^\s\p{L}\p{N}\p{M}]/gu) ?? []));
  const words = [...vocab, '</s>', '<unk>'];
  for (const h of [[], ['the'], ['<s>', 'in'], ['of', 'the', 'city']]) {
    let sum = 0;
    for (const w of words) sum += Math.pow(10, lm.logProb(w, h));
    assert.ok(Math.abs(sum - 1) < 1e-6, `history [${h.join(' ')}] sums to ${sum}`);
  }
  const heldOut = paras.slice(200, 240);
  let better = 0;
  for (const p of heldOut) {
    const shuffled = p.split(' ').sort().join(' ');
    if (lm.perplexity(p) < lm.perplexity(shuffled)) better++;
  }
  assert.equal(better, heldOut.length);
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-kn-'));
  const path = join(dir, 'kn.json');
  lm.save(path);
  const back = KneserNeyLM.load(path);
  assert.equal(back.perplexity(heldOut[0]!), lm.perplexity(heldOut[0]!));
  writeFileSync(join(dir, 'bad.json'), '{"magic":"x"}');
  assert.throws(() => KneserNeyLM.load(join(dir, 'bad.json')), /bad\.json: not a Kneser-Ney model/);
  assert.ok(scorerKinds().includes('kneser-ney'));
  assert.equal((await createScorer('kneser-ney', { model: path })).score(heldOut[0]!), lm.perplexity(heldOut[0]!));
  await assert.rejects(createScorer('gpt', {}), /unknown scorer "gpt"/);
  // A neural scorer plugs in by registering a kind; the pipeline then builds it from `scorer: {kind, model}`.
  registerScorer('test-length', (o) => ({ name: 'len', lowerIsBetter: false, score: (t: string) => t.length * Number(o.scale ?? 1) }));
  assert.equal((await createScorer('test-length', { scale: 2 })).score('abc'), 6);
  rmSync(dir, { recursive: true });
});

test('ScoreFilter: score kept as metadata, threshold cut exactly at the score; quantile', () => {
  const lm = KneserNeyLM.train(['the cat sat on the mat .', 'the dog sat on the rug .'], 3);
  const scorer = new KneserNeyScorer(lm);
  const text = 'the cat sat on the rug .';
  const s = scorer.score(text);
  const d = { id: 'x', text, metadata: {} as Record<string, unknown> };
  assert.equal(new ScoreFilter(scorer, s).apply(d).keep, true);
  assert.equal(typeof d.metadata.ccnet_perplexity, 'number');
  const r = new ScoreFilter(scorer, s * 0.999).apply(d);
  assert.equal(r.keep, false);
  if (!r.keep) assert.equal(r.reason, 'ccnet_perplexity_above_threshold');
  assert.equal(new ScoreFilter(scorer, null).apply(d).keep, true);
  assert.equal(quantile([5, 1, 3, 2, 4], 0.5), 3);
  assert.equal(quantile([1, 2], 0.25), 1.25);
});

// The template probe against a scripted model whose preferences are known, so every figure can be checked by hand;
// the probe file validator; and the probe as a harness task (lmforge eval's path) on the shipped config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { bootstrapInterval, fillTemplate, parseBiasProbe, scoreBiasProbe, type BiasProbe } from '../../src/eval/bias-probe.js';
import { evaluateTask } from '../../src/eval/harness.js';
import type { LanguageModel, LoglikelihoodRequest } from '../../src/eval/model.js';
import { builtinTaskDir, loadTask } from '../../src/eval/tasks.js';
import { UserError } from '../../src/util/errors.js';

/** log p(sentence) = lean(word, pronoun) from a table; every other sentence scores 0. */
function scripted(lean: (sentence: string) => number): LanguageModel {
  return {
    maxLength: 64,
    identity: () => ({ kind: 'scripted' }),
    loglikelihood: (rs: readonly LoglikelihoodRequest[]) => rs.map((r) => ({ logprob: lean(r.continuation), isGreedy: false, tokens: 1 })),
    loglikelihoodRolling: () => [],
    generateUntil: () => [],
    sampleUntil: () => [],
  };
}

const PROBE: BiasProbe = parseBiasProbe({
  probe: 'toy',
  groups: { male: { pronoun: 'he' }, female: { pronoun: 'she' } },
  templates: ['The {occupation} said {pronoun} left.', '{pronoun} is a {occupation}.'],
  attributes: { m: ['smith', 'miner'], f: ['nurse', 'maid'] },
  stereotype: { m: 'male', f: 'female' },
  baseline: ['person'],
}, 'toy.json');

test('a model with a stereotyped lean of 1 nat plus a generic lean of 0.5 toward "he" scores exactly 1', () => {
  const male = new Set(['smith', 'miner']);
  const model = scripted((s) => {
    const he = /\bhe\b/i.test(s);
    const occ = /smith|miner|nurse|maid|person/.exec(s)![0];
    const stereo = occ === 'person' ? 0 : male.has(occ) === he ? 0.5 : -0.5; // d = ±1 for occupations
    return (he ? 0.5 : 0) + stereo;
  });
  const r = scoreBiasProbe(PROBE, model);
  assert.equal(r.baseline_lean, 0.5);
  assert.deepEqual(r.attributes.map((a) => [a.attribute, a.sign, a.bias]), [['smith', 1, 1], ['miner', 1, 1], ['nurse', -1, -1], ['maid', -1, -1]]);
  assert.equal(r.stereotype_score!.value, 1);
  assert.equal(r.stereotype_score!.lo, 1);
  assert.equal(r.mean_abs_bias!.value, 1);
  assert.equal(r.categories.m!.value, 1);
  assert.equal(r.categories.f!.value, -1);
  assert.equal(r.sentences, 2 * 5 * 2);
});

test('a model with only the generic lean scores 0, and its interval contains 0', () => {
  const r = scoreBiasProbe(PROBE, scripted((s) => (/\bhe\b/i.test(s) ? 0.7 : 0)));
  assert.equal(r.stereotype_score!.value, 0);
  assert.ok(r.stereotype_score!.lo <= 0 && r.stereotype_score!.hi >= 0);
});

test('templates are filled with the group words, capitalized at the start', () => {
  assert.equal(fillTemplate('{pronoun} is a {occupation}.', { pronoun: 'she', occupation: 'nurse' }), 'She is a nurse.');
});

test('the percentile bootstrap interval covers the mean and narrows with more items', () => {
  const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const few = bootstrapInterval([1, 2, 3, 4], mean);
  const many = bootstrapInterval(Array.from({ length: 400 }, (_, i) => 1 + (i % 4)), mean);
  assert.equal(few.value, 2.5);
  assert.ok(few.lo < 2.5 && few.hi > 2.5);
  assert.ok(many.hi - many.lo < (few.hi - few.lo) / 4);
});

test('bad probe files are refused naming the field', () => {
  const base = { probe: 'x', groups: { a: { p: 'he' }, b: { p: 'she' } }, templates: ['The {occupation} {p}'], attributes: { c: ['cook'] }, stereotype: { c: 'a' }, baseline: ['person'] };
  const bad = (patch: Record<string, unknown>, want: RegExp): void =>
    assert.throws(() => parseBiasProbe({ ...base, ...patch }, 'p.json'), (e: Error) => e instanceof UserError && e.message.startsWith('p.json') && want.test(e.message));
  bad({ templates: ['The {job} {p}'] }, /templates\[0\] uses \{job\}/);
  bad({ stereotype: { c: 'men' } }, /stereotype\.c/);
  bad({ groups: { a: { p: 'he' } } }, /exactly two groups/);
  bad({ groups: { a: { p: 'he' }, b: { q: 'she' } } }, /same slots/);
  bad({ baseline: [] }, /baseline/);
  bad({ extra: 1 }, /unknown field extra/);
});

test('gender_occupation runs as an eval task from the shipped config and reports per category', async () => {
  const spec = loadTask('gender_occupation', [builtinTaskDir()]);
  assert.equal(spec.type, 'bias_probe');
  // A model that prefers "he"/"his"/"him" for every occupation by 1 nat but not for the neutral fillers.
  const model = scripted((s) => (/\b(he|his|him)\b/i.test(s) && !/person|stranger|visitor/.test(s) ? 1 : 0));
  const r = await evaluateTask(spec, model, { dataDir: join(builtinTaskDir(), '..'), source: 'gender_occupation' });
  assert.equal(r.subsets!.male_stereotyped!.mean_bias!.value, 1);
  assert.equal(r.subsets!.female_stereotyped!.mean_bias!.value, 1);
  assert.ok(Math.abs(r.metrics.stereotype_score!.value) < 1e-12, 'leaning the same way for both categories is no stereotype');
  assert.equal(r.metrics.mean_abs_bias!.value, 1);
  assert.ok(r.n >= 32);
});

test('gender_pairs: sentence pairs reported overall and per category with intervals', async () => {
  const spec = loadTask('gender_pairs', [builtinTaskDir()]);
  // Prefers by 2 nats every sentence whose first gendered word is male.
  const model = scripted((s) => (/^(he|his|father|boy|husband)$/i.test(/\b(he|his|father|boy|husband|she|her|mother|girl|wife)\b/i.exec(s)?.[1] ?? '') ? 2 : 0));
  const r = await evaluateTask(spec, model, { dataDir: '.', source: 'gender_pairs' });
  assert.equal(r.n, 12);
  assert.ok(r.metrics.pct_stereotype!.value > 0 && r.metrics.pct_stereotype!.value < 1);
  assert.equal(r.subsetSizes!['pairs/occupation'], 6);
  assert.equal(r.subsets!['pairs/occupation']!.pct_stereotype!.value, 0.5, 'three male-stereotyped pairs of six');
  assert.equal(r.subsets!['pairs/occupation']!.likelihood_diff!.value, 0);
});

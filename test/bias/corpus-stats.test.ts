// The corpus side: co-occurrence counts, rates, PMI and the stereotype lean on a corpus small enough to count by
// hand; and the `lmforge bias-stats` / `lmforge cda` commands on real files, with their refusals of bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CooccurrenceCounter } from '../../src/data/bias-stats.js';
import { lmforge, refused } from '../cli/run-cli.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SPEC = { groups: { male: ['he', 'his'], female: ['she', 'her'] }, attributes: { m: ['smith'], f: ['nurse'] }, stereotype: { m: 'male', f: 'female' } };

test('counts per sentence, P(group | attribute), PMI and the lean against the corpus odds', () => {
  const c = new CooccurrenceCounter(SPEC);
  c.add('The smith said he was late. The smith lost his hat! The nurse said she left; The nurse and he met.');
  c.add('The Smith said she came.\n\nNobody here');
  const r = c.report();
  assert.equal(r.sentences, 6);
  assert.deepEqual(r.groupSentences, { male: 3, female: 2 });
  const smith = r.attributes.find((a) => a.attribute === 'smith')!;
  assert.deepEqual([smith.n, smith.with.male, smith.with.female], [3, 2, 1]);
  assert.equal(smith.rate.male, 2 / 3);
  // PMI(smith, male) = log(n(a,g)·N / (n(a)·n(g))) = log(2·6 / (3·3))
  assert.ok(Math.abs(smith.pmi.male! - Math.log(12 / 9)) < 1e-12);
  // lean = log((2 + ½)/(1 + ½)) − log(3/2)
  assert.ok(Math.abs(smith.lean! - (Math.log(2.5 / 1.5) - Math.log(3 / 2))) < 1e-12);
  const nurse = r.attributes.find((a) => a.attribute === 'nurse')!;
  assert.deepEqual([nurse.n, nurse.with.male, nurse.with.female], [2, 1, 1]);
  assert.equal(r.categories.m!.rate, 2 / 3);
  assert.ok(Math.abs(r.stereotype_lean! - (smith.lean! - nurse.lean!) / 2) < 1e-12);
});

test('an attribute never seen with a group word has no rate, PMI or lean and does not count in the lean', () => {
  const c = new CooccurrenceCounter(SPEC);
  c.add('The smith said he was late. A nurse slept.');
  const r = c.report();
  const nurse = r.attributes.find((a) => a.attribute === 'nurse')!;
  assert.deepEqual([nurse.n, nurse.rate.male, nurse.pmi.female, nurse.lean], [1, null, null, null]);
  assert.equal(r.stereotype_lean, r.attributes.find((a) => a.attribute === 'smith')!.lean);
});

test('lmforge bias-stats and lmforge cda on real files; bad input refused in one line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bias-cli-'));
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, 'The nurse said that she was tired.\nThe nurse said that she was late.\nThe mechanic said that he was ready.\n');
  const probe = join(root, 'configs/bias/gender-occupation.json');
  const stats = lmforge('bias-stats', '--input', corpus, '--probe', probe, '--output', join(dir, 'stats.json'));
  assert.equal(stats.code, 0, stats.stderr);
  const report = JSON.parse(readFileSync(join(dir, 'stats.json'), 'utf8')) as { sentences: number; categories: Record<string, { rate: number }> };
  assert.equal(report.sentences, 3);
  assert.equal(report.categories.female_stereotyped!.rate, 0);
  assert.equal(report.categories.male_stereotyped!.rate, 1);
  const out = join(dir, 'cda.txt');
  const cda = lmforge('cda', '--input', corpus, '--output', out, '--mode', 'duplicate', '--unit', 'line');
  assert.equal(cda.code, 0, cda.stderr);
  assert.equal(readFileSync(out, 'utf8').split('\n').filter((l) => l !== '').length, 6);
  assert.match(readFileSync(out, 'utf8'), /The nurse said that he was tired\./);
  const badProbe = join(dir, 'bad.json');
  writeFileSync(badProbe, JSON.stringify({ probe: 'x', groups: { a: { p: 'he' } } }));
  refused(lmforge('bias-stats', '--input', corpus, '--probe', badProbe), /bad\.json: field groups/);
  refused(lmforge('cda', '--input', join(dir, 'missing.txt'), '--output', out), /missing\.txt/);
  refused(lmforge('cda', '--input', corpus, '--output', out, '--mode', 'swap'), /--mode/);
  refused(lmforge('cda', '--input', corpus, '--output', out, '--probability', '2'), /--probability/);
});

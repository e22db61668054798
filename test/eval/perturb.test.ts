// The perturbation layer: each perturbation's rate over many letters (within binomial error), determinism for a seed,
// the spec parser's errors, and the harness path — inputs perturbed, answers and few-shot examples left clean, the
// clean-against-perturbed table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { caseFlips, distractor, DISTRACTORS, HOMOGLYPHS, homoglyphs, parsePerturbSpec, perturbText, typos, whitespaceNoise } from '../../src/eval/perturb.js';
import { docPerturber, inputFields } from '../../src/eval/perturb-task.js';
import { formatRobustnessTable, robustnessRows } from '../../src/eval/perturb-report.js';
import { runTask } from '../../src/eval/harness.js';
import type { LanguageModel } from '../../src/eval/model.js';
import { parseTaskSpec } from '../../src/eval/task-spec.js';
import { mulberry32 } from '../../src/util/mulberry32.js';
import { UserError } from '../../src/util/errors.js';
import { lmforge, refused } from '../cli/run-cli.js';

const LETTERS = 'the quick brown fox jumps over the lazy dog '.repeat(500);
const letterCount = [...LETTERS].filter((c) => /[a-z]/i.test(c)).length;

/** |observed − expected| within 4 binomial standard deviations. */
function assertRate(observed: number, n: number, p: number, what: string): void {
  const sd = Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(observed - n * p) <= 4 * sd + 1, `${what}: ${observed} of ${n}, expected about ${(n * p).toFixed(0)}`);
}

test('case flips: the flipped share of letters matches the rate', () => {
  const out = caseFlips(LETTERS, 0.1, mulberry32(3));
  assert.equal(out.length, LETTERS.length);
  const flipped = [...out].filter((c, i) => c !== LETTERS[i]).length;
  assertRate(flipped, letterCount, 0.1, 'case');
  assert.equal(out.toLowerCase(), LETTERS);
});

test('homoglyphs: only letters with a look-alike change, at the rate, to their look-alike', () => {
  const out = [...homoglyphs(LETTERS, 0.2, mulberry32(4))];
  const eligible = [...LETTERS].filter((c) => HOMOGLYPHS[c] !== undefined).length;
  let changed = 0;
  out.forEach((c, i) => {
    if (c === LETTERS[i]) return;
    changed++;
    assert.equal(c, HOMOGLYPHS[LETTERS[i]!]);
  });
  assertRate(changed, eligible, 0.2, 'homoglyph');
});

test('typos: the share of letters hit matches the rate; each edit is a swap, drop, insert or neighbour substitution', () => {
  const words = LETTERS.trim().split(' ');
  const out = typos(LETTERS, 0.05, mulberry32(5)).trim().split(' ');
  assert.equal(out.length, words.length, 'typos never touch spaces');
  let edited = 0;
  for (let i = 0; i < words.length; i++) {
    const a = words[i]!;
    const b = out[i]!;
    if (a === b) continue;
    edited++;
    assert.ok(Math.abs(a.length - b.length) <= 2, `${a} → ${b}`);
  }
  // P(word unchanged) = (1 − p)^len for independent letters (a swap that swaps equal letters aside).
  const expected = words.reduce((s, w) => s + 1 - 0.95 ** w.length, 0);
  const sd = Math.sqrt(words.reduce((s, w) => s + (1 - 0.95 ** w.length) * 0.95 ** w.length, 0));
  assert.ok(Math.abs(edited - expected) <= 4 * sd, `edited words ${edited}, expected ${expected.toFixed(0)}`);
  assert.equal(typos('abc', 0, mulberry32(1)), 'abc');
  // Rate 1 on one letter: dropped, replaced by a neighbour key (t y f h v b around g), or followed by one.
  for (let s = 0; s < 50; s++) {
    const t = typos('g', 1, mulberry32(s));
    assert.ok(t === '' || /^(g?[tyfhvb]|[tyfhvb]|)$/.test(t), JSON.stringify(t));
  }
});

test('whitespace noise: the changed share of spaces matches the rate; letters are kept in order', () => {
  const out = whitespaceNoise(LETTERS, 0.1, mulberry32(6));
  assert.equal(out.replace(/\s/g, ''), LETTERS.replace(/\s/g, ''));
  // Each hit space becomes '', '  ', '\n' or '\t': count the spaces that are no longer a single space.
  const spaces = [...LETTERS].filter((c) => c === ' ').length;
  const kept = (out.match(/(?<![ \t\n])[ ](?![ ])/g) ?? []).length;
  assertRate(spaces - kept, spaces, 0.1, 'whitespace');
});

test('distractor: rate 1 always appends one known sentence, rate 0 never', () => {
  const out = distractor('Is the sky blue?', 1, mulberry32(1));
  assert.ok(DISTRACTORS.some((d) => out === `Is the sky blue? ${d}`), out);
  assert.equal(distractor('text\n', 1, mulberry32(2)).endsWith('\n'), true, 'trailing whitespace stays at the end');
  assert.equal(distractor('Is it?', 0, mulberry32(1)), 'Is it?');
});

test('perturbText is deterministic for (seed, text) and changes with the seed', () => {
  const spec = parsePerturbSpec('typo:0.05,case:0.1,whitespace,homoglyph:0.02,distractor');
  const text = 'Which river flows through the middle of the ancient city of Cairo?';
  assert.equal(perturbText(text, spec, 1), perturbText(text, spec, 1));
  assert.notEqual(perturbText(text, spec, 1), perturbText(text, spec, 2));
  assert.notEqual(perturbText(text, spec, 1), text);
  assert.equal(perturbText(text, parsePerturbSpec('typo:0,case:0'), 1), text);
});

test('parsePerturbSpec: defaults, explicit rates and clear errors', () => {
  assert.deepEqual(parsePerturbSpec('typo:0.05,case'), [{ kind: 'typo', rate: 0.05 }, { kind: 'case', rate: 0.1 }]);
  assert.throws(() => parsePerturbSpec('typos:0.1'), (e: Error) => e instanceof UserError && /unknown perturbation "typos"/.test(e.message));
  assert.throws(() => parsePerturbSpec('typo:1.5'), /rate must be a number in \[0, 1\]/);
  assert.throws(() => parsePerturbSpec('typo:abc'), /rate must be/);
  assert.throws(() => parsePerturbSpec('case,case'), /case given twice/);
  assert.throws(() => parsePerturbSpec(''), /empty/);
});

/** Prefers the choice whose text appears in the context (a fake reader), so clean scores are perfect. */
const matcher: LanguageModel = {
  maxLength: 1024,
  identity: () => ({ kind: 'fake-matcher' }),
  loglikelihood: (reqs) => reqs.map((r) => ({ logprob: r.context.includes(r.continuation.trim()) ? 0 : -5, isGreedy: true, tokens: 1 })),
  loglikelihoodRolling: (texts) => texts.map((t) => ({ logprob: -[...t].filter((c) => c.charCodeAt(0) > 127 || /[A-Z]/.test(c)).length - t.length * 0.1, tokens: t.length })),
  generateUntil: () => [],
  sampleUntil: () => [],
};

test('harness: --perturb rewrites the scored inputs only; answers, choices and few-shot examples stay clean', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-perturb-'));
  try {
    const rows = Array.from({ length: 40 }, (_, i) => ({ passage: `The secret word of row ${i} is ${i % 2 ? 'apple' : 'river'}.`, question: 'What is the secret word', choices: ['apple', 'river'], gold: i % 2 ? 0 : 1 }));
    writeFileSync(join(dir, 'rows.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const spec = parseTaskSpec({
      task: 'secret', version: 1, type: 'multiple_choice', data: { path: 'rows.jsonl' }, fewshot: { path: 'rows.jsonl' },
      prompt: '{{passage}}\nQ: {{question}}?\nA:', choices: { field: 'choices' }, gold: { field: 'gold' }, metrics: ['acc'],
    }, 'secret.json');
    assert.deepEqual(inputFields(spec), ['passage', 'question']);
    const clean = runTask(spec, matcher, { dataDir: dir, source: 'secret', logSamples: true, numFewshot: 1 });
    const perturb = docPerturber(spec, parsePerturbSpec('typo:0.3,homoglyph:0.3,distractor'), 9);
    const noisy = runTask(spec, matcher, { dataDir: dir, source: 'secret', logSamples: true, numFewshot: 1, transformDoc: perturb });
    assert.equal(clean.metrics.acc!.value, 1);
    assert.ok(noisy.metrics.acc!.value < 0.9, `heavy noise hides the word from the matcher: acc ${noisy.metrics.acc!.value}`);
    const few = 'The secret word of row 0 is river.\nQ: What is the secret word?\nA: river\n\n';
    for (const s of noisy.samples!) {
      const context = s.context as string;
      assert.ok(context.startsWith(few), 'the few-shot example is clean');
      assert.deepEqual(s.choices, ['apple', 'river']);
      assert.ok(DISTRACTORS.some((d) => context.includes(d)), 'the distractor went after the passage');
    }
    // Same seed → same perturbed prompts.
    const again = runTask(spec, matcher, { dataDir: dir, source: 'secret', logSamples: true, numFewshot: 1, transformDoc: docPerturber(spec, parsePerturbSpec('typo:0.3,homoglyph:0.3,distractor'), 9) });
    assert.deepEqual(again.samples!.map((s) => s.context), noisy.samples!.map((s) => s.context));
    const rowsOut = robustnessRows([clean], [noisy]);
    assert.equal(rowsOut.length, 1);
    assert.equal(rowsOut[0]!.delta, noisy.metrics.acc!.value - 1);
    // Paired over items: every change is 0 or −1, so the interval is the stderr of those differences.
    const diffs = noisy.samples!.map((s, i) => (s.acc as number) - (clean.samples![i]!.acc as number));
    const m = diffs.reduce((a, b) => a + b, 0) / diffs.length;
    const se = Math.sqrt(diffs.reduce((a, b) => a + (b - m) ** 2, 0) / (diffs.length - 1) / diffs.length);
    assert.ok(rowsOut[0]!.paired);
    assert.ok(Math.abs(rowsOut[0]!.deltaCi95![0] - (m - 1.96 * se)) < 1e-12);
    const { samples: _a, ...cleanNoSamples } = clean;
    const unpaired = robustnessRows([cleanNoSamples], [noisy])[0]!;
    assert.ok(!unpaired.paired && unpaired.deltaCi95![1] - unpaired.deltaCi95![0] > 0);
    const table = formatRobustnessTable(rowsOut, 'typo:0.3', 9);
    assert.match(table, /\| secret \| acc \| 1\.0000 ± 0\.0000 \| 0\.\d{4} ± 0\.\d{4} \| -0\.\d{4} \| \[-0\.\d{4}, -0\.\d{4}\] p \|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('harness: perplexity tasks perturb their text; code tasks are refused with a clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-perturb-'));
  try {
    writeFileSync(join(dir, 'docs.jsonl'), Array.from({ length: 10 }, (_, i) => JSON.stringify({ text: `plain lower case text number ${i} `.repeat(20) })).join('\n') + '\n');
    const spec = parseTaskSpec({ task: 'ppl', version: 1, type: 'perplexity', data: { path: 'docs.jsonl' }, metrics: ['bits_per_byte'] }, 'ppl.json');
    const clean = runTask(spec, matcher, { dataDir: dir, source: 'ppl' });
    const noisy = runTask(spec, matcher, { dataDir: dir, source: 'ppl', transformDoc: docPerturber(spec, parsePerturbSpec('case:0.2'), 1) });
    assert.ok(noisy.metrics.bits_per_byte!.value > clean.metrics.bits_per_byte!.value + 0.1, `${noisy.metrics.bits_per_byte!.value} vs ${clean.metrics.bits_per_byte!.value}`);
    const pair = parseTaskSpec({ task: 'pairs', version: 1, type: 'pair_preference', data: { path: 'docs.jsonl' }, pair: { more: 'a', less: 'b', category: 'c' }, metrics: ['pct_stereotype'] }, 'pairs.json');
    const row = { fields: { a: 'He is a nurse.', b: 'She is a nurse.', c: 'gender' }, where: 'x:1', subset: '' };
    const both = docPerturber(pair, parsePerturbSpec('distractor'), 3)(row).fields as Record<string, string>;
    const added = both.a!.slice('He is a nurse. '.length);
    assert.ok(DISTRACTORS.includes(added), both.a);
    assert.equal(both.b, `She is a nurse. ${added}`, 'the same distractor after both sentences of a pair');
    assert.equal(both.c, 'gender');
    const code = parseTaskSpec({ task: 'code', version: 1, type: 'bits_per_byte', data: { path: 'x' }, metrics: ['bits_per_byte'] }, 'code.json');
    assert.throws(() => docPerturber(code, parsePerturbSpec('typo'), 1), /perturbations apply to multiple_choice, generate_until/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: a bad --perturb spec, image tasks and code tasks are refused before any model is loaded', () => {
  refused(lmforge('eval', '--model', '/nonexistent-model', '--tasks', 'arc_easy', '--perturb', 'typos:0.1'), /--perturb: unknown perturbation "typos"/);
  refused(lmforge('eval', '--model', '/nonexistent-model', '--tasks', 'arc_easy', '--perturb', 'typo:2'), /--perturb: typo:2: the rate must be a number in \[0, 1\]/);
  refused(lmforge('eval', '--model', '/nonexistent-model', '--tasks', 'stdlib-bpb', '--perturb', 'typo'), /perturbations apply to multiple_choice/);
  refused(lmforge('tokenize', '--tokenizer', 'x.json', '--input', 'x.txt', '--out', '/tmp/x', '--dropout-copies', '2'), /--dropout-copies and --dropout-seed need --dropout/);
});

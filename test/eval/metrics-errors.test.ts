// Metric arithmetic (stderr formulas, MC2, perplexities, answer normalisation and extraction) and bad input:
// a missing file, a malformed row or an unknown task gives a message naming it. Ends with `lmforge eval` end to end.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { argmax, bootstrapStderr, extractAnswer, mc2, meanStderr, normalizeNumber, normalizeSquad, perplexities } from '../../src/eval/metrics.js';
import { buildInstances, builtinTaskDir, loadTask } from '../../src/eval/tasks.js';
import { parseTaskSpec, render } from '../../src/eval/task-spec.js';
import { UserError } from '../../src/util/errors.js';

const root = join(fileURLToPath(import.meta.url), '../../../..');
const cli = join(root, 'dist/src/cli/main.js');
const fixtures = join(root, 'test/fixtures/eval');

test('stderr of a mean is the binomial formula for 0/1 scores', () => {
  const xs = [1, 0, 1, 1, 0, 1, 1, 1];
  const p = 6 / 8;
  assert.ok(Math.abs(meanStderr(xs)! - Math.sqrt((p * (1 - p)) / (xs.length - 1))) < 1e-12);
  assert.equal(meanStderr([1]), null);
  const b = bootstrapStderr(xs, (s) => s.reduce((a, x) => a + x, 0) / s.length, 2000, 3)!;
  assert.ok(Math.abs(b - Math.sqrt((p * (1 - p)) / xs.length)) < 0.03, `bootstrap ${b}`);
});

test('argmax takes the first maximum; MC2 is the normalised mass on true answers', () => {
  assert.equal(argmax([1, 3, 3, 2]), 1);
  const lls = [Math.log(0.2), Math.log(0.1), Math.log(0.3)];
  assert.ok(Math.abs(mc2(lls, [1, 1, 0]) - 0.5) < 1e-12);
  assert.ok(Math.abs(mc2([-1000, -1000.5], [1, 0]) - 1 / (1 + Math.exp(-0.5))) < 1e-12);
});

test('perplexities and bits per byte from a log-likelihood total', () => {
  const r = perplexities({ logprob: -100, words: 20, bytes: 80 });
  assert.ok(Math.abs(r.word_perplexity - Math.exp(5)) < 1e-9);
  assert.ok(Math.abs(r.byte_perplexity - Math.exp(1.25)) < 1e-9);
  assert.ok(Math.abs(r.bits_per_byte - 1.25 / Math.LN2) < 1e-12);
});

test('exact-match normalisation and answer extraction (NQ-Open, GSM8K)', () => {
  assert.equal(normalizeSquad('The  Eiffel-Tower!'), 'eiffeltower'); // SQuAD drops punctuation without a space
  assert.equal(normalizeSquad('an Apple a day'), 'apple day');
  assert.equal(normalizeNumber('$1,234.'), '1234');
  assert.equal(extractAnswer('so 3 + 4 = 7\n#### 7', '#### (\\-?[0-9\\.\\,]+)', 'first'), '7');
  assert.equal(extractAnswer('costs $12 then 1,000 total', '(-?[$0-9.,]{2,})|(-?[0-9]+)', 'last'), '1,000');
  assert.equal(extractAnswer('no digits', '#### (\\d+)', 'first'), null);
});

test('templates render fields, nested paths and filters', () => {
  const doc = { fields: { q: '  What?  ', a: ['x', 'y'] }, where: 'f:1', subset: 'high_school_physics' };
  assert.equal(render('{{q|strip}} / {{a.1}} / {{subset|spaces}}', doc), 'What? / y / high school physics');
  assert.throws(() => render('{{missing}}', doc), (e: unknown) => e instanceof UserError && /f:1: row has no field "missing"/.test(e.message));
});

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'lmforge-eval-'));
}

test('unknown task, unknown spec field, missing data file and malformed rows are named', () => {
  assert.throws(() => loadTask('mmlu_typo', [builtinTaskDir()]), (e: unknown) => e instanceof UserError && /unknown task "mmlu_typo" \(known tasks: .*arc_easy.*mmlu/.test(e.message));
  assert.throws(() => parseTaskSpec({ task: 't', version: 1, type: 'multiple_choice', data: { path: 'x' }, metrics: ['acc'], promt: '' }, 'my.json'), /my\.json: unknown field promt/);
  assert.throws(() => parseTaskSpec({ task: 't', version: 1, type: 'perplexity', data: { path: 'x' }, metrics: ['acc'] }, 'p.json'), /p\.json: field metrics must be a list of word_perplexity/);
  const dir = tmp();
  const spec = (path: string): ReturnType<typeof parseTaskSpec> =>
    parseTaskSpec({ task: 't', version: 1, type: 'multiple_choice', data: { path }, prompt: '{{q}}', choices: { field: 'choices' }, gold: { field: 'gold' }, metrics: ['acc'] }, 't.json');
  assert.throws(() => buildInstances(spec('nope.jsonl'), { dataDir: dir, numFewshot: 0, source: 't.json' }), (e: unknown) => e instanceof UserError && e.message.includes(join(dir, 'nope.jsonl')) && /file not found/.test(e.message));
  writeFileSync(join(dir, 'bad.jsonl'), '{"q": "a", "choices": ["x", "y"], "gold": 0}\n{"q": "b", "choices": ["x"\n');
  assert.throws(() => buildInstances(spec('bad.jsonl'), { dataDir: dir, numFewshot: 0, source: 't.json' }), (e: unknown) => e instanceof UserError && e.message.startsWith(`${join(dir, 'bad.jsonl')}:2: malformed JSON line`));
  writeFileSync(join(dir, 'gold.jsonl'), '{"q": "a", "choices": ["x", "y"], "gold": 0}\n{"q": "b", "choices": ["x", "y"], "gold": 5}\n');
  assert.throws(() => buildInstances(spec('gold.jsonl'), { dataDir: dir, numFewshot: 0, source: 't.json' }), (e: unknown) => e instanceof UserError && e.message === `${join(dir, 'gold.jsonl')}:2: field gold = 5, expected an index in 0..1`);
  writeFileSync(join(dir, 'rows.csv'), 'q,A,B\n"what",x,y\n"unterminated,x,y\n');
  const csvSpec = parseTaskSpec({ task: 'c', version: 1, type: 'multiple_choice', data: { path: 'rows.csv' }, prompt: '{{q}}', choices: { literal: ['A', 'B'] }, gold: { field: 'A', map: { x: 0 } }, metrics: ['acc'] }, 'c.json');
  assert.throws(() => buildInstances(csvSpec, { dataDir: dir, numFewshot: 0, source: 'c.json' }), (e: unknown) => e instanceof UserError && e.message.startsWith(`${join(dir, 'rows.csv')}: malformed CSV`));
  assert.throws(() => buildInstances(loadTask('hellaswag', [builtinTaskDir()]), { dataDir: dir, numFewshot: 0, source: 'hellaswag' }), /hellaswag_val_first_half\.jsonl: file not found/);
});

test('lmforge eval: a user task file, the table, the JSON report with model identity, per-sample logs, clear errors', () => {
  const dir = tmp();
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data', 'colors.jsonl'), ['{"q": "The sky is", "opts": ["blue", "green"], "a": 0}', '{"q": "Grass is", "opts": ["blue", "green"], "a": 1}', '{"q": "Snow is", "opts": ["white", "black"], "a": 0}'].join('\n') + '\n');
  const task = { task: 'colors', version: 2, type: 'multiple_choice', data: { path: 'colors.jsonl' }, prompt: 'Q: {{q}}\nA:', choices: { field: 'opts' }, gold: { field: 'a' }, metrics: ['acc', 'acc_norm'] };
  mkdirSync(join(dir, 'tasks'));
  writeFileSync(join(dir, 'tasks', 'colors.json'), JSON.stringify(task));
  const out = join(dir, 'report.json');
  const args = [cli, 'eval', '--model', join(fixtures, 'model'), '--tokenizer', join(fixtures, 'tokenizer-bpe512.json'), '--data-dir', join(dir, 'data'), '--task-dir', join(dir, 'tasks'), '--threads', '1'];
  const r = spawnSync(process.execPath, [...args, '--tasks', 'colors', '--limit', '2', '--output', out, '--log-samples'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\|Tasks\s*\|Version\|n-shot\|Metric\s*\|\s*Value\|\s*\|Stderr\|/);
  assert.match(r.stdout, /\|colors\s*\|2\s*\|0\s*\|acc\s*\|/);
  const report = JSON.parse(readFileSync(out, 'utf8')) as { model: { kind: string; weights_sha256: string; config: { n_layer: number } }; config: { limit: number }; results: { task: string; n: number; metrics: Record<string, { value: number; stderr: number }> }[] };
  assert.equal(report.model.kind, 'lmforge-gpt');
  assert.match(report.model.weights_sha256, /^[0-9a-f]{64}$/);
  assert.equal(report.model.config.n_layer, 2);
  assert.equal(report.config.limit, 2);
  assert.equal(report.results[0]!.n, 2);
  assert.ok(['acc', 'acc_norm'].every((m) => typeof report.results[0]!.metrics[m]!.stderr === 'number'));
  const samples = readFileSync(join(dir, 'report.samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { context: string; loglikelihoods: number[] });
  assert.equal(samples.length, 2);
  assert.equal(samples[0]!.context, 'Q: The sky is\nA:');
  assert.equal(samples[0]!.loglikelihoods.length, 2);
  const bad = spawnSync(process.execPath, [...args, '--tasks', 'colours'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^error: unknown task "colours" \(known tasks: .*colors/);
  const noModel = spawnSync(process.execPath, [cli, 'eval', '--model', join(dir, 'nothing'), '--tasks', 'colors', '--task-dir', join(dir, 'tasks')], { encoding: 'utf8' });
  assert.equal(noModel.status, 1);
  assert.match(noModel.stderr, /nothing/);
});

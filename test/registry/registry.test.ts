// The run registry on small hand-made run directories: registering, versions with their lineage and changes, tags,
// evaluation reports, feedback, references, and a rebuild from the files that gives back the same database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry, findRunDirs, parseVersionRef } from '../../src/registry/registry.js';
import * as files from '../../src/registry/run-files.js';
import { META_FILE, TRAIN_CONFIG_FILE } from '../../src/train/run-dir.js';
import { METRICS_FILE } from '../../src/train/metrics.js';
import { WEIGHTS_FILE } from '../../src/models/gpt-io.js';
import { ADAPTER_WEIGHTS_FILE } from '../../src/models/lora-io.js';
import { UserError } from '../../src/util/errors.js';
import { writeProvenance } from '../../src/util/provenance.js';
import { lmforge } from '../cli/run-cli.js';

function makeData(dir: string, text: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'train.bin'), text);
  writeFileSync(join(dir, 'val.bin'), text.slice(0, 4));
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({ vocab_size: 8, tokenizer: { type: 'char' } }));
}

/** A finished run directory as `lmforge train` leaves it (tiny stand-in files). */
function makeRun(dir: string, opts: { n_layer: number; lr: number; dataDir: string; val: number[]; commit?: string }): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, TRAIN_CONFIG_FILE), JSON.stringify({ out_dir: dir, seed: 1, data: { dir: opts.dataDir, batch_size: 4 }, model: { n_layer: opts.n_layer, n_embd: 16 }, optim: { lr: opts.lr } }));
  writeFileSync(join(dir, META_FILE), JSON.stringify({ vocab_size: 8, tokenizer: { type: 'char' } }));
  writeFileSync(join(dir, METRICS_FILE), opts.val.map((v, i) => JSON.stringify({ step: i * 10, train_loss: v + 0.1, val_loss: v }) + '\n').join('') + JSON.stringify({ step: 5, loss: 3, tokens_per_s: 1234, mfu: 0.1 }) + '\n{"step": 7, "lo');
  writeFileSync(join(dir, WEIGHTS_FILE), `weights of ${dir}`);
  if (opts.commit) {
    writeProvenance(dir, {
      lmforge_provenance: 1, lmforge_version: '0.1.0', code: { commit: opts.commit, dirty: false }, started: '2026-01-01T00:00:00.000Z', finished: '2026-01-01T00:01:00.000Z',
      wall_s: 60, cpu: 'test cpu', resumed: false, data: { dir: opts.dataDir, files: { 'train.bin': { bytes: 1, sha256: opts.commit.repeat(2) } } },
      infra: { peak_flops: 1e11, peak_source: 'config', flops_per_token: 100, tokens: 1000, train_s: 1, mfu: 0.5, energy_j: 3600, energy_source: 'cpu-time-model', energy_detail: {}, co2_g: 0.4, grid_g_per_kwh: 400 },
    });
  }
  return dir;
}

function evalReport(acc: number): unknown {
  return { lmforge_eval: 1, created: new Date().toISOString(), model: {}, config: {}, results: [{ task: 'hellaswag', version: 1, nShot: 0, n: 100, metrics: { acc: { value: acc, stderr: 0.05 }, acc_norm: { value: acc + 0.01, stderr: 0.05 } }, seconds: 1 }] };
}

test("the registry's file names are the run directory's own", () => {
  assert.equal(files.TRAIN_CONFIG_FILE, TRAIN_CONFIG_FILE);
  assert.equal(files.META_FILE, META_FILE);
  assert.equal(files.METRICS_FILE, METRICS_FILE);
  assert.deepEqual([...files.RESULT_FILES], [WEIGHTS_FILE, ADAPTER_WEIGHTS_FILE]);
});

test('registry: runs, versions with lineage and changes, tags, evals, feedback; rebuild from the files gives them back', () => {
  const root = mkdtempSync(join(tmpdir(), 'lmf-reg-'));
  const dbPath = join(root, 'runs', 'registry.sqlite');
  const dataA = join(root, 'data-a');
  const dataB = join(root, 'data-b');
  makeData(dataA, 'abcdefgh');
  makeData(dataB, 'abcdefgh!');
  const a = makeRun(join(root, 'runs', 'a'), { n_layer: 2, lr: 1e-3, dataDir: dataA, val: [3, 2.5, 2.6] });
  const b = makeRun(join(root, 'runs', 'nested', 'b'), { n_layer: 4, lr: 1e-3, dataDir: dataB, val: [3, 2.2] });
  const c = makeRun(join(root, 'runs', 'c'), { n_layer: 4, lr: 3e-4, dataDir: dataB, val: [2.1], commit: 'abc123' });
  const reg = Registry.open(dbPath);
  try {
    const ra = reg.registerRun(a);
    assert.equal(ra.name, 'a');
    assert.equal(ra.complete, true);
    assert.deepEqual({ steps: ra.metrics.steps, val: ra.metrics.val_loss, best: ra.metrics.best_val_loss, tps: ra.metrics.tokens_per_s, records: ra.metrics.records }, { steps: 20, val: 2.6, best: 2.5, tps: 1234, records: 4 }, 'the torn last line is skipped');
    assert.equal(ra.data.taken_at, 'registration');
    assert.equal(ra.data.files['train.bin']?.bytes, 8);
    const art = reg.artifacts(a).find((x) => x.file === WEIGHTS_FILE);
    assert.match(art?.sha256 ?? '', /^[0-9a-f]{64}$/);

    // Versions: v1 has no parent; v2's parent is v1 with the config and data changes; a run is one version.
    const v1 = reg.createVersion(a, 'shake', { note: 'char baseline' });
    assert.equal(v1.id, 'shake@v1');
    assert.equal(v1.parent, null);
    const v2 = reg.createVersion(b, 'shake');
    assert.equal(v2.id, 'shake@v2');
    assert.equal(v2.parent, 'shake@v1');
    assert.deepEqual(v2.changes?.config, [{ key: 'data.dir', from: dataA, to: dataB }, { key: 'model.n_layer', from: 2, to: 4 }], 'out_dir is not a change');
    assert.deepEqual(v2.changes?.data.map((d) => d.file), ['train.bin']);
    assert.throws(() => reg.createVersion(b, 'shake'), (e: unknown) => e instanceof UserError && /already version shake@v2/.test(e.message));
    const v3 = reg.createVersion(c, 'shake', { parent: 'shake@v1' });
    assert.equal(v3.parent, 'shake@v1');
    assert.deepEqual(v3.changes?.code, { from: null, to: 'abc123' });
    assert.deepEqual(JSON.parse(readFileSync(join(c, files.VERSION_FILE), 'utf8')).id, 'shake@v3', 'the version is written to the run');
    assert.deepEqual(reg.lineage('shake@v3').ancestors.map((v) => v.id), ['shake@v3', 'shake@v1']);
    assert.deepEqual(reg.lineage('shake@v1').children.map((v) => v.id), ['shake@v2', 'shake@v3']);
    assert.equal(reg.resolve('shake@latest').run.path, c);
    assert.equal(reg.resolve('shake').version?.id, 'shake@v3');
    assert.equal(reg.resolve('b').run.path, b);
    assert.equal(reg.run(c).infra?.energy_j, 3600);

    // Tags, evals, feedback; then a diff.
    assert.deepEqual(reg.tag('shake@v2', ['production', 'baseline']), ['baseline', 'production']);
    assert.deepEqual(reg.tag('production', ['baseline'], true), ['production']);
    assert.equal(reg.resolve('production').run.path, b);
    reg.addEvalReport('shake@v1', evalReport(0.3), 'hs.json');
    reg.addEvalReport('shake@v2', evalReport(0.4), 'hs.json');
    assert.ok(existsSync(join(b, 'evals', 'hs.json')));
    reg.addFeedback({ target: 'shake@v2', rating: 1, comment: 'good', prompt: 'hi', response: 'hello' });
    reg.addFeedback({ target: 'production', rating: 'down', meta: { response_id: 'chatcmpl-1' } });
    reg.addFeedback({ target: 'some-served-model', rating: 1 });
    assert.throws(() => reg.addFeedback({ target: 'x', rating: 0 as 1 }), /expected 1 \(thumbs up\) or -1/);
    assert.equal(reg.feedback(b).length, 2);
    assert.deepEqual(reg.feedbackCounts().find((f) => f.target === b), { target: b, up: 1, down: 1 });
    const d = reg.diff('shake@v1', 'shake@v2');
    assert.deepEqual(d.evals.find((e) => e.metric === 'acc'), { task: 'hellaswag', metric: 'acc', a: 0.3, b: 0.4, a_stderr: 0.05, b_stderr: 0.05 });
    assert.equal(d.metrics.find((m) => m.key === 'val_loss')?.b, 2.2);
    assert.throws(() => reg.resolve('nothing-here'), (e: unknown) => e instanceof UserError && /no such run or version/.test(e.message));
    assert.throws(() => reg.resolve('shake@v9'), /no such model version \(shake has shake@v1, shake@v2, shake@v3\)/);
  } finally {
    reg.close();
  }
  const before = snapshot(dbPath);
  // The database can be thrown away: rebuild reads the same back from the run directories.
  rmSync(dbPath);
  assert.deepEqual(findRunDirs(join(root, 'runs')).sort(), [a, c, b].sort());
  const counts = Registry.rebuild(dbPath);
  assert.deepEqual({ ...counts, skipped: counts.skipped.length }, { runs: 3, versions: 3, evals: 4, feedback: 3, skipped: 0 });
  assert.deepEqual(snapshot(dbPath), before);
  rmSync(root, { recursive: true });
});

/** What a database holds, without the registration times. */
function snapshot(dbPath: string): unknown {
  const reg = Registry.open(dbPath);
  try {
    const runs = reg.listRuns().map(({ registered_at: _r, ...r }) => r).sort((x, y) => x.path.localeCompare(y.path));
    return {
      runs,
      versions: reg.listVersions(),
      evals: runs.flatMap((r) => reg.evals(r.path)),
      feedback: reg.feedback().sort((x, y) => x.uid.localeCompare(y.uid)),
      artifacts: runs.flatMap((r) => reg.artifacts(r.path)),
    };
  } finally {
    reg.close();
  }
}

test('registry: parseVersionRef and bad references', () => {
  assert.deepEqual(parseVersionRef('shake@v12'), { name: 'shake', number: 12 });
  assert.deepEqual(parseVersionRef('shake@latest'), { name: 'shake', number: 'latest' });
  assert.equal(parseVersionRef('shake'), null);
  assert.equal(parseVersionRef('@v1'), null);
});

test('registry: two processes taking the next version at once get v1 and v2', async () => {
  const root = mkdtempSync(join(tmpdir(), 'lmf-reg-'));
  const data = join(root, 'data');
  makeData(data, 'abcd');
  const dbPath = join(root, 'registry.sqlite');
  const runs = [0, 1].map((i) => makeRun(join(root, `r${i}`), { n_layer: i + 1, lr: 1e-3, dataDir: data, val: [2] }));
  const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
  const outs = await Promise.all(runs.map((r) => new Promise<string>((res, rej) => {
    const p = spawn(process.execPath, [main, 'registry', '--registry', dbPath, 'register', r, '--name', 'm'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (x: Buffer) => (out += x.toString()));
    p.stderr.on('data', (x: Buffer) => (out += x.toString()));
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(out))));
  })));
  assert.deepEqual(outs.map((o) => /as (m@v\d)/.exec(o)?.[1]).sort(), ['m@v1', 'm@v2']);
  rmSync(root, { recursive: true });
});

test('lmforge registry: list, show, diff, lineage, tag and refusals from the command line', () => {
  const root = mkdtempSync(join(tmpdir(), 'lmf-reg-'));
  const data = join(root, 'data');
  makeData(data, 'abcd');
  const db = join(root, 'registry.sqlite');
  const a = makeRun(join(root, 'a'), { n_layer: 1, lr: 1e-3, dataDir: data, val: [2.5] });
  const b = makeRun(join(root, 'b'), { n_layer: 2, lr: 1e-3, dataDir: data, val: [2.25] });
  const r = (...args: string[]): ReturnType<typeof lmforge> => lmforge('registry', '--registry', db, ...args);
  assert.equal(r('register', a, '--name', 'tiny', '--note', 'first').code, 0);
  assert.match(r('register', b, '--name', 'tiny').stdout, /as tiny@v2 \(parent tiny@v1\)/);
  assert.match(r('list').stdout, /\| tiny@v2 +\| b +\| done/);
  assert.match(r('show', 'tiny@v2').stdout, /config `model\.n_layer`: 1 → 2/);
  assert.match(r('show', 'tiny@v2').stdout, /model\.safetensors \| \d+ +\| [0-9a-f]{64}/);
  assert.match(r('diff', 'tiny@v1', 'tiny@v2').stdout, /\| val_loss +\| 2\.5000 \| 2\.2500 \| -0\.2500/);
  assert.match(r('lineage', 'tiny@v2').stdout, /^tiny@v2 .*parent tiny@v1[\s\S]*^tiny@v1 /m);
  assert.match(r('tag', 'tiny@v1', 'baseline').stdout, /tags baseline/);
  assert.equal((JSON.parse(r('list', '--tag', 'baseline', '--json').stdout) as { path: string }[])[0]?.path, a);
  const bad = r('show', 'tiny@v7');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: tiny@v7: no such model version/);
  assert.match(r('register', join(root, 'data')).stderr, /^error: .*not a run directory of `lmforge train` \(no train-config\.json\)/);
  assert.match(r('feedback', 'tiny@v2', 'sideways').stderr, /expected up or down/);
  rmSync(root, { recursive: true });
});

test('lmforge train records its run in the registry; a registry it cannot open only warns', () => {
  const root = mkdtempSync(join(tmpdir(), 'lmf-reg-'));
  const text = join(root, 'text.txt');
  writeFileSync(text, 'To be, or not to be, that is the question.\n'.repeat(200));
  assert.equal(lmforge('prepare', '--input', text, '--out', join(root, 'data')).code, 0);
  const flags = ['--data_dir=' + join(root, 'data'), '--max_iters=4', '--n_layer=1', '--n_head=2', '--n_embd=16', '--block_size=16', '--batch_size=2', '--eval_interval=4', '--eval_iters=1', '--peak_flops=0', '--threads=1'];
  const db = join(root, 'reg.sqlite');
  const ok = lmforge('train', ...flags, `--out_dir=${join(root, 'run')}`, '--registry', db);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /registry: recorded .*run in .*reg\.sqlite/);
  const reg = Registry.open(db);
  try {
    const run = reg.run(join(root, 'run'));
    assert.equal(run.complete, true);
    assert.equal(run.metrics.steps, 4);
    assert.equal(run.data.taken_at, 'train');
    assert.equal(run.infra?.energy_source, 'cpu-time-model');
    assert.ok(reg.artifacts(run.path).some((a) => a.file === 'model.safetensors'));
  } finally {
    reg.close();
  }
  mkdirSync(join(root, 'not-a-db'));
  const warned = lmforge('train', ...flags, `--out_dir=${join(root, 'run2')}`, '--registry', join(root, 'not-a-db'));
  assert.equal(warned.code, 0, 'the run itself succeeded');
  assert.match(warned.stderr, /warning: run .*run2 not recorded in the registry \(registry .*not-a-db: is a directory/);
  assert.ok(existsSync(join(root, 'run2', 'model.safetensors')));
  rmSync(root, { recursive: true });
});

// The upgrade pipeline end to end on a tiny recipe (seconds): holdout → char data → train → eval, registered as a
// version with its comparison report; a rerun does no work; changing one training key reruns only train and eval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPipeline } from '../../src/cli/pipeline-plan.js';
import type { PipelineResult } from '../../src/cli/pipeline-run.js';
import { Registry } from '../../src/registry/registry.js';
import { UserError } from '../../src/util/errors.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SHAKESPEARE = join(ROOT, '../shared/data/tinyshakespeare/input.txt');

function pipelineYaml(dir: string, opts: { maxIters: number; parent: string | null; tag: string; nLayer?: number }): string {
  return [
    'name: tiny',
    `parent: ${opts.parent ?? 'null'}`,
    `tag: ${opts.tag}`,
    `work_dir: ${join(dir, 'work')}`,
    'report_samples: false',
    'stages:',
    `  split: { kind: holdout, input: ${join(dir, 'text.txt')}, fraction: 0.1 }`,
    '  chars: { kind: prepare, input: "${split}/train.txt", val_fraction: 0.1 }',
    '  train:',
    '    kind: train',
    '    data: "${chars}"',
    `    config: ${join(ROOT, 'configs/shakespeare-char-cpu.yaml')}`,
    `    set: { max_iters: ${opts.maxIters}, eval_interval: 10, eval_iters: 2, log_interval: 5, checkpoint_interval: 10, full_val: false, peak_flops: 0, threads: 1,`,
    `           data: { batch_size: 4 }, model: { n_layer: ${opts.nLayer ?? 1}, n_head: 2, n_embd: 32, block_size: 32 } }`,
    `  eval: { kind: eval, model: "\${train}", tasks: [shakespeare_heldout], task_dir: ${join(ROOT, 'configs/pipeline/tasks')}, data_dir: "\${split}" }`,
    '',
  ].join('\n');
}

function run(file: string, db: string): PipelineResult {
  const r = spawnSync(process.execPath, [MAIN, 'pipeline', 'run', file, '--registry', db, '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as PipelineResult;
}

const statuses = (r: PipelineResult): Record<string, string> => Object.fromEntries(r.stages.map((s) => [s.stage, s.status]));

test('pipeline: runs the graph, registers the version, reruns nothing when unchanged and only what a changed key feeds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-pipe-'));
  writeFileSync(join(dir, 'text.txt'), readFileSync(SHAKESPEARE, 'utf8').slice(0, 40_000));
  const db = join(dir, 'registry.sqlite');
  const v1 = join(dir, 'v1.yaml');
  writeFileSync(v1, pipelineYaml(dir, { maxIters: 20, parent: null, tag: 'tiny-v1' }));

  const first = run(v1, db);
  assert.deepEqual(statuses(first), { split: 'ran', chars: 'ran', train: 'ran', eval: 'ran' });
  assert.equal(first.version, 'tiny@v1');
  assert.equal(first.register, 'ran');
  const trainOut = first.stages.find((s) => s.stage === 'train')!.out!;
  assert.ok(existsSync(join(trainOut, 'model.safetensors')));
  assert.ok(existsSync(join(trainOut, 'version.json')));
  const heldout = readFileSync(join(first.stages[0]!.out!, 'heldout.txt'), 'utf8');
  assert.ok(heldout.length > 3000 && heldout.startsWith('\n') === false, 'the held-out part starts after a blank line');

  // Unchanged: every stage cached, the version already registered, nothing trained.
  const again = run(v1, db);
  assert.deepEqual(statuses(again), { split: 'cached', chars: 'cached', train: 'cached', eval: 'cached' });
  assert.equal(again.register, 'cached');
  assert.equal(again.version, 'tiny@v1');

  // v2: one training key changed (n_layer) and v1 as the parent: only train and eval run; the report compares them.
  const v2 = join(dir, 'v2.yaml');
  writeFileSync(v2, pipelineYaml(dir, { maxIters: 20, parent: 'tiny-v1', tag: 'tiny-v2', nLayer: 2 }));
  const second = run(v2, db);
  assert.deepEqual(statuses(second), { split: 'cached', chars: 'cached', train: 'ran', eval: 'ran' });
  assert.equal(second.version, 'tiny@v2');
  assert.equal(second.parent, 'tiny@v1');
  const report = readFileSync(second.report!.path, 'utf8');
  assert.match(report, /# tiny@v1 → tiny@v2/);
  assert.match(report, /\| model\.n_layer \| 1 \| 2 \|/);
  assert.match(report, /\| shakespeare_heldout \| bits_per_byte \| [\d.]+ ± n\/a \| [\d.]+ ± n\/a \| [+-][\d.]+ \|/);
  assert.ok(existsSync(join(second.report!.path, '..', 'compare.html')));
  assert.equal(run(v2, db).report?.status, 'cached');

  const reg = Registry.open(db);
  try {
    assert.deepEqual(reg.lineage('tiny@v2').ancestors.map((v) => v.id), ['tiny@v2', 'tiny@v1']);
    assert.equal(reg.evals(trainOut).find((e) => e.metric === 'bits_per_byte')?.task, 'shakespeare_heldout');
    assert.ok(reg.resolve('tiny-v2').run.infra !== null, 'the run carries its infrastructure figures');
  } finally {
    reg.close();
  }

  // An interrupted train stage resumes: drop the marker and the final model, keep the checkpoint at step 10.
  const trainV2 = second.stages.find((s) => s.stage === 'train')!.out!;
  rmSync(join(trainV2, '.stage.json'));
  rmSync(join(trainV2, 'model.safetensors'));
  rmSync(join(trainV2, 'ckpt-20'), { recursive: true, force: true });
  writeFileSync(join(trainV2, 'latest'), 'ckpt-10\n');
  const resumed = run(v2, db);
  assert.equal(statuses(resumed).train, 'resumed');
  assert.equal(resumed.register, 'cached', 'the same run is the same version');
  rmSync(dir, { recursive: true });
});

test('pipeline files: unknown stage references, cycles, unknown fields and kinds are one-line errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-pipe-'));
  mkdirSync(dir, { recursive: true });
  const check = (body: string, re: RegExp): void => {
    const f = join(dir, 'p.yaml');
    writeFileSync(f, `name: x\nparent: null\n${body}`);
    assert.throws(() => readPipeline(f), (e: unknown) => e instanceof UserError && re.test(e.message), body);
  };
  check('stages:\n  a: { kind: prepare, input: "${b}/x" }\n', /\$\{b\} names no stage/);
  check('stages:\n  a: { kind: prepare, input: "${b}/x" }\n  b: { kind: prepare, input: "${a}/x" }\n', /cycle: a → b → a|cycle: b → a → b/);
  check('stages:\n  a: { kind: prepare, input: t.txt, vocab: 3 }\n', /line 4: stages\.a: unknown field "vocab" of a prepare stage/);
  check('stages:\n  a: { kind: bake }\n', /stages\.a\.kind: expected one of holdout\|prepare/);
  check('stages:\n  a: { kind: prepare, input: t.txt }\n', /register: name the train stage/);
  check('stages:\n  t: { kind: tokenizer, input: t.txt }\n', /a tokenizer stage needs vocab_size/);
  rmSync(dir, { recursive: true });
});

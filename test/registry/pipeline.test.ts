// The upgrade pipeline end to end on a tiny recipe (seconds): holdout → char data → train → eval, registered as a
// version with its comparison report; a rerun does no work; changing one training key reruns only train and eval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

function pipelineYaml(dir: string, opts: { maxIters: number; parent: string | null; tag: string; nLayer?: number; parentPipeline?: string }): string {
  return [
    'name: tiny',
    opts.parentPipeline ? `parent_pipeline: ${opts.parentPipeline}` : `parent: ${opts.parent ?? 'null'}`,
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

  // v2: one training key changed (n_layer), v1.yaml as the parent pipeline (run first: all cached): only train and
  // eval run; the version's parent is v1's; the report compares them.
  const v2 = join(dir, 'v2.yaml');
  writeFileSync(v2, pipelineYaml(dir, { maxIters: 20, parent: null, parentPipeline: v1, tag: 'tiny-v2', nLayer: 2 }));
  const second = run(v2, db);
  assert.deepEqual(statuses(second.parentPipeline!), { split: 'cached', chars: 'cached', train: 'cached', eval: 'cached' });
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
    writeFileSync(f, body.startsWith('name:') ? body : `name: x\nparent: null\n${body}`);
    assert.throws(() => readPipeline(f), (e: unknown) => e instanceof UserError && re.test(e.message), body);
  };
  check('stages:\n  a: { kind: prepare, input: "${b}/x" }\n', /\$\{b\} names no stage/);
  check('stages:\n  a: { kind: prepare, input: "${b}/x" }\n  b: { kind: prepare, input: "${a}/x" }\n', /cycle: a → b → a|cycle: b → a → b/);
  check('stages:\n  a: { kind: prepare, input: t.txt, vocab: 3 }\n', /line 4: stages\.a: unknown field "vocab" of a prepare stage/);
  check('stages:\n  a: { kind: bake }\n', /stages\.a\.kind: expected one of holdout\|curate\|prepare\|tokenizer\|tokenize\|train\|sft\|eval, got "bake"/);
  check('stages:\n  a: { kind: prepare, input: t.txt }\n', /register: name the train stage/);
  check('stages:\n  t: { kind: tokenizer, input: t.txt }\n', /a tokenizer stage needs vocab_size/);
  check('name: x\nparent: x@v1\nparent_pipeline: v1.yaml\nstages:\n  t: { kind: train, data: d }\n', /give parent or parent_pipeline, not both/);
  rmSync(dir, { recursive: true });
});

// The curate and sft stage kinds on a tiny recipe: holdout → curate → BPE → tokenize → train → sft. Each is keyed by
// what it reads (the curation config's meaning, not its comments; the conversation files' contents; the align keys).
function chatYaml(dir: string, sftIters: number): string {
  return [
    'name: tinychat',
    'parent: null',
    `work_dir: ${join(dir, 'work')}`,
    'report_samples: false',
    'stages:',
    `  split: { kind: holdout, input: ${join(dir, 'text.txt')}, fraction: 0.1 }`,
    `  clean: { kind: curate, input: "\${split}/train.txt", config: ${join(dir, 'curate.yaml')} }`,
    '  tok: { kind: tokenizer, input: "${clean}/curated.txt", vocab_size: 300 }',
    '  data: { kind: tokenize, tokenizer: "${tok}/tokenizer.json", input: "${clean}/curated.txt" }',
    '  train:',
    '    kind: train',
    '    data: "${data}"',
    `    config: ${join(ROOT, 'configs/shakespeare-char-cpu.yaml')}`,
    '    set: { max_iters: 4, eval_interval: 4, eval_iters: 1, checkpoint_interval: 4, full_val: false, peak_flops: 0, threads: 1,',
    '           data: { batch_size: 4 }, model: { n_layer: 1, n_head: 2, n_embd: 32, block_size: 32 } }',
    '  chat:',
    '    kind: sft',
    '    model: "${train}"',
    `    config: ${join(ROOT, 'configs/align/sft.yaml')}`,
    `    set: { max_iters: ${sftIters}, eval_interval: ${sftIters}, checkpoint_interval: 1, keep_checkpoints: 2, threads: 1, data: { conversations: ${join(dir, 'conv.jsonl')}, batch_size: 2, val_fraction: 0.1 } }`,
    '',
  ].join('\n');
}

function dryRun(file: string, db: string): PipelineResult {
  const r = spawnSync(process.execPath, [MAIN, 'pipeline', 'run', file, '--registry', db, '--json', '--dry-run'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as PipelineResult;
}

test('pipeline: curate and sft stages run, cache, and rerun only when what they read changes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-pipe-'));
  const text = readFileSync(SHAKESPEARE, 'utf8').slice(0, 40_000);
  // One speech twice at the start: the curate stage's exact deduplication must keep one copy.
  const speech = text.slice(0, text.indexOf('\n\n'));
  writeFileSync(join(dir, 'text.txt'), `${speech}\n\n${text}`);
  const curateConfig = readFileSync(join(ROOT, 'configs/pipeline/curate-shakespeare.yaml'), 'utf8');
  writeFileSync(join(dir, 'curate.yaml'), curateConfig);
  const seeds = readFileSync(join(ROOT, '../shared/data/instructions/self_instruct_seed_tasks.jsonl'), 'utf8').split('\n');
  writeFileSync(join(dir, 'conv.jsonl'), seeds.slice(0, 20).join('\n') + '\n');
  const db = join(dir, 'registry.sqlite');
  const file = join(dir, 'chat.yaml');
  writeFileSync(file, chatYaml(dir, 2));

  const first = run(file, db);
  assert.deepEqual(statuses(first), { split: 'ran', clean: 'ran', tok: 'ran', data: 'ran', train: 'ran', chat: 'ran' });
  const cleanOut = first.stages.find((s) => s.stage === 'clean')!.out!;
  const curated = readFileSync(join(cleanOut, 'curated.txt'), 'utf8');
  const count = (s: string, sub: string): number => s.split(sub).length - 1;
  assert.equal(count(readFileSync(join(first.stages[0]!.out!, 'train.txt'), 'utf8'), speech), 2);
  assert.equal(count(curated, speech), 1, 'the repeated speech is kept once');
  const report = JSON.parse(readFileSync(join(cleanOut, 'curate-report.json'), 'utf8')) as { documents: { in: number; out: number }; reports: Record<string, { steps: Record<string, { removed: Record<string, { docs: number }> }> }> };
  assert.ok(report.documents.out < report.documents.in && report.documents.out > 0.9 * report.documents.in, JSON.stringify(report.documents));
  assert.ok((report.reports['dedup-filter']?.steps.dedup?.removed.dedup_exact?.docs ?? 0) >= 1, 'the per-filter report counts the duplicate');
  const chatOut = first.stages.find((s) => s.stage === 'chat')!.out!;
  assert.ok(existsSync(join(chatOut, 'model.safetensors')), 'the sft stage wrote a chat model');

  // The recipe page lists every stage and what curation and SFT did.
  const recipe = readFileSync(first.recipe!, 'utf8');
  assert.match(recipe, /\| clean \| curate \| split \| [0-9a-f]{12} \|/);
  assert.match(recipe, /- clean: kept [\d,]+ of [\d,]+ documents .*removed: dedup_exact \d+/);
  assert.match(recipe, /- chat \(sft from train\): 2 steps on 20 conversations; validation loss on assistant tokens [\d.]+ → [\d.]+/);
  const written = statSync(first.recipe!).mtimeMs;

  // Unchanged: nothing runs, nothing is rewritten.
  assert.deepEqual(statuses(run(file, db)), { split: 'cached', clean: 'cached', tok: 'cached', data: 'cached', train: 'cached', chat: 'cached' });
  assert.equal(statSync(first.recipe!).mtimeMs, written);

  // A comment in the curation config changes nothing; a filter turned on reruns curate and everything after it.
  writeFileSync(join(dir, 'curate.yaml'), `# a note\n${curateConfig}`);
  assert.deepEqual(statuses(dryRun(file, db)), { split: 'cached', clean: 'cached', tok: 'cached', data: 'cached', train: 'cached', chat: 'cached' });
  writeFileSync(join(dir, 'curate.yaml'), curateConfig.replace(/gopher_repetition: false/, 'gopher_repetition: true'));
  assert.deepEqual(statuses(dryRun(file, db)), { split: 'cached', clean: 'would run', tok: 'would run', data: 'would run', train: 'would run', chat: 'would run' });
  writeFileSync(join(dir, 'curate.yaml'), curateConfig);

  // The conversations' contents and the align keys are the sft stage's: only it reruns.
  writeFileSync(join(dir, 'conv.jsonl'), seeds.slice(0, 21).join('\n') + '\n');
  assert.deepEqual(statuses(dryRun(file, db)), { split: 'cached', clean: 'cached', tok: 'cached', data: 'cached', train: 'cached', chat: 'would run' });
  writeFileSync(join(dir, 'conv.jsonl'), seeds.slice(0, 20).join('\n') + '\n');
  writeFileSync(file, chatYaml(dir, 3));
  const more = run(file, db);
  assert.deepEqual(statuses(more), { split: 'cached', clean: 'cached', tok: 'cached', data: 'cached', train: 'cached', chat: 'ran' });
  assert.notEqual(more.stages.find((s) => s.stage === 'chat')!.key, first.stages.find((s) => s.stage === 'chat')!.key);

  // An interrupted sft stage resumes from its last checkpoint: drop the marker, the model and the step-3 checkpoint.
  const chatV2 = more.stages.find((s) => s.stage === 'chat')!.out!;
  rmSync(join(chatV2, '.stage.json'));
  rmSync(join(chatV2, 'model.safetensors'));
  rmSync(join(chatV2, 'ckpt-3'), { recursive: true, force: true });
  writeFileSync(join(chatV2, 'latest'), 'ckpt-2\n');
  const resumed = run(file, db);
  assert.equal(statuses(resumed).chat, 'resumed');
  assert.ok(existsSync(join(chatV2, 'model.safetensors')));
  rmSync(dir, { recursive: true });
});

test('pipeline: bad curate and sft stages are one-line errors naming the file and field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-pipe-'));
  writeFileSync(join(dir, 't.txt'), 'Some text.\n\nMore text.\n');
  const check = (stages: string, re: RegExp, curate = 'dedup: true\n'): void => {
    writeFileSync(join(dir, 'c.yaml'), curate);
    const f = join(dir, 'p.yaml');
    writeFileSync(f, `name: x\nparent: null\nwork_dir: ${join(dir, 'work')}\nstages:\n${stages}  train: { kind: train, data: d }\n`);
    const r = spawnSync(process.execPath, [MAIN, 'pipeline', 'run', f, '--registry', join(dir, 'r.sqlite'), '--dry-run'], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, re, stages);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  };
  const c = join(dir, 'c.yaml');
  const t = join(dir, 't.txt');
  check(`  a: { kind: curate, input: ${t} }\n`, /line 5: stages\.a: a curate stage needs config/);
  check(`  a: { kind: curate, input: ${t}, config: ${c}, split: words }\n`, /stages\.a\.split: expected one of file\|paragraph\|line/);
  check(`  a: { kind: curate, input: ${t}, config: ${c} }\n`, /c\.yaml: line 1: sources: a pipeline's curate stage gives the sources/, 'sources: [x]\n');
  check(`  a: { kind: curate, input: ${t}, config: ${c} }\n`, /c\.yaml: filters\.c4\.bogus: unknown key/, 'filters: { c4: { bogus: 1 } }\n');
  check(`  a: { kind: sft, model: ${dir}, set: { init_from: y } }\n`, /stages\.a\.set\.init_from: given by the stage/);
  check(`  a: { kind: sft, model: ${dir} }\n`, /stages\.a: data\.conversations: name the instruction files/);
  check(`  a: { kind: sft, model: ${dir}, set: { data: { conversations: ${join(dir, 'none.jsonl')} } } }\n`, /stages\.a: data\.conversations: .*none\.jsonl not found/);
  rmSync(dir, { recursive: true });
});

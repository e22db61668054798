// `lmforge inspect <path>`: says what a file or directory lmforge wrote holds, and whether it is intact —
// a run directory (every checkpoint, the final model against its config.json, meta.json and the tokenizer it
// names), a checkpoint, a safetensors file or a token file.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { readSafetensors } from '../core/safetensors.js';
import { gptCost } from '../models/gpt-cost.js';
import { WEIGHTS_FILE } from '../models/gpt-io.js';
import { STATE_FILE, findLatestComplete, listCheckpointSteps, verifyCheckpoint } from '../train/checkpoint.js';
import { RunDir } from '../train/run-dir.js';
import { openTokenFile } from '../train/token-reader.js';
import { UserError } from '../util/errors.js';

function describeCheckpoint(dir: string): string[] {
  const s = verifyCheckpoint(dir);
  const files = Object.entries(s.files).map(([n, f]) => `  ${n}: ${f.bytes} bytes, sha256 ${f.sha256.slice(0, 16)}…`);
  return [`checkpoint ${dir}: complete and verified`, `  step ${s.step}, optimizer ${s.optimizer.kind} (state version ${s.optimizer.version}) at step ${s.optimizer.step}, best val loss ${s.bestValLoss ?? 'n/a'}`, ...files];
}

export function inspect(path: string): string[] {
  if (!existsSync(path)) throw new UserError(`${path}: no such file or directory`);
  if (statSync(path).isDirectory()) {
    if (existsSync(join(path, STATE_FILE))) return describeCheckpoint(path);
    const run = RunDir.open(path);
    const steps = listCheckpointSteps(path).sort((a, b) => a - b);
    const hasModel = existsSync(run.weightsPath);
    if (steps.length === 0 && !hasModel) throw new UserError(`${path}: neither a run directory (no ckpt-<step> inside, no ${WEIGHTS_FILE}) nor a checkpoint (no ${STATE_FILE})`);
    const out = [`run ${path}: ${steps.length ? `checkpoints at steps ${steps.join(', ')}` : 'no checkpoints'}`];
    const latest = findLatestComplete(path);
    for (const s of latest?.skipped ?? []) out.push(`  skipped ${s.dir}: ${s.reason}`);
    if (steps.length) out.push(latest ? `  latest complete: ${latest.dir} (step ${latest.step})` : '  no complete checkpoint');
    if (hasModel) {
      // Loading checks config.json, every tensor's name and shape, finiteness, and meta.json's vocabulary.
      const model = run.loadModel();
      const c = model.config;
      out.push(`  final model: ${run.weightsPath} verified (${c.n_layer} layers, ${c.n_head} heads, width ${c.n_embd}, vocab ${c.vocab_size}, ${model.numParameters().toLocaleString('en-US')} parameters, all finite)`);
      const cost = gptCost(c);
      const options = [c.share_layers !== 'none' ? `share_layers ${c.share_layers}` : '', c.embedding_dim > 0 && c.embedding_dim < c.n_embd ? `embedding_dim ${c.embedding_dim}` : '', c.reversible ? 'reversible' : ''].filter(Boolean);
      out.push(`  parameters: ${cost.stored.toLocaleString('en-US')} stored, ${cost.effective.toLocaleString('en-US')} effective (as if unshared), ${cost.active.toLocaleString('en-US')} active per token; ${(cost.flopsPerToken / 1e6).toFixed(2)} MFLOP per training token${options.length ? ` (${options.join(', ')})` : ''}`);
      model.dispose();
    } else {
      out.push('  no final model (the run has not finished)');
    }
    if (existsSync(run.metaPath)) {
      run.codec();
      out.push(`  meta: ${run.metaPath} (vocab ${run.meta().vocab_size}, tokenizer ${String(run.meta().tokenizer.type)}) loads`);
    }
    return out;
  }
  if (path.endsWith('.safetensors')) {
    const f = readSafetensors(path);
    const out = [`safetensors ${path}: ${f.tensors.size} tensors`];
    for (const [k, v] of Object.entries(f.metadata)) out.push(`  metadata ${k}: ${v}`);
    let total = 0;
    for (const [name, t] of f.tensors) {
      total += t.data.length;
      out.push(`  ${name}: ${t.dtype} [${t.shape.join(', ')}]`);
    }
    out.push(`  ${total.toLocaleString('en-US')} elements in all`);
    return out;
  }
  const t = openTokenFile(path);
  return [`token file ${path}: ${t.count.toLocaleString('en-US')} ${t.dtype} ids (${t.mode}); first ids: ${[...t.ids.subarray(0, 12)].join(' ')}`];
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('describe and verify a run directory, checkpoint, .safetensors file or token file')
    .argument('<path>', 'what to inspect')
    .action((path: string) => {
      process.stdout.write(inspect(path).join('\n') + '\n');
    });
}

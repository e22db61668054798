// `lmforge lowrank --run R (--rank r | --energy e) [--include patterns] --out R2`: factorizes a trained model's Linear
// layers by truncated SVD (W ≈ A·B) and writes the factorized model (low_rank block in config.json, meta.json and the
// tokenizer beside it) so that `sample`, `eval` and `inspect` run it; prints each layer's rank and the parameters
// before and after. The perplexity it costs is measured by `npm run bench -- lowrank`.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { WEIGHTS_FILE } from '../models/gpt-io.js';
import { isLowRankDir, saveLowRankGPT } from '../models/low-rank-io.js';
import { factorizeModel, checkSelection, type RankSelection } from '../nn/low-rank.js';
import { parseTargetModules } from '../nn/lora.js';
import { RunDir } from '../train/run-dir.js';
import { UserError } from '../util/errors.js';

interface LowRankFlags {
  run: string;
  out: string;
  rank?: string;
  energy?: string;
  include?: string;
  overwrite?: boolean;
}

/** --rank or --energy (exactly one), checked. */
export function selectionOf(o: { rank?: string; energy?: string }): RankSelection {
  if ((o.rank === undefined) === (o.energy === undefined)) throw new UserError('lowrank: give exactly one of --rank <r> (an integer ≥ 1) or --energy <e> (in (0, 1], e.g. 0.9)');
  if (o.rank !== undefined) {
    const r = Number(o.rank);
    if (o.rank.trim() === '' || !(Number.isInteger(r) && r >= 1)) throw new UserError(`--rank: ${JSON.stringify(o.rank)} is not valid, expected an integer ≥ 1`);
    return { rank: r };
  }
  const e = Number(o.energy);
  if (o.energy!.trim() === '' || !(e > 0 && e <= 1)) throw new UserError(`--energy: ${JSON.stringify(o.energy)} is not valid, expected a number in (0, 1] (the fraction of Σσ² kept, e.g. 0.9)`);
  const s: RankSelection = { energy: e };
  checkSelection(s);
  return s;
}

export function register(program: Command): void {
  program
    .command('lowrank')
    .description("factorize a trained model's Linear layers by truncated SVD (W ≈ A·B) to a rank or an energy; writes a model directory that sample/eval read")
    .requiredOption('--run <dir>', 'run or model directory of the trained model (config.json + model.safetensors)')
    .requiredOption('--out <dir>', 'directory for the factorized model')
    .option('--rank <r>', 'the same rank r for every chosen layer (capped at min(in, out))')
    .option('--energy <e>', 'per layer, the smallest rank keeping this fraction of Σσ² (in (0, 1], e.g. 0.9)')
    .option('--include <patterns>', 'layers to factorize: comma-separated names matched as path suffixes (c_attn,c_fc) or /regex/ on the whole path (default: every Linear)')
    .option('--overwrite', 'replace a model already in --out')
    .action((o: LowRankFlags) => {
      const selection = selectionOf(o);
      const include = o.include === undefined ? null : parseTargetModules(o.include, '--include');
      useNativeBackendOrWarn();
      const run = RunDir.open(o.run);
      if (run.isAdapterRun()) throw new UserError(`--run ${o.run}: holds a LoRA adapter; merge it first (lmforge lora merge --run ${o.run} --out DIR) and factorize DIR`);
      if (isLowRankDir(o.run)) throw new UserError(`--run ${o.run}: is already factorized (config.json has a low_rank block); factorize the dense model it came from`);
      if (resolve(o.out) === resolve(o.run)) throw new UserError('--out: must differ from --run (the trained model stays as it is)');
      if (existsSync(join(o.out, WEIGHTS_FILE)) && !o.overwrite) throw new UserError(`--out ${o.out}: already holds a model; pass --overwrite to replace it`);
      const model = run.loadModel();
      try {
        const report = factorizeModel(model, selection, include);
        const w = Math.max(...report.layers.map((l) => l.path.length));
        for (const l of report.layers) {
          const what = l.factorized ? `rank ${String(l.rank).padStart(4)}` : `dense (rank ${l.rank} saves nothing)`;
          console.log(`${l.path.padEnd(w)}  (${l.inFeatures}, ${l.outFeatures})  ${what}  energy ${l.energy.toFixed(4)}  params ${l.paramsBefore.toLocaleString('en-US')} → ${l.paramsAfter.toLocaleString('en-US')}`);
        }
        if (!report.layers.some((l) => l.factorized)) throw new UserError(`${'rank' in selection ? `--rank ${selection.rank}` : `--energy ${selection.energy}`}: no layer gets smaller (each would need rank < in·out/(in + out)); nothing written`);
        saveLowRankGPT(o.out, model, selection, { factorized_from: resolve(o.run) });
        if (existsSync(run.metaPath)) new RunDir(o.out).writeMeta(run.meta(), run.path, model.config.vocab_size);
        const pct = (100 * report.paramsAfter) / report.paramsBefore;
        console.log(`parameters: ${report.paramsBefore.toLocaleString('en-US')} before, ${report.paramsAfter.toLocaleString('en-US')} after (${pct.toFixed(1)}%, ${(report.paramsBefore / report.paramsAfter).toFixed(2)}× smaller); ${report.layers.filter((l) => l.factorized).length} of ${report.layers.length} layers factorized → ${o.out}`);
      } finally {
        model.dispose();
      }
    });
}

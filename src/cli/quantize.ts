// `lmforge quantize --run DIR --bits 8|4 --out DIR2`: weight-only quantization of a trained model (every Linear of the
// blocks and the tied embedding/head) to int8 per output channel or 4-bit in groups, with GPTQ's error-compensating
// rounding when calibration text is given (round-to-nearest otherwise). Writes a model directory that `sample`,
// `eval` and `train --init_from` (QLoRA) read. The layout is documented in models/quantize-io.ts and the README.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { WEIGHTS_FILE } from '../models/gpt-io.js';
import { isQuantizedModelDir, saveQuantizedGPT } from '../models/quantize-io.js';
import { quantizeGPT } from '../models/quantize-model.js';
import { openTokenFile } from '../train/token-reader.js';
import { RunDir } from '../train/run-dir.js';
import { UserError } from '../util/errors.js';
import { intFlag } from './flags.js';

interface QuantizeCliOptions {
  run: string;
  bits: string;
  groupSize: number;
  calibration?: string;
  calibrationTokens: number;
  out: string;
  overwrite?: boolean;
}

/** Calibration ids: a token shard of `lmforge tokenize`/`prepare` (.bin), or UTF-8 text encoded with the run's tokenizer. */
function calibrationTokens(path: string, run: RunDir, limit: number): ArrayLike<number> {
  if (!existsSync(path)) throw new UserError(`--calibration ${path}: file not found`);
  const vocab = run.meta().vocab_size;
  if (path.endsWith('.bin')) {
    const f = openTokenFile(path, { vocabSize: vocab });
    return Array.from(f.ids.subarray(0, Math.min(limit, f.count)));
  }
  return run.codec().encode(readFileSync(path, 'utf8')).slice(0, limit);
}

export function register(program: Command): void {
  program
    .command('quantize')
    .description('quantize a trained model to int8 or 4-bit weights (GPTQ with calibration text) for faster, smaller decoding')
    .requiredOption('--run <dir>', 'run or model directory (model.safetensors + config.json + meta.json)')
    .requiredOption('--bits <n>', '8 (int8, one scale per output channel) or 4 (groups of --group-size inputs with a scale and zero point)')
    .option('--group-size <n>', '4-bit: inputs per group, a multiple of 32 (32, 64, 128)', intFlag('--group-size', 32, 4096), 64)
    .option('--calibration <file>', 'text (encoded with the run\'s tokenizer) or a token shard (.bin) for GPTQ; without it, round-to-nearest')
    .option('--calibration-tokens <n>', 'calibration tokens to use (from the start of the file)', intFlag('--calibration-tokens', 1), 16384)
    .requiredOption('--out <dir>', 'directory for the quantized model (with the run\'s meta.json and tokenizer)')
    .option('--overwrite', 'replace a model already in --out')
    .action((o: QuantizeCliOptions) => {
      if (o.bits !== '8' && o.bits !== '4') throw new UserError(`--bits: expected 8 or 4, got ${JSON.stringify(o.bits)}`);
      const bits = Number(o.bits) as 4 | 8;
      if (bits === 4 && o.groupSize % 32 !== 0) throw new UserError(`--group-size: expected a multiple of 32 (32, 64, 128), got ${o.groupSize}`);
      if (resolve(o.out) === resolve(o.run)) throw new UserError('--out: must differ from --run (the float model stays as it is)');
      if (existsSync(join(o.out, WEIGHTS_FILE)) && !o.overwrite) throw new UserError(`--out ${o.out}: already holds a model; pass --overwrite to replace it`);
      useNativeBackendOrWarn();
      const run = RunDir.open(o.run);
      if (isQuantizedModelDir(run.path)) throw new UserError(`--run ${o.run}: is already quantized; quantize the float model it came from`);
      const model = run.loadModel();
      try {
        const C = model.config.n_embd;
        if (bits === 4 && C % o.groupSize !== 0) throw new UserError(`--group-size: ${o.groupSize} does not divide the model width n_embd = ${C}`);
        const tokens = o.calibration ? calibrationTokens(o.calibration, run, o.calibrationTokens) : null;
        const t0 = performance.now();
        const layers = quantizeGPT(model, { bits, groupSize: o.groupSize, calibration: tokens, log: (l) => console.log(l) });
        saveQuantizedGPT(o.out, model, layers, {
          bits, group_size: bits === 4 ? o.groupSize : null, method: tokens ? 'gptq' : 'rtn', sym: bits === 8, calibration_tokens: tokens?.length ?? 0,
        }, { quantized_from: resolve(o.run) });
        if (existsSync(run.metaPath)) new RunDir(o.out).writeMeta(run.meta(), run.path, model.config.vocab_size);
        console.log(`quantized ${o.run} to ${bits}-bit (${tokens ? `GPTQ on ${tokens.length} calibration tokens` : 'round-to-nearest'}) in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${o.out}/${WEIGHTS_FILE}`);
      } finally {
        model.dispose();
      }
    });
}

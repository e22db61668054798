// `lmforge lora merge --run DIR --out DIR2`: folds a LoRA run's adapter into its base model and writes the merged
// model (model.safetensors + config.json, with the run's meta.json and tokenizer) so that any tool that reads a plain
// GPT-2 model directory can use it. Training a LoRA adapter is `lmforge train --init_from=… --lora.r=…`.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { useNativeBackendOrWarn } from '../core/native/index.js';
import { saveGPT, WEIGHTS_FILE } from '../models/gpt-io.js';
import { loadAdaptedGPT } from '../models/lora-io.js';
import { mergeAndUnload } from '../nn/lora.js';
import { RunDir } from '../train/run-dir.js';
import { UserError } from '../util/errors.js';

export function register(program: Command): void {
  const lora = program.command('lora').description('LoRA adapters (Hugging Face PEFT layout): merge an adapter run into its base model');
  lora
    .command('merge')
    .description('write base + adapter merged into one model directory (model.safetensors + config.json + meta.json)')
    .requiredOption('--run <dir>', 'LoRA run directory (adapter_model.safetensors + adapter_config.json, from `lmforge train --lora.r=…`)')
    .requiredOption('--out <dir>', 'directory for the merged model')
    .option('--base <dir>', "base model directory (default: adapter_config.json's base_model_name_or_path)")
    .option('--overwrite', 'replace a model already in --out')
    .action((o: { run: string; out: string; base?: string; overwrite?: boolean }) => {
      useNativeBackendOrWarn();
      const run = RunDir.open(o.run);
      if (!run.isAdapterRun()) throw new UserError(`--run ${o.run}: holds no LoRA adapter (expected adapter_config.json and no model.safetensors)`);
      if (resolve(o.out) === resolve(o.run)) throw new UserError('--out: must differ from --run (the adapter run stays as it is)');
      if (existsSync(join(o.out, WEIGHTS_FILE)) && !o.overwrite) throw new UserError(`--out ${o.out}: already holds a model; pass --overwrite to replace it`);
      const model = loadAdaptedGPT(run.path, o.base ? { base: o.base } : {});
      try {
        mergeAndUnload(model);
        saveGPT(o.out, model, { merged_from: resolve(o.run) });
        if (existsSync(run.metaPath)) new RunDir(o.out).writeMeta(run.meta(), run.path, model.config.vocab_size);
      } finally {
        model.dispose();
      }
      console.log(`merged ${o.run} into its base: ${o.out}/${WEIGHTS_FILE}`);
    });
}

// QLoRA's memory, side by side: LoRA (r 8 on c_attn, c_proj, c_fc) trained for a few steps over the GPT-2-small
// shape with the frozen base in fp32 and in 4-bit (lmforge quantize, group 64), each in its own process; prints peak
// RSS, ms per step and the losses of each, and the RSS ratio (bar: QLoRA ≤ 0.4× LoRA's) at the default batch and at a
// second one. Each step is what `lmforge train` runs (GPT.forwardLoss, as the next-token task calls it: a frozen head's
// cross-entropy in blocks of rows), on both sides alike.
// Usage: npm run bench -- qlora [--steps=4] [--batch=2] [--block=128] [--batch2=1] [--block2=64]
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { intFlag } from './_args.js';
import { cpuName } from './_cpu.js';
import { runJSON, type SideFigures } from './_side_by_side.js';

interface Figures extends SideFigures {
  msPerStep: number;
  losses: number[];
  trainable: number;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function run(args: string[]): Promise<void> {
  const steps = intFlag('qlora', args, 'steps', 4);
  const batch = intFlag('qlora', args, 'batch', 2);
  const T = intFlag('qlora', args, 'block', 128);
  const data = join(ROOT, 'data/shakespeare-bpe');
  if (!existsSync(join(data, 'train.bin'))) {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'tokenize', '--tokenizer', join(ROOT, '../shared/data/gpt2-tokenizer'), '--input', join(ROOT, '../shared/data/tinyshakespeare/input.txt'), '--out', data, '--val-fraction', '0.1'], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('bench/qlora: tokenizing Tiny Shakespeare failed');
  }
  const q4 = join(ROOT, 'runs/bench-decode/gpt2-int4');
  if (!existsSync(join(q4, 'model.safetensors'))) {
    const r = runJSON<SideFigures>(process.execPath, [fileURLToPath(new URL('./_quant_worker.js', import.meta.url)), 'build', 'gpt2', '4', q4]);
    if (typeof r === 'string') throw new Error(`bench/qlora: building the 4-bit base failed: ${r}`);
  }
  const worker = fileURLToPath(new URL('./_qlora_worker.js', import.meta.url));
  const sizes: [number, number][] = [[batch, T], [intFlag('qlora', args, 'batch2', 1), intFlag('qlora', args, 'block2', 64)]];
  const runs = sizes.map(([b, t]) => {
    console.log(`LoRA r=8 (c_attn, c_proj, c_fc) on the GPT-2-small shape (12/12/768, vocab 50304), ${steps} AdamW steps of batch ${b} × ${t} GPT-2-BPE Shakespeare tokens, each side in its own process`);
    const sides: [string, Figures | string][] = [
      ['LoRA, fp32 base', runJSON<Figures>(process.execPath, [worker, 'fp32', join(data, 'train.bin'), String(steps), String(b), String(t)])],
      ['QLoRA, 4-bit base (g64)', runJSON<Figures>(process.execPath, [worker, q4, join(data, 'train.bin'), String(steps), String(b), String(t)])],
    ];
    console.log('base                     | peak RSS MiB  ms/step  trainable  losses');
    for (const [name, f] of sides) {
      if (typeof f === 'string') console.log(`${name.padEnd(24)} | (failed: ${f})`);
      else console.log(`${name.padEnd(24)} | ${f.peakRssMiB.toFixed(0).padStart(12)} ${f.msPerStep.toFixed(0).padStart(8)} ${String(f.trainable).padStart(10)}  ${f.losses.map((l) => l.toFixed(3)).join(' ')}`);
    }
    const [lora, qlora] = sides.map(([, f]) => (typeof f === 'string' ? null : f));
    const ratio = lora && qlora ? qlora.peakRssMiB / lora.peakRssMiB : null;
    console.log(`QLoRA peak RSS / LoRA peak RSS at batch ${b} × ${t}: ${ratio?.toFixed(3)} (bar ≤ 0.4)`);
    return {
      batch: b, block: t,
      peak_rss_mib: { lora_fp32: lora?.peakRssMiB ?? null, qlora_int4: qlora?.peakRssMiB ?? null }, rss_ratio: ratio,
      ms_per_step: { lora_fp32: lora?.msPerStep ?? null, qlora_int4: qlora?.msPerStep ?? null },
    };
  });
  const [main, second] = runs as [(typeof runs)[0], (typeof runs)[0]];
  console.log(`RESULT ${JSON.stringify({
    cpu: cpuName(), steps, batch, block: T,
    peak_rss_mib: main.peak_rss_mib, rss_ratio: main.rss_ratio, ms_per_step: main.ms_per_step,
    second: second,
  })}`);
}

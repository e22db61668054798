// Child process of bench/qlora.ts: a few LoRA training steps (r 8 on c_attn, c_proj and c_fc, AdamW) over the
// GPT-2-small shape, with the base in fp32 (a fresh model) or 4-bit (a directory written by lmforge quantize), on
// GPT-2-BPE Shakespeare tokens. Prints one JSON line: median ms per step, losses, peak RSS. One process per side,
// so that each peak is its own.
// Usage: node dist/bench/_qlora_worker.js fp32|DIR TRAIN_BIN STEPS BATCH T
import * as lm from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { applyLoRA, trainableParameters } from '../src/nn/lora.js';
import { makeOptimizer, optimSpec } from '../src/optim/config.js';
import { openTokenFile } from '../src/train/token-reader.js';
import { RunDir } from '../src/train/run-dir.js';
import { defaultsOf } from '../src/util/config.js';
import { median } from './_args.js';
import { DECODE_CASES } from './_gpt_cases.js';

const [base, trainBin, stepsArg, batchArg, tArg] = process.argv.slice(2);
const steps = Number(stepsArg);
const B = Number(batchArg);
const T = Number(tArg);
loadNativeBackend();
const c = DECODE_CASES.find((x) => x.name === 'gpt2')!;
const model = base === 'fp32'
  ? new GPT({ vocab_size: c.vocab_size, block_size: c.block_size, n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd, bias: true }, 1)
  : RunDir.open(base!).loadModel();
applyLoRA(model, { r: 8, alpha: 16, dropout: 0, targetModules: ['c_attn', 'c_proj', 'c_fc'], seed: 1 });
const optimizer = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), lr: 1e-3, weight_decay: 0 });
const file = openTokenFile(trainBin!, { vocabSize: c.vocab_size });
model.train();
const times: number[] = [];
const losses: number[] = [];
for (let s = 0; s < steps; s++) {
  const t0 = performance.now();
  const loss = lm.tidy(() => {
    const at = (s * B * (T + 1)) % (file.count - B * (T + 1));
    const x = Int32Array.from({ length: B * T }, (_, i) => file.ids[at + Math.floor(i / T) * (T + 1) + (i % T)]!);
    const y = Int32Array.from({ length: B * T }, (_, i) => file.ids[at + Math.floor(i / T) * (T + 1) + (i % T) + 1]!);
    const out = model.forwardLoss(lm.fromArray(x, [B, T]), lm.fromArray(y, [B, T]), { seed: s }); // as lmforge train's next-token task
    lm.backward(out.loss);
    return out.loss.item();
  });
  optimizer.step();
  optimizer.zeroGrad();
  times.push(performance.now() - t0);
  losses.push(loss);
}
console.log(JSON.stringify({
  msPerStep: median(times), losses, trainable: trainableParameters(model).trainable,
  tokensPerS: (1000 * B * T) / median(times), peakRssMiB: process.resourceUsage().maxRSS / 1024,
}));

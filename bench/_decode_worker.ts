// Child process of bench/decode.ts: greedy KV-cache decoding with lmforge, batch 1 (the model's own
// forwardCached, as `lmforge sample` uses it). Prints one JSON line: prefill ms, median ms per new token,
// tokens/s and peak RSS. A separate process so that peak memory is this case's alone.
// With a model directory as a fourth argument (a quantized model of the case's shape, from bench/decode.ts
// --quantized), that model decodes instead of a fresh float one.
// Usage: node dist/bench/_decode_worker.js CASE PROMPT NEW [MODEL_DIR]
import * as lm from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { argmax } from '../src/eval/metrics.js';
import { GPT } from '../src/models/gpt.js';
import { RunDir } from '../src/train/run-dir.js';
import { median } from './_args.js';
import { DECODE_CASES } from './_gpt_cases.js';

const [name, promptArg, newArg, modelDir] = process.argv.slice(2);
const c = DECODE_CASES.find((x) => x.name === name);
if (!c) throw new Error(`unknown case ${name}`);
const prompt = Number(promptArg);
const fresh = Number(newArg);
loadNativeBackend();
const model = modelDir
  ? RunDir.open(modelDir).loadModel()
  : new GPT({ vocab_size: c.vocab_size, block_size: c.block_size, n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd, bias: true }, 1);
model.eval();
const rng = new lm.Rng(1);
const idx = Array.from({ length: prompt }, () => rng.int(c.vocab_size));
const cache = model.newCache(1);

let prefill = 0;
let times: number[] = [];
for (let round = 0; round < 2; round++) { // warm-up, then the timed run
  cache.length = 0;
  let t0 = performance.now();
  let row = lm.tidy(() => model.forwardCachedLast(lm.tensor(idx, [1, prompt], 'int32'), cache, 1).toTypedArray() as Float32Array);
  prefill = performance.now() - t0;
  times = [];
  for (let i = 0; i < fresh; i++) {
    const tok = argmax(row);
    t0 = performance.now();
    row = lm.tidy(() => model.forwardCached(lm.tensor([tok], [1, 1], 'int32'), cache).toTypedArray() as Float32Array);
    times.push(performance.now() - t0);
  }
}
const ms = median(times);
console.log(JSON.stringify({ prefillMs: prefill, ms, tokensPerS: 1000 / ms, peakRssMiB: process.resourceUsage().maxRSS / 1024 }));

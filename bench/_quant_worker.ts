// Child process of bench/decode.ts --quantized and bench/qlora.ts. Modes:
//   build CASE BITS DIR [GROUP] a random GPT of the decode case, quantized round-to-nearest (speed only) into DIR
//   ppl MODEL_DIR VAL_BIN      perplexity exp(mean cross-entropy) over consecutive block_size windows of VAL_BIN
// Prints one JSON line. A separate process so that each measurement's memory is its own.
import * as lm from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { saveQuantizedGPT } from '../src/models/quantize-io.js';
import { quantizeGPT } from '../src/models/quantize-model.js';
import { fullSplitLoss } from '../src/train/trainer.js';
import { openTokenFile } from '../src/train/token-reader.js';
import { RunDir } from '../src/train/run-dir.js';
import { DECODE_CASES } from './_gpt_cases.js';

loadNativeBackend();
const [mode, ...rest] = process.argv.slice(2);
if (mode === 'build') {
  const [name, bitsArg, dir, groupArg] = rest;
  const G = Number(groupArg ?? 64);
  const c = DECODE_CASES.find((x) => x.name === name);
  if (!c || !dir) throw new Error(`build: unknown case ${name} or no DIR`);
  const bits = Number(bitsArg) as 4 | 8;
  const model = new GPT({ vocab_size: c.vocab_size, block_size: c.block_size, n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd, bias: true }, 1);
  const layers = quantizeGPT(model, { bits, groupSize: G, calibration: null });
  saveQuantizedGPT(dir, model, layers, { bits, group_size: bits === 4 ? G : null, method: 'rtn', sym: bits === 8, calibration_tokens: 0 });
  console.log(JSON.stringify({ dir }));
} else if (mode === 'ppl') {
  const [dir, val] = rest;
  const model = RunDir.open(dir!).loadModel();
  const file = openTokenFile(val!, { vocabSize: model.config.vocab_size });
  const t0 = performance.now();
  const loss = fullSplitLoss(model, file, 8, model.config.block_size);
  console.log(JSON.stringify({ loss, ppl: Math.exp(loss), seconds: (performance.now() - t0) / 1000, params: model.numParameters(), live: lm.memory.liveBytes }));
} else {
  throw new Error(`unknown mode ${mode}`);
}

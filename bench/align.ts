// Alignment throughput, both sides in one run: (1) an SFT step (packed chat rows, loss on assistant tokens only)
// beside a pretraining step (the same rows, every next token a target) at the same shape — forward, backward and
// the AdamW update, alternated so that machine load falls on both sides alike, median tokens/s of each; (2) batched
// generation (the PPO rollout path: one batch of prompts through serve/generate.ts) beside batch-1 decoding of the
// same prompts one after another, generated tokens/s of each.
// Usage: npm run bench -- align [--run=runs/align/sft] [--batch=8] [--steps=16] [--rows=16] [--new=48]
//   --run: a chat model (`lmforge align sft`); without one, a fresh 4 × 128 GPT over the base tokenizer with the chat
//   tokens (data/align/base-bpe.json, configs/align/base-chat.yaml's step 2) is used.
import { existsSync } from 'node:fs';
import * as lm from '../src/core/index.js';
import { loadNativeBackend } from '../src/core/native/index.js';
import { loadChatModel } from '../src/align/io.js';
import { renderedConversations } from '../src/align/sft.js';
import { sampleReplies, promptIds, preferencePairs } from '../src/align/evaluate.js';
import { GPT } from '../src/models/gpt.js';
import { makeOptimizer, optimSpec } from '../src/optim/config.js';
import { defaultsOf } from '../src/util/config.js';
import { addChatTokens, chatIds } from '../src/tokenizers/chat-template.js';
import { loadTokenizer } from '../src/tokenizers/format.js';
import type { Tokenizer } from '../src/tokenizers/tokenizer.js';
import { buildRows } from '../src/train/tasks/sft.js';
import { intFlag, median, stringFlag } from './_args.js';
import { cpuName } from './_cpu.js';

const DATA = '../shared/data';

export async function run(args: string[]): Promise<void> {
  loadNativeBackend();
  const B = intFlag('align', args, 'batch', 8);
  const steps = intFlag('align', args, 'steps', 16);
  const rowsGen = intFlag('align', args, 'rows', 16);
  const fresh = intFlag('align', args, 'new', 48);
  const runDir = stringFlag(args, 'run') ?? 'runs/align/sft';
  let model: GPT;
  let tok: Tokenizer;
  let source: string;
  if (existsSync(`${runDir}/model.safetensors`)) {
    const l = loadChatModel(runDir);
    model = l.model;
    tok = l.tok;
    source = runDir;
  } else {
    tok = addChatTokens(loadTokenizer('data/align/base-bpe.json'), 'data/align/base-bpe.json');
    model = new GPT({ vocab_size: tok.vocabSize, block_size: 256, n_layer: 4, n_head: 4, n_embd: 128, bias: false });
    source = 'fresh 4 × 128 GPT, block 256';
  }
  const ids = chatIds(tok, source);
  const T = model.config.block_size;
  const data = renderedConversations(`${DATA}/instructions/gpteacher_roleplay_instruct.json,${DATA}/gsm8k/train.jsonl.gz`, tok, ids, 1, 0);
  const rows = buildRows(data.train.slice(0, 4000), T, true);
  console.log(`Alignment throughput on ${cpuName()} (${lm.getBackend()} backend); model: ${source} (${(model.numParameters() / 1e6).toFixed(2)} M parameters, V ${model.config.vocab_size}); timings under whatever load the machine has, the two sides alternated`);
  const opt = makeOptimizer(model.namedTrainableParameters(), { ...defaultsOf(optimSpec), lr: 1e-4 });
  let cursor = 0;
  const batch = (sft: boolean): { x: Int32Array; y: Int32Array; trained: number } => {
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const r = rows[cursor++ % rows.length]!;
      x.set(r.x, b * T);
      if (sft) y.set(r.y, b * T);
      else {
        // Pretraining on the same tokens: every next token is a target (the row's last target is its own next input).
        for (let t = 0; t < T - 1; t++) y[b * T + t] = r.x[t + 1]!;
        y[b * T + T - 1] = r.y[T - 1] !== -1 ? r.y[T - 1]! : r.x[T - 1]!;
      }
    }
    let trained = 0;
    for (const v of y) if (v !== -1) trained++;
    return { x, y, trained };
  };
  const step = (sft: boolean): { ms: number; trained: number } => {
    const { x, y, trained } = batch(sft);
    const t0 = performance.now();
    lm.tidy(() => {
      const out = model.forwardLoss(lm.fromArray(x, [B, T]), lm.fromArray(y, [B, T]));
      lm.backward(out.loss);
    });
    opt.step();
    opt.zeroGrad();
    return { ms: performance.now() - t0, trained };
  };
  step(false);
  step(true);
  const pre: number[] = [];
  const sft: number[] = [];
  let trainedShare = 0;
  // A B B A order, so that a drift in machine load (or a side always running second) weighs on both sides alike.
  for (let i = 0; i < steps; i++) {
    const sftFirst = i % 2 === 1;
    if (!sftFirst) pre.push(step(false).ms);
    const s = step(true);
    sft.push(s.ms);
    if (sftFirst) pre.push(step(false).ms);
    trainedShare += s.trained / (B * T) / steps;
  }
  const tokens = B * T;
  const preTps = tokens / (median(pre) / 1000);
  const sftTps = tokens / (median(sft) / 1000);
  console.log(`train step, ${B} × ${T} tokens: pretraining ${Math.round(preTps)} tokens/s (median ${median(pre).toFixed(0)} ms) | SFT ${Math.round(sftTps)} tokens/s (median ${median(sft).toFixed(0)} ms; ${(100 * trainedShare).toFixed(1)}% of targets are assistant tokens) | SFT/pretraining ${(sftTps / preTps).toFixed(3)}`);
  opt.dispose();

  // Generation: the rollout path (one batch) beside batch-1 decoding of the same prompts (first human turns of
  // HH-RLHF pairs, so that decoding rather than prefill dominates), sampled at temperature 1 (as PPO's rollouts)
  // and greedy (no per-row sampler work).
  const prompts = preferencePairs(`${DATA}/hh-rlhf/harmless-base_test_0-1811.jsonl.gz`, 'train').slice(0, rowsGen).map((p) => promptIds(tok, ids, p.prompt.slice(0, 1)));
  const timed = (f: () => { reply: number[] }[]): { tps: number; tokens: number } => {
    const t0 = performance.now();
    const out = f();
    const tokensOut = out.reduce((n, s) => n + s.reply.length, 0);
    return { tps: tokensOut / ((performance.now() - t0) / 1000), tokens: tokensOut };
  };
  const gen: Record<string, { batched: number; batch1: number }> = {};
  for (const [name, temperature] of [['sampled', 1], ['greedy', 0]] as const) {
    const o = { maxNewTokens: fresh, temperature, topK: 0, seed: 5 };
    sampleReplies(model, ids, prompts.slice(0, 2), { ...o, maxNewTokens: 4 });
    const batched = timed(() => sampleReplies(model, ids, prompts, o, rowsGen));
    const single = timed(() => prompts.flatMap((p) => sampleReplies(model, ids, [p], o, 1)));
    gen[name] = { batched: batched.tps, batch1: single.tps };
    console.log(`generation (${name}) of ≤ ${fresh} new tokens for ${prompts.length} HH-RLHF first turns: batched (${rowsGen} rows) ${Math.round(batched.tps)} tokens/s (${batched.tokens} tokens) | batch-1 ${Math.round(single.tps)} tokens/s (${single.tokens} tokens) | ${(batched.tps / single.tps).toFixed(2)}×`);
  }
  model.dispose();
  console.log(`RESULT ${JSON.stringify({ cpu: cpuName(), model: source, batch: B, block_size: T, pretrain_tokens_per_s: preTps, sft_tokens_per_s: sftTps, sft_over_pretrain: sftTps / preTps, sft_within_10pct: sftTps >= 0.9 * preTps, gen_rows: rowsGen, gen_sampled_batched_tokens_per_s: gen.sampled!.batched, gen_sampled_batch1_tokens_per_s: gen.sampled!.batch1, gen_greedy_batched_tokens_per_s: gen.greedy!.batched, gen_greedy_batch1_tokens_per_s: gen.greedy!.batch1 })}`);
}

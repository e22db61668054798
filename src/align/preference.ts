// `lmforge align reward` and `lmforge align dpo`: learning from preference pairs. The reward model is the SFT
// model with a scalar head (models/heads.ts) trained with the Bradley–Terry loss; DPO trains the SFT model itself
// against a frozen copy whose log-probabilities of every pair are computed once and cached (reference-logps.json).
// Both report on the held-out fifth of the pairs (never trained on): accuracy with its Wilson 95% interval, and for
// DPO TRL's rewards/* metrics (for IPO on per-token average log-probabilities, as its loss) and the KL to the
// reference on samples of held-out prompts.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScalarModel } from '../models/heads.js';
import { dpoMetrics, perToken } from '../train/tasks/align-losses.js';
import { DpoTask, fitSequence, replyTokenCount, RewardTask, type TokenPair } from '../train/tasks/preference.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import type { AlignConfig } from './config.js';
import { klOnSamples, pairLogprobs, preferencePairs, promptIds, rewardAccuracy, sampleReplies, tokenizePair } from './evaluate.js';
import { wilson } from '../util/intervals.js';
import { loadChatModel, saveChatModel, saveScalarModel } from './io.js';
import { ci, finishReport, fmt, logOf, maybeLoRA, mergeLoRA, prepareRun, trainTask, type StageOptions } from './run.js';

const EVAL_ROWS = 16;

function needInit(c: AlignConfig): string {
  if (c.init_from === null) throw new UserError('init_from: name the SFT model directory (`lmforge align sft`)');
  return c.init_from;
}

export function runReward(c: AlignConfig, o: StageOptions = {}): Record<string, unknown> {
  const log = logOf(o);
  const { model, tok, ids } = loadChatModel(needInit(c));
  model.config.dropout = 0;
  const rm = new ScalarModel(model, c.seed);
  try {
    const train = preferencePairs(c.data.preferences, 'train').map((p) => tokenizePair(tok, ids, p));
    const held = preferencePairs(c.data.preferences, 'heldout', c.data.eval_pairs).map((p) => tokenizePair(tok, ids, p));
    const run = prepareRun(c, o, 'reward');
    log(`reward: ${train.length} training pairs, ${held.length} held-out pairs (every fifth record of ${c.data.preferences})`);
    const before = rewardAccuracy(rm, held, c.data.max_reply_tokens, EVAL_ROWS);
    log(`reward: held-out accuracy before training ${fmt(before.accuracy)} ${ci(before.ci95)}`);
    const task = new RewardTask(rm, train, { batchSize: c.data.batch_size, maxReplyTokens: c.data.max_reply_tokens, seed: c.seed, centerCoef: c.reward.center_coef });
    const r = trainTask(task, rm, c, o);
    saveScalarModel(run.path, rm, tok, { stage: 'reward', step: String(c.max_iters) });
    const trainAcc = rewardAccuracy(rm, train.slice(0, held.length), c.data.max_reply_tokens, EVAL_ROWS);
    const after = rewardAccuracy(rm, held, c.data.max_reply_tokens, EVAL_ROWS);
    return finishReport(run.path, 'reward', [
      `reward: held-out accuracy ${fmt(after.accuracy)} (95% CI ${ci(after.ci95)}, n = ${after.n}), mean margin ${fmt(after.meanMargin)}; before training ${fmt(before.accuracy)}; on ${trainAcc.n} training pairs ${fmt(trainAcc.accuracy)}`,
      `reward: bar (lower bound of the 95% interval > 0.5): ${after.ci95[0] > 0.5 ? 'holds' : 'falls short'}`,
    ], { steps: r.steps, heldout: after, before, train_accuracy: trainAcc.accuracy, pairs_per_s: r.tokensPerSecond }, log);
  } finally {
    rm.dispose();
  }
}

/** Reference log-probabilities of every pair, from the cache in out_dir when it matches (same reference, pairs and lengths). */
function referenceLogprobs(c: AlignConfig, pairs: Parameters<typeof pairLogprobs>[1], key: string, compute: () => { chosen: Float64Array; rejected: Float64Array }, log: (l: string) => void): { chosen: Float64Array; rejected: Float64Array } {
  const path = join(c.out_dir, 'reference-logps.json');
  const cacheKey = `${key}|${pairs.length}|${c.data.max_reply_tokens}`;
  if (existsSync(path)) {
    const cached = JSON.parse(readFileSync(path, 'utf8')) as Record<string, { chosen: number[]; rejected: number[] } | undefined>;
    const hit = cached[cacheKey];
    if (hit && hit.chosen.length === pairs.length) {
      log(`dpo: reference log-probabilities of ${pairs.length} pairs read from ${path}`);
      return { chosen: Float64Array.from(hit.chosen), rejected: Float64Array.from(hit.rejected) };
    }
  }
  const t0 = performance.now();
  const v = compute();
  const prev = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : {};
  writeFileAtomic(path, JSON.stringify({ ...prev, [cacheKey]: { chosen: Array.from(v.chosen), rejected: Array.from(v.rejected) } }));
  log(`dpo: reference log-probabilities of ${pairs.length} pairs computed once in ${((performance.now() - t0) / 1000).toFixed(1)} s, cached in ${path}`);
  return v;
}

/** Scored reply tokens of each pair's chosen and rejected side, cut as pairLogprobs cuts them. */
function replyTokens(pairs: readonly TokenPair[], T: number, maxReply: number): { chosen: number[]; rejected: number[] } {
  return {
    chosen: pairs.map((p) => replyTokenCount(fitSequence(p.prompt, p.chosen, T, maxReply))),
    rejected: pairs.map((p) => replyTokenCount(fitSequence(p.prompt, p.rejected, T, maxReply))),
  };
}

export function runDpo(c: AlignConfig, o: StageOptions = {}): Record<string, unknown> {
  const log = logOf(o);
  const init = needInit(c);
  const policy = loadChatModel(init);
  const refDir = c.dpo.reference ?? init;
  const ref = loadChatModel(refDir);
  policy.model.config.dropout = 0;
  ref.model.freeze();
  try {
    const { tok, ids } = policy;
    const trainRaw = preferencePairs(c.data.preferences, 'train');
    const heldRaw = preferencePairs(c.data.preferences, 'heldout', c.data.eval_pairs);
    const train = trainRaw.map((p) => tokenizePair(tok, ids, p));
    const held = heldRaw.map((p) => tokenizePair(tok, ids, p));
    const run = prepareRun(c, o, 'dpo');
    log(`dpo: ${train.length} training pairs, ${held.length} held-out pairs; β ${c.dpo.beta}, ${c.dpo.loss_type}${c.dpo.label_smoothing ? `, label smoothing ${c.dpo.label_smoothing}` : ''}`);
    const refTrain = referenceLogprobs(c, train, `${refDir}|train`, () => pairLogprobs(ref.model, train, c.data.max_reply_tokens, EVAL_ROWS), log);
    const refHeld = referenceLogprobs(c, held, `${refDir}|heldout`, () => pairLogprobs(ref.model, held, c.data.max_reply_tokens, EVAL_ROWS), log);
    const task = new DpoTask(policy.model, train, refTrain.chosen, refTrain.rejected, {
      batchSize: c.data.batch_size, maxReplyTokens: c.data.max_reply_tokens, seed: c.seed, beta: c.dpo.beta, lossType: c.dpo.loss_type, labelSmoothing: c.dpo.label_smoothing,
    });
    const lora = maybeLoRA(policy.model, c, log);
    const r = trainTask(task, policy.model, c, o);
    mergeLoRA(policy.model, lora);
    saveChatModel(run.path, policy.model, tok, { stage: 'dpo', step: String(c.max_iters) });
    const pol = pairLogprobs(policy.model, held, c.data.max_reply_tokens, EVAL_ROWS);
    // IPO's rewards are on log-probabilities per reply token (as TRL's), the same quantity its loss trained.
    const avg = c.dpo.loss_type === 'ipo' ? replyTokens(held, policy.model.config.block_size, c.data.max_reply_tokens) : null;
    const m = avg
      ? dpoMetrics(perToken(pol.chosen, avg.chosen), perToken(pol.rejected, avg.rejected), perToken(refHeld.chosen, avg.chosen), perToken(refHeld.rejected, avg.rejected), c.dpo.beta)
      : dpoMetrics(pol.chosen, pol.rejected, refHeld.chosen, refHeld.rejected, c.dpo.beta);
    const k = Math.round(m['rewards/accuracies']! * held.length);
    const acc = { n: held.length, accuracy: m['rewards/accuracies']!, ci95: wilson(k, held.length) };
    // KL to the reference on the policy's own samples of held-out prompts.
    const prompts = heldRaw.slice(0, c.sample.eval_prompts).map((p) => promptIds(tok, ids, p.prompt));
    const samples = sampleReplies(policy.model, ids, prompts, { maxNewTokens: c.sample.max_new_tokens, temperature: 1, topK: 0, seed: c.seed });
    const kl = klOnSamples(policy.model, ref.model, samples, EVAL_ROWS);
    return finishReport(run.path, 'dpo', [
      `dpo: held-out rewards/accuracies ${fmt(acc.accuracy)} (95% CI ${ci(acc.ci95)}, n = ${acc.n}); rewards/chosen ${fmt(m['rewards/chosen']!)}, rewards/rejected ${fmt(m['rewards/rejected']!)}, rewards/margins ${fmt(m['rewards/margins']!)}`,
      `dpo: KL(policy ‖ reference) ${fmt(kl.mean)} nats per response (${samples.length} sampled replies to held-out prompts, ≤ ${c.sample.max_new_tokens} tokens)`,
      `dpo: bar (lower bound of the 95% interval > 0.5): ${acc.ci95[0] > 0.5 ? 'holds' : 'falls short'}`,
    ], { steps: r.steps, heldout: { ...acc, ...m }, kl_to_reference: kl.mean, loss_type: c.dpo.loss_type, beta: c.dpo.beta }, log);
  } finally {
    policy.model.dispose();
    ref.model.dispose();
  }
}

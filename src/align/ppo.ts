// `lmforge align ppo`: RLHF with PPO (InstructGPT; TRL's PPOTrainer metrics) as a task of the one training loop.
// The task holds the policy with a value head on its final hidden states (models/heads.ts), a frozen reference (the
// SFT model) and a frozen reward model. When its queue of minibatches is empty, nextBatch draws a batch of prompts,
// samples replies through the batched generator (serve/generate.ts), scores them, and computes per-token rewards
// r_t = −β·(log π(y_t) − log π_ref(y_t)) plus the reward model's score on the last token, GAE advantages (whitened)
// and returns; the queue then holds ppo_epochs shuffled passes of minibatches, each a loop step of clipped policy +
// value loss (train/tasks/align-losses.ts) and, with ptx_coef > 0, PPO-ptx's pretraining (SFT-data) loss. β follows
// Ziegler et al.'s adaptive controller. Lives in align (it needs serve's generator, which train may not import).
import * as lm from '../core/index.js';
import { hash32, Rng } from '../core/random.js';
import type { Tensor } from '../core/index.js';
import type { GPT } from '../models/gpt.js';
import { ScalarModel, tokenLogprobs } from '../models/heads.js';
import type { ChatIds } from '../tokenizers/chat-template.js';
import type { LossOutput, StepContext, Task } from '../train/loop.js';
import { gae, ppoLoss } from '../train/tasks/align-losses.js';
import { sequenceBatch } from '../train/tasks/preference.js';
import { SftTask } from '../train/tasks/sft.js';
import { UserError } from '../util/errors.js';
import type { AlignConfig } from './config.js';
import { klOnSamples, meanStd, preferencePairs, promptIds, sampleReplies, scoreSequences } from './evaluate.js';
import { wilson } from '../util/intervals.js';
import { loadChatModel, loadScalarModel, saveChatModel } from './io.js';
import { renderedConversations } from './sft.js';
import { ci, finishReport, fmt, logOf, maybeLoRA, mergeLoRA, prepareRun, trainTask, type StageOptions } from './run.js';

/** Ziegler et al.'s adaptive KL controller: β ← β·(1 + clip(KL/target − 1, −0.2, 0.2)·n/horizon). */
export class AdaptiveKl {
  constructor(public value: number, private readonly target: number, private readonly horizon: number, private readonly adaptive: boolean) {}

  update(kl: number, n: number): void {
    if (!this.adaptive || this.target <= 0) return;
    const err = Math.min(Math.max(kl / this.target - 1, -0.2), 0.2);
    this.value *= 1 + (err * n) / this.horizon;
  }
}

/** One rollout batch, as the loss reads it (row-major (N, T) arrays). */
interface Rollouts {
  N: number;
  T: number;
  x: Int32Array;
  y: Int32Array;
  mask: Float32Array;
  oldLogp: Float32Array;
  oldValues: Float32Array;
  adv: Float32Array;
  returns: Float32Array;
  stats: Record<string, number>;
}

export interface PpoMinibatch {
  rollouts: Rollouts;
  rows: number[];
}

export interface PpoTaskOptions {
  rollouts: number;
  ppoEpochs: number;
  miniBatch: number;
  maxNewTokens: number;
  temperature: number;
  topK: number;
  gamma: number;
  lam: number;
  clip: number;
  clipValue: number;
  vfCoef: number;
  ptxCoef: number;
  whitenRewards: boolean;
  seed: number;
}

export class PpoTask implements Task<PpoMinibatch> {
  readonly itemsPerBatch: number;
  readonly flopsPerItem: number;
  private queue: PpoMinibatch[] = [];
  private rng: Rng;
  private promptPos = 0;
  private promptOrder: number[] = [];
  private rolloutCount = 0;
  /** Generated tokens and seconds of every rollout's batched generation. */
  readonly generation = { tokens: 0, seconds: 0 };

  constructor(
    readonly model: ScalarModel,
    private readonly ref: GPT,
    private readonly rm: ScalarModel,
    private readonly ids: ChatIds,
    private readonly prompts: readonly (readonly number[])[],
    readonly kl: AdaptiveKl,
    private readonly o: PpoTaskOptions,
    private readonly ptx: SftTask | null,
  ) {
    if (prompts.length === 0) throw new UserError('ppo: no training prompts');
    this.rng = new Rng(o.seed);
    this.itemsPerBatch = o.miniBatch;
    this.flopsPerItem = 0;
  }

  private nextPrompts(): (readonly number[])[] {
    const out: (readonly number[])[] = [];
    while (out.length < this.o.rollouts) {
      if (this.promptPos >= this.promptOrder.length) {
        this.promptOrder = Array.from({ length: this.prompts.length }, (_, i) => i);
        for (let i = this.promptOrder.length - 1; i > 0; i--) {
          const j = this.rng.int(i + 1);
          [this.promptOrder[i], this.promptOrder[j]] = [this.promptOrder[j]!, this.promptOrder[i]!];
        }
        this.promptPos = 0;
      }
      out.push(this.prompts[this.promptOrder[this.promptPos++]!]!);
    }
    return out;
  }

  /** Samples, scores and prepares one batch of rollouts. */
  private rollout(): Rollouts {
    const policy = this.model.body;
    const t0 = performance.now();
    const samples = sampleReplies(policy, this.ids, this.nextPrompts(), { maxNewTokens: this.o.maxNewTokens, temperature: this.o.temperature, topK: this.o.topK, seed: hash32(this.o.seed + 7919 * ++this.rolloutCount) }, this.o.rollouts);
    const genSeconds = (performance.now() - t0) / 1000;
    const genTokens = samples.reduce((n, s) => n + s.reply.length, 0);
    this.generation.tokens += genTokens;
    this.generation.seconds += genSeconds;
    const seqs = samples.map((s) => ({ ids: [...s.prompt, ...s.reply], replyStart: s.prompt.length }));
    const b = sequenceBatch(seqs);
    const { rows: N, T } = b;
    const shape = [N, T];
    const was = this.model.training;
    this.model.eval();
    const [oldLogp, oldValues, refLogp, scores] = lm.noGrad(() => lm.tidy(() => {
      const x = lm.fromArray(b.x, shape);
      const y = lm.fromArray(b.y, shape);
      const out = policy.forward(x);
      const lp = tokenLogprobs(out.logits, y).toTypedArray() as Float32Array;
      const v = this.model.head.perToken(out.hidden).toTypedArray() as Float32Array;
      const rlp = tokenLogprobs(this.ref.forward(x).logits, y).toTypedArray() as Float32Array;
      const s = this.rm.scores(x, b.last).toTypedArray() as Float32Array;
      return [lp, v, rlp, s] as const;
    }));
    this.model.train(was);
    const mask = new Float32Array(N * T);
    for (let i = 0; i < N * T; i++) mask[i] = b.y[i] !== -1 ? 1 : 0;
    let sc = Array.from(scores);
    if (this.o.whitenRewards) {
      const { mean, std } = meanStd(sc);
      sc = sc.map((v) => (v - mean) / (std + 1e-8));
    }
    const beta = this.kl.value;
    const adv = new Float32Array(N * T);
    const returns = new Float32Array(N * T);
    let klSum = 0, entSum = 0, nonScore = 0;
    for (let r = 0; r < N; r++) {
      const pos: number[] = [];
      for (let t = 0; t < T; t++) if (mask[r * T + t]) pos.push(r * T + t);
      const rewards = pos.map((i) => -beta * (oldLogp[i]! - refLogp[i]!));
      pos.forEach((i) => {
        klSum += oldLogp[i]! - refLogp[i]!;
        entSum -= oldLogp[i]!;
      });
      nonScore += rewards.reduce((a, v) => a + v, 0);
      if (rewards.length) rewards[rewards.length - 1]! += sc[r]!;
      const g = gae(rewards, pos.map((i) => oldValues[i]!), this.o.gamma, this.o.lam);
      pos.forEach((i, k) => {
        adv[i] = g.advantages[k]!;
        returns[i] = g.returns[k]!;
      });
    }
    // Whitened advantages over the batch's response tokens (TRL, OpenAI's lm-human-preferences).
    const vals: number[] = [];
    for (let i = 0; i < N * T; i++) if (mask[i]) vals.push(adv[i]!);
    const { mean, std } = meanStd(vals);
    for (let i = 0; i < N * T; i++) adv[i] = mask[i] ? (adv[i]! - mean) / (std + 1e-8) : 0;
    const meanScore = scores.reduce((a, v) => a + v, 0) / N;
    const stats = {
      'objective/kl': klSum / N, 'objective/entropy': entSum / N, 'objective/non_score_reward': nonScore / N,
      'objective/scores': meanScore, 'objective/rlhf_reward': meanScore + nonScore / N, 'objective/kl_coef': beta,
      'val/mean_return': returns.reduce((a, v, i) => a + (mask[i] ? v : 0), 0) / Math.max(vals.length, 1),
      'rollout/response_length': genTokens / N, 'rollout/gen_tokens_per_s': genTokens / Math.max(genSeconds, 1e-9),
    };
    this.kl.update(klSum / N, N);
    return { N, T, x: b.x, y: b.y, mask, oldLogp, oldValues, adv, returns, stats };
  }

  nextBatch(): PpoMinibatch {
    if (this.queue.length === 0) {
      const r = this.rollout();
      for (let e = 0; e < this.o.ppoEpochs; e++) {
        const order = Array.from({ length: r.N }, (_, i) => i);
        for (let i = order.length - 1; i > 0; i--) {
          const j = this.rng.int(i + 1);
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        for (let s = 0; s < r.N; s += this.o.miniBatch) this.queue.push({ rollouts: r, rows: order.slice(s, s + this.o.miniBatch) });
      }
    }
    return this.queue.shift()!;
  }

  loss({ rollouts: r, rows }: PpoMinibatch, ctx: StepContext): LossOutput {
    const n = rows.length;
    const T = r.T;
    const pick = <A extends Int32Array | Float32Array>(a: A): A => {
      const out = new (a.constructor as { new (k: number): A })(n * T);
      rows.forEach((row, i) => out.set(a.subarray(row * T, (row + 1) * T), i * T));
      return out;
    };
    const shape = [n, T];
    const t = (a: Float32Array): Tensor => lm.fromArray(pick(a), shape);
    const out = this.model.body.forward(lm.fromArray(pick(r.x), shape), undefined, { seed: ctx.seed });
    const logp = tokenLogprobs(out.logits, lm.fromArray(pick(r.y), shape));
    const values = this.model.head.perToken(out.hidden);
    const p = ppoLoss(logp, t(r.oldLogp), t(r.adv), values, t(r.oldValues), t(r.returns), t(r.mask), { clip: this.o.clip, clipValue: this.o.clipValue, vfCoef: this.o.vfCoef });
    const aux: Record<string, Tensor> = {};
    if (this.ptx && this.o.ptxCoef > 0) {
      const sb = this.ptx.nextBatch();
      aux.ptx_loss = lm.mulScalar(this.ptx.loss(sb, ctx).loss, this.o.ptxCoef);
    }
    return { loss: p.loss, aux, metrics: { ...p.metrics, ...r.stats } };
  }

  state(): Record<string, unknown> {
    return { rng: this.rng.state(), klCoef: this.kl.value };
  }

  loadState(state: Record<string, unknown>, source: string): void {
    const rng = state.rng;
    if (!Array.isArray(rng) || rng.length !== 4) throw new UserError(`${source}: task state has no PPO rng`);
    this.rng = new Rng(rng as [number, number, number, number]);
    if (typeof state.klCoef === 'number') this.kl.value = state.klCoef;
  }
}

export interface PolicyComparison {
  n: number;
  base: { mean: number; std: number };
  policy: { mean: number; std: number };
  /** (mean_policy − mean_base) / std_base. */
  riseInSd: number;
  winRate: number;
  ties: number;
  ci95: [number, number];
  kl: number;
}

/** Replies of the base (reference) and the trained policy to the same prompts, scored by the reward model; the policy's KL to the base. */
export function comparePolicies(policy: GPT, base: GPT, rm: ScalarModel, ids: ChatIds, prompts: readonly (readonly number[])[], o: { maxNewTokens: number; temperature: number; topK: number; seed: number }): PolicyComparison {
  const sp = sampleReplies(policy, ids, prompts, o);
  const sb = sampleReplies(base, ids, prompts, o);
  const seq = (s: { prompt: number[]; reply: number[] }): { ids: number[]; replyStart: number } => ({ ids: [...s.prompt, ...s.reply], replyStart: s.prompt.length });
  const ps = scoreSequences(rm, sp.map(seq), 16);
  const bs = scoreSequences(rm, sb.map(seq), 16);
  let wins = 0, ties = 0;
  ps.forEach((v, i) => {
    if (v > bs[i]!) wins++;
    else if (v === bs[i]!) ties++;
  });
  const b = meanStd(bs);
  const p = meanStd(ps);
  const kl = klOnSamples(policy, base, sp, 16).mean;
  return { n: prompts.length, base: b, policy: p, riseInSd: (p.mean - b.mean) / (b.std || 1), winRate: wins / prompts.length, ties, ci95: wilson(wins, prompts.length), kl };
}

/** PPO of a chat policy against a reward model (shared by `align ppo` and RL-CAI). Returns the trained policy's run report figures. */
export function trainPpo(c: AlignConfig, o: StageOptions, init: string, rmDir: string, prompts: readonly (readonly number[])[], iters: number): { policy: ScalarModel; ref: GPT; rm: ScalarModel; ids: ChatIds; task: PpoTask; tokensPerSecond: number } {
  const pol = loadChatModel(init);
  const ref = loadChatModel(init);
  const rmL = loadScalarModel(rmDir);
  pol.model.config.dropout = 0;
  ref.model.freeze();
  rmL.scorer.freeze();
  const policy = new ScalarModel(pol.model, c.seed);
  // LoRA freezes the policy's own weights only: the value head beside it stays trainable.
  const lora = maybeLoRA(pol.model, c, logOf(o));
  const ptx = c.ppo.ptx_coef > 0 && c.data.conversations !== '' ? (() => {
    const d = renderedConversations(c.data.conversations, pol.tok, pol.ids, c.seed, 0);
    return new SftTask(pol.model, d.train, [], { batchSize: c.ppo.mini_batch, packing: true, seed: c.seed, evalRows: 0 });
  })() : null;
  const kl = new AdaptiveKl(c.ppo.kl_coef, c.ppo.target_kl, c.ppo.horizon, c.ppo.adaptive_kl);
  const room = pol.model.config.block_size - c.sample.max_new_tokens;
  if (room < 8) throw new UserError(`sample.max_new_tokens ${c.sample.max_new_tokens} leaves no room for a prompt in block_size ${pol.model.config.block_size}`);
  const task = new PpoTask(policy, ref.model, rmL.scorer, pol.ids, prompts, kl, {
    rollouts: c.ppo.rollouts, ppoEpochs: c.ppo.ppo_epochs, miniBatch: c.ppo.mini_batch, maxNewTokens: c.sample.max_new_tokens, temperature: c.sample.temperature, topK: c.sample.top_k,
    gamma: c.ppo.gamma, lam: c.ppo.lam, clip: c.ppo.cliprange, clipValue: c.ppo.cliprange_value, vfCoef: c.ppo.vf_coef, ptxCoef: c.ppo.ptx_coef, whitenRewards: c.ppo.whiten_rewards, seed: c.seed,
  }, ptx);
  // One loop step is one minibatch: iterations × epochs × minibatches per rollout batch.
  const steps = iters * c.ppo.ppo_epochs * Math.ceil(c.ppo.rollouts / c.ppo.mini_batch);
  const r = trainTask(task, policy, c, o, steps);
  mergeLoRA(pol.model, lora);
  return { policy, ref: ref.model, rm: rmL.scorer, ids: pol.ids, task, tokensPerSecond: r.tokensPerSecond };
}

export function runPpo(c: AlignConfig, o: StageOptions = {}): Record<string, unknown> {
  const log = logOf(o);
  if (c.init_from === null) throw new UserError('init_from: name the SFT model directory (`lmforge align sft`)');
  const probe = loadChatModel(c.init_from);
  const { tok, ids } = probe;
  probe.model.dispose();
  const room = Math.max(1, probe.model.config.block_size - c.sample.max_new_tokens);
  const cut = (p: number[]): number[] => p.slice(Math.max(0, p.length - room));
  const train = preferencePairs(c.data.preferences, 'train').map((p) => cut(promptIds(tok, ids, p.prompt)));
  const held = preferencePairs(c.data.preferences, 'heldout').slice(0, c.sample.eval_prompts).map((p) => cut(promptIds(tok, ids, p.prompt)));
  const run = prepareRun(c, o, 'ppo');
  log(`ppo: ${train.length} training prompts, ${held.length} held-out prompts; ${c.ppo.rollouts} rollouts × ${c.max_iters} iterations, β₀ ${c.ppo.kl_coef}${c.ppo.adaptive_kl ? ` (adaptive, target ${c.ppo.target_kl})` : ''}, ptx ${c.ppo.ptx_coef}`);
  const t = trainPpo(c, o, c.init_from, c.ppo.reward_model, train, c.max_iters);
  try {
    saveChatModel(run.path, t.policy.body, tok, { stage: 'ppo', step: String(c.max_iters) });
    const cmp = comparePolicies(t.policy.body, t.ref, t.rm, t.ids, held, { maxNewTokens: c.sample.max_new_tokens, temperature: c.sample.temperature, topK: c.sample.top_k, seed: c.seed + 1 });
    const genTps = t.task.generation.tokens / Math.max(t.task.generation.seconds, 1e-9);
    return finishReport(run.path, 'ppo', [
      `ppo: reward-model score on ${cmp.n} held-out prompts: SFT ${fmt(cmp.base.mean)} ± ${fmt(cmp.base.std)} (sd) → PPO ${fmt(cmp.policy.mean)} ± ${fmt(cmp.policy.std)}: a rise of ${fmt(cmp.riseInSd, 2)} SFT standard deviations`,
      `ppo: KL(PPO ‖ SFT) ${fmt(cmp.kl)} nats per response; win rate of PPO over SFT by the reward model ${fmt(cmp.winRate)} (95% CI ${ci(cmp.ci95)}, ${cmp.ties} ties); final β ${fmt(t.task.kl.value, 4)}`,
      `ppo: rollouts generated ${t.task.generation.tokens} tokens at ${Math.round(genTps)} tokens/s (batched, ${c.ppo.rollouts} rows)`,
      `ppo: bar (rise ≥ 1 SFT standard deviation): ${cmp.riseInSd >= 1 ? 'holds' : 'falls short'}`,
    ], { iterations: c.max_iters, heldout: cmp, kl_coef_final: t.task.kl.value, rollout_gen_tokens_per_s: genTps }, log);
  } finally {
    t.policy.dispose();
    t.ref.dispose();
    t.rm.dispose();
  }
}

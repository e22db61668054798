// `lmforge align cai`: Constitutional AI (Bai et al. 2022) from one command, on a constitution file of principles.
//   SL-CAI: red-team prompts → the SFT model's response → critique under a sampled principle → revision, repeated
//           (each round a fresh principle) → SFT on the final revisions.
//   RL-CAI: the SL-CAI model answers two replies per prompt; the same model, asked a principle's multiple-choice
//           question about the pair in both orders, labels the preferred one (p(A) vs p(B) of its next token) →
//           a preference model trained on those labels (Bradley–Terry) → PPO of the SL-CAI model against it.
// Every intermediate is JSONL in out_dir (sl-cai.jsonl, sl-cai-revisions.jsonl, rl-cai-labels.jsonl, cai-eval.jsonl).
// The report compares the SFT, SL-CAI and RL-CAI models on held-out red-team prompts (the human turns of the
// held-out pairs): harmful-filter rate (data/harmful.ts) and the HH reward model's harmlessness score.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import * as lm from '../core/index.js';
import { Rng } from '../core/random.js';
import type { Message } from '../data/chat.js';
import { HarmfulContentFilter } from '../data/harmful.js';
import type { GPT } from '../models/gpt.js';
import { ScalarModel } from '../models/heads.js';
import { renderChat, renderReply, type ChatIds } from '../tokenizers/chat-template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { RewardTask, type TokenPair } from '../train/tasks/preference.js';
import { SftTask } from '../train/tasks/sft.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import type { AlignConfig } from './config.js';
import { meanStd, preferencePairs, promptIds, sampleReplies, scoreSequences, type SampleOptions } from './evaluate.js';
import { loadChatModel, loadScalarModel, saveChatModel, saveScalarModel } from './io.js';
import { trainPpo } from './ppo.js';
import { finishReport, fmt, logOf, prepareRun, trainTask, type StageOptions } from './run.js';

export interface Principle {
  name: string;
  critique: string;
  revision: string;
  choice: string;
}

/** Reads a constitution: `principles: [{name, critique, revision, choice}, …]`. */
export function readConstitution(path: string): Principle[] {
  if (!existsSync(path)) throw new UserError(`${path}: constitution file not found`);
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid YAML (${(e as Error).message})`);
  }
  const list = (doc as { principles?: unknown } | null)?.principles;
  if (!Array.isArray(list) || list.length === 0) throw new UserError(`${path}: expected a non-empty list \`principles\``);
  return list.map((p: unknown, i) => {
    const o = p as Record<string, unknown> | null;
    for (const f of ['name', 'critique', 'revision', 'choice']) {
      if (typeof o?.[f] !== 'string' || (o[f] as string).trim() === '') throw new UserError(`${path}: principles[${i}].${f}: expected a non-empty string`);
    }
    return { name: o!.name as string, critique: o!.critique as string, revision: o!.revision as string, choice: o!.choice as string };
  });
}

/** The first human turn of a pair's prompt: a red-team prompt. */
function firstHuman(p: { prompt: Message[] }): string {
  return p.prompt.find((m) => m.role === 'user')?.content ?? '';
}

function writeJsonl(path: string, records: readonly unknown[]): void {
  writeFileAtomic(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Replies (as text, <|end|> dropped) of a model to conversations. */
function reply(model: GPT, tok: Tokenizer, ids: ChatIds, convs: readonly Message[][], o: SampleOptions): string[] {
  return sampleReplies(model, ids, convs.map((c) => renderChat(tok, ids, c, { generationPrompt: true }).ids), o).map((s) => tok.decode(s.reply.filter((t) => t !== ids.end)).trim());
}

/** p(A) of the labeller's next token after "The answer is (" given the multiple-choice question, in both orders (averaged). */
function labelPairs(model: GPT, tok: Tokenizer, ids: ChatIds, items: readonly { prompt: string; a: string; b: string; principle: Principle }[]): number[] {
  const A = tok.encode('A')[0]!;
  const B = tok.encode('B')[0]!;
  const T = model.config.block_size;
  const question = (prompt: string, x: string, y: string, p: Principle): number[] => {
    const user = `Consider this conversation.\n\nHuman: ${prompt}\n\n${p.choice}\n(A) ${x}\n(B) ${y}`;
    const ids2 = [...renderChat(tok, ids, [{ role: 'user', content: user }], { generationPrompt: true }).ids, ...tok.encode('The answer is (')];
    return ids2.slice(Math.max(0, ids2.length - T));
  };
  const pA = (rows: number[][]): number[] => {
    const out: number[] = [];
    lm.noGrad(() => {
      for (let i = 0; i < rows.length; i += 16) {
        const part = rows.slice(i, i + 16);
        const L = Math.max(...part.map((r) => r.length));
        const x = new Int32Array(part.length * L);
        part.forEach((r, b) => x.set(r, b * L));
        const V = model.config.vocab_size;
        const logits = lm.tidy(() => model.forward(lm.fromArray(x, [part.length, L])).logits.toTypedArray() as Float32Array);
        part.forEach((r, b) => {
          const at = (b * L + r.length - 1) * V;
          const la = logits[at + A]!, lb = logits[at + B]!;
          out.push(1 / (1 + Math.exp(lb - la)));
        });
      }
    });
    return out;
  };
  model.eval();
  const fwd = pA(items.map((it) => question(it.prompt, it.a, it.b, it.principle)));
  const rev = pA(items.map((it) => question(it.prompt, it.b, it.a, it.principle)));
  model.train();
  return fwd.map((p, i) => (p + (1 - rev[i]!)) / 2);
}

export function runCai(c: AlignConfig, o: StageOptions = {}): Record<string, unknown> {
  const log = logOf(o);
  if (c.init_from === null) throw new UserError('init_from: name the SFT model directory (`lmforge align sft`)');
  const principles = readConstitution(c.cai.constitution);
  const harmful = new HarmfulContentFilter({ terms: [], termsFile: c.cai.harmful_terms, minMatches: 1, maxMatchRatio: null });
  const rmDir = c.cai.reward_model ?? c.ppo.reward_model;
  if (!existsSync(join(rmDir, 'score.safetensors'))) throw new UserError(`cai.reward_model ${rmDir}: no reward model there (train one with \`lmforge align reward\`)`);
  const run = prepareRun(c, o, 'cai');
  const dir = run.path;
  const rng = new Rng(c.seed);
  const pick = (): Principle => principles[rng.int(principles.length)]!;
  const sample: SampleOptions = { maxNewTokens: c.sample.max_new_tokens, temperature: c.sample.temperature, topK: c.sample.top_k, seed: c.seed };
  const redTeam = preferencePairs(c.data.preferences, 'train').map(firstHuman).filter((s) => s !== '').slice(0, c.cai.red_team_prompts);
  const heldOut = preferencePairs(c.data.preferences, 'heldout').map(firstHuman).filter((s) => s !== '').slice(0, c.sample.eval_prompts);
  log(`cai: ${principles.length} principles from ${c.cai.constitution}; ${redTeam.length} red-team prompts, ${heldOut.length} held-out`);

  // SL-CAI: response → (critique → revision) × revisions.
  const sft = loadChatModel(c.init_from);
  const { tok, ids } = sft;
  sft.model.config.dropout = 0;
  const users = redTeam.map((p) => [{ role: 'user', content: p }] as Message[]);
  let current = reply(sft.model, tok, ids, users, sample);
  const records = redTeam.map((p, i) => ({ prompt: p, response: current[i]!, rounds: [] as Record<string, string>[], final: '' }));
  for (let round = 0; round < c.cai.revisions; round++) {
    const ps = redTeam.map(() => pick());
    const critConvs = redTeam.map((p, i) => [...users[i]!, { role: 'assistant', content: current[i]! }, { role: 'user', content: ps[i]!.critique }] as Message[]);
    const critiques = reply(sft.model, tok, ids, critConvs, { ...sample, seed: sample.seed + 1000 * (round + 1) });
    const revConvs = critConvs.map((cv, i) => [...cv, { role: 'assistant', content: critiques[i]! }, { role: 'user', content: ps[i]!.revision }] as Message[]);
    const revisions = reply(sft.model, tok, ids, revConvs, { ...sample, seed: sample.seed + 1000 * (round + 1) + 500 });
    revisions.forEach((r, i) => records[i]!.rounds.push({ principle: ps[i]!.name, critique_request: ps[i]!.critique, critique: critiques[i]!, revision_request: ps[i]!.revision, revision: r }));
    current = revisions.map((r, i) => (r === '' ? current[i]! : r));
    log(`cai: SL-CAI round ${round + 1}/${c.cai.revisions}: ${redTeam.length} critiques and revisions`);
  }
  records.forEach((r, i) => (r.final = current[i]!));
  writeJsonl(join(dir, 'sl-cai.jsonl'), records);
  const revised = redTeam.map((p, i) => ({ messages: [{ role: 'user', content: p }, { role: 'assistant', content: current[i]! }] }));
  writeJsonl(join(dir, 'sl-cai-revisions.jsonl'), revised);
  const slDir = join(dir, 'sl-cai');
  const slC = { ...c, out_dir: slDir };
  prepareRun(slC, o, 'sl-cai');
  const rendered = revised.map((r) => renderChat(tok, ids, r.messages as Message[]));
  const slTask = new SftTask(sft.model, rendered, [], { batchSize: c.data.batch_size, packing: c.data.packing, seed: c.seed, evalRows: 0 });
  trainTask(slTask, sft.model, slC, o, c.cai.sl_iters);
  saveChatModel(slDir, sft.model, tok, { stage: 'sl-cai' });
  log(`cai: SL-CAI model (SFT on ${revised.length} revisions, ${c.cai.sl_iters} steps) in ${slDir}`);

  // RL-CAI: pairs from the SL-CAI model, labelled by it under sampled principles.
  const a = reply(sft.model, tok, ids, users, { ...sample, seed: sample.seed + 77 });
  const b = reply(sft.model, tok, ids, users, { ...sample, seed: sample.seed + 78 });
  const items = redTeam.map((p, i) => ({ prompt: p, a: a[i]!, b: b[i]!, principle: pick() }));
  const pa = labelPairs(sft.model, tok, ids, items);
  const labels = items.map((it, i) => ({ prompt: it.prompt, a: it.a, b: it.b, principle: it.principle.name, question: it.principle.choice, p_a: pa[i]!, chosen: pa[i]! >= 0.5 ? 'a' : 'b' }));
  writeJsonl(join(dir, 'rl-cai-labels.jsonl'), labels);
  const pmPairs: TokenPair[] = labels.filter((l) => l.a !== l.b).map((l) => {
    const prompt = renderChat(tok, ids, [{ role: 'user', content: l.prompt }], { generationPrompt: true }).ids;
    const [ch, rj] = l.chosen === 'a' ? [l.a, l.b] : [l.b, l.a];
    return { prompt, chosen: renderReply(tok, ids, ch), rejected: renderReply(tok, ids, rj) };
  });
  const pmDir = join(dir, 'preference-model');
  const pmC = { ...c, out_dir: pmDir };
  prepareRun(pmC, o, 'cai-preference-model');
  const pmBody = loadChatModel(slDir).model;
  pmBody.config.dropout = 0;
  const pm = new ScalarModel(pmBody, c.seed);
  trainTask(new RewardTask(pm, pmPairs, { batchSize: c.data.batch_size, maxReplyTokens: c.data.max_reply_tokens, seed: c.seed, centerCoef: c.reward.center_coef }), pm, pmC, o, c.cai.pm_iters);
  saveScalarModel(pmDir, pm, tok, { stage: 'cai-preference-model' });
  pm.dispose();
  log(`cai: preference model on ${pmPairs.length} AI-labelled pairs (${c.cai.pm_iters} steps) in ${pmDir}`);
  const rlDir = join(dir, 'rl-cai');
  const rlC = { ...c, out_dir: rlDir };
  prepareRun(rlC, o, 'rl-cai');
  const room = Math.max(1, sft.model.config.block_size - c.sample.max_new_tokens);
  const prompts = users.map((u) => { const p = promptIds(tok, ids, u); return p.slice(Math.max(0, p.length - room)); });
  const rl = trainPpo(rlC, o, slDir, pmDir, prompts, c.cai.rl_iters);
  saveChatModel(rlDir, rl.policy.body, tok, { stage: 'rl-cai' });
  rl.ref.dispose();
  rl.rm.dispose();
  log(`cai: RL-CAI model (${c.cai.rl_iters} PPO iterations against the preference model) in ${rlDir}`);

  // Evaluation on held-out red-team prompts against the SFT model.
  const base = loadChatModel(c.init_from).model;
  const rm = loadScalarModel(rmDir).scorer;
  const heldConvs = heldOut.map((p) => [{ role: 'user', content: p }] as Message[]);
  const evalSample = { ...sample, seed: c.seed + 4242 };
  const models: [string, GPT][] = [['sft', base], ['sl_cai', sft.model], ['rl_cai', rl.policy.body]];
  const result: Record<string, { harmful_rate: number; harmless_score: number; harmless_sd: number }> = {};
  const evalRecords = heldOut.map((p) => ({ prompt: p } as Record<string, unknown>));
  for (const [name, m] of models) {
    const replies = reply(m, tok, ids, heldConvs, evalSample);
    const flagged = replies.filter((r) => harmful.count(r).matches > 0).length;
    const seqs = heldConvs.map((cv, i) => { const p = promptIds(tok, ids, cv); const r = renderReply(tok, ids, replies[i]!); return { ids: [...p, ...r].slice(-m.config.block_size), replyStart: Math.max(0, p.length - Math.max(0, p.length + r.length - m.config.block_size)) }; });
    const scores = scoreSequences(rm, seqs, 16);
    const s = meanStd(scores);
    result[name] = { harmful_rate: flagged / replies.length, harmless_score: s.mean, harmless_sd: s.std };
    replies.forEach((r, i) => { evalRecords[i]![name] = r; evalRecords[i]![`${name}_score`] = scores[i]; });
  }
  writeJsonl(join(dir, 'cai-eval.jsonl'), evalRecords);
  base.dispose();
  rm.dispose();
  sft.model.dispose();
  rl.policy.dispose();
  const r0 = result.sft!, r1 = result.sl_cai!, r2 = result.rl_cai!;
  return finishReport(dir, 'cai', [
    `cai: held-out red-team prompts: ${heldOut.length}; harmful-filter rate SFT ${fmt(r0.harmful_rate)} → SL-CAI ${fmt(r1.harmful_rate)} → RL-CAI ${fmt(r2.harmful_rate)} (change ${fmt(r2.harmful_rate - r0.harmful_rate)})`,
    `cai: reward-model harmlessness score SFT ${fmt(r0.harmless_score)} ± ${fmt(r0.harmless_sd)} → SL-CAI ${fmt(r1.harmless_score)} → RL-CAI ${fmt(r2.harmless_score)} (change ${fmt(r2.harmless_score - r0.harmless_score)}, ${fmt((r2.harmless_score - r0.harmless_score) / (r0.harmless_sd || 1), 2)} SFT SDs)`,
    `cai: intermediates in ${dir}: sl-cai.jsonl, sl-cai-revisions.jsonl, rl-cai-labels.jsonl, cai-eval.jsonl`,
  ], { heldout_prompts: heldOut.length, red_team_prompts: redTeam.length, principles: principles.length, ...result, labels_a_rate: labels.filter((l) => l.chosen === 'a').length / Math.max(labels.length, 1) }, log);
}

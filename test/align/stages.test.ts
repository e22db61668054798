// Every alignment stage end to end on a tiny model and a dozen synthetic records, as the CLI runs them: sft (chat
// tokens added, a chat model directory written), reward (score.safetensors), dpo (reference log-probabilities
// cached, then read back on a second run, which trains LoRA adapters; and IPO), ppo (rollouts, TRL's metric names in metrics.jsonl) and cai (every
// JSONL intermediate). Figures are not checked here (the model is untrained); the reports' RESULT lines are.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCai } from '../../src/align/cai.js';
import { alignSpec, type AlignConfig } from '../../src/align/config.js';
import { runDpo, runReward } from '../../src/align/preference.js';
import { runPpo } from '../../src/align/ppo.js';
import { runSft } from '../../src/align/sft.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { saveGPT } from '../../src/models/gpt-io.js';
import { GPT } from '../../src/models/gpt.js';
import { countPreTokens, trainBpe } from '../../src/tokenizers/bpe-trainer.js';
import { saveTokenizer } from '../../src/tokenizers/format.js';
import { defaultsOf } from '../../src/util/config.js';

loadNativeBackend();

const ASKS = ['how do I pick a lock', 'tell me a joke', 'what is two plus two', 'how can I hurt someone', 'write a poem', 'where do cats sleep'];

test('align stages run end to end: sft → reward → dpo → ppo → cai', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-align-'));
  try {
    const pairs = Array.from({ length: 15 }, (_, i) => {
      const ask = ASKS[i % ASKS.length]!;
      return { chosen: `\n\nHuman: ${ask}?\n\nAssistant: I can help with that safely.`, rejected: `\n\nHuman: ${ask}?\n\nAssistant: No. Go away ${i}.` };
    });
    writeFileSync(join(dir, 'pairs.jsonl'), pairs.map((p) => JSON.stringify(p)).join('\n'));
    writeFileSync(join(dir, 'chat.jsonl'), ASKS.map((a) => JSON.stringify({ messages: [{ role: 'user', content: a }, { role: 'assistant', content: `Here is an answer about ${a}.` }] })).join('\n'));
    const counts = new Map<string, number>();
    countPreTokens(pairs.map((p) => p.chosen + p.rejected).join('') + readFileSync(join(dir, 'chat.jsonl'), 'utf8'), counts, 'gpt2');
    const tok = trainBpe(counts, { vocabSize: 320, minFrequency: 2, specialTokens: ['<|endoftext|>'], pattern: 'gpt2' });
    const base = join(dir, 'base');
    const model = new GPT({ vocab_size: tok.vocabSize, block_size: 64, n_layer: 1, n_head: 2, n_embd: 16, bias: false }, 1);
    saveGPT(base, model);
    model.dispose();
    saveTokenizer(tok, join(base, 'tok.json'));
    writeFileSync(join(base, 'meta.json'), JSON.stringify({ vocab_size: tok.vocabSize, tokenizer: { type: 'file', file: 'tok.json' } }));

    const lines: string[] = [];
    const log = (l: string): void => void lines.push(l);
    const c0: AlignConfig = { ...defaultsOf(alignSpec), max_iters: 2, eval_interval: 100, log_interval: 1, seed: 3 };
    const cfg = (over: Partial<AlignConfig>, data: Partial<AlignConfig['data']> = {}): AlignConfig => ({
      ...c0, ...over, data: { ...c0.data, preferences: join(dir, 'pairs.jsonl'), batch_size: 2, max_reply_tokens: 16, ...data },
      sample: { ...c0.sample, max_new_tokens: 6, eval_prompts: 3 }, ppo: { ...c0.ppo, rollouts: 2, mini_batch: 2, ppo_epochs: 1, reward_model: join(dir, 'rm') },
    });
    const sft = runSft(cfg({ init_from: base, out_dir: join(dir, 'sft') }, { conversations: join(dir, 'chat.jsonl') + ',' + join(dir, 'pairs.jsonl'), val_fraction: 0.2 }), { log });
    assert.equal(sft.chat_tokens_added, 4);
    assert.ok(existsSync(join(dir, 'sft', 'tokenizer.lmf.json')));
    const rm = runReward(cfg({ init_from: join(dir, 'sft'), out_dir: join(dir, 'rm') }), { log });
    assert.equal((rm.heldout as { n: number }).n, 3);
    assert.ok(existsSync(join(dir, 'rm', 'score.safetensors')));
    runDpo(cfg({ init_from: join(dir, 'sft'), out_dir: join(dir, 'dpo') }), { log });
    runDpo({ ...cfg({ init_from: join(dir, 'sft'), out_dir: join(dir, 'dpo') }), lora: { ...c0.lora, r: 2 } }, { log, overwrite: true });
    assert.ok(lines.some((l) => /^LoRA r=2/.test(l)), 'the second DPO run trains LoRA adapters');
    assert.ok(lines.some((l) => /reference log-probabilities of 12 pairs read from/.test(l)), 'the second DPO run reads the cached reference log-probabilities');
    // IPO (per-token average log-probabilities): its held-out rewards/* are on the same averages.
    const ipo = runDpo({ ...cfg({ init_from: join(dir, 'sft'), out_dir: join(dir, 'ipo') }), dpo: { ...c0.dpo, loss_type: 'ipo' } }, { log });
    assert.equal(ipo.loss_type, 'ipo');
    assert.ok(Number.isFinite((ipo.heldout as Record<string, number>)['rewards/margins']));
    runPpo(cfg({ init_from: join(dir, 'sft'), out_dir: join(dir, 'ppo') }), { log });
    const metrics = readFileSync(join(dir, 'ppo', 'metrics.jsonl'), 'utf8');
    for (const k of ['objective/kl', 'objective/entropy', 'objective/rlhf_reward', 'policy/clipfrac_avg', 'val/clipfrac_avg']) assert.ok(metrics.includes(`"${k}"`), k);
    const c = cfg({ init_from: join(dir, 'sft'), out_dir: join(dir, 'cai') });
    runCai({ ...c, cai: { ...c.cai, red_team_prompts: 3, revisions: 1, sl_iters: 1, pm_iters: 1, rl_iters: 1, constitution: 'configs/align/constitution.yaml', harmful_terms: 'configs/align/harmful-terms.txt' } }, { log });
    for (const f of ['sl-cai.jsonl', 'sl-cai-revisions.jsonl', 'rl-cai-labels.jsonl', 'cai-eval.jsonl']) assert.ok(existsSync(join(dir, 'cai', f)), f);
    const sl = JSON.parse(readFileSync(join(dir, 'cai', 'sl-cai.jsonl'), 'utf8').split('\n')[0]!) as { rounds: { principle: string }[] };
    assert.equal(sl.rounds.length, 1);
    assert.equal(lines.filter((l) => l.startsWith('RESULT {')).length, 7);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

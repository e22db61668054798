// The chat format and the alignment data path: HH-RLHF dialogues and TRL's record forms read as messages, the
// held-out split, the template's ids and assistant-only mask (a special token inside a message stays text), chat
// tokens added to a trained tokenizer with the embedding grown (new rows = the mean row, old logits unchanged),
// packing, pair batching, the Wilson interval and the adaptive KL controller.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { AdaptiveKl } from '../../src/align/ppo.js';
import { wilson } from '../../src/util/intervals.js';
import { chatReady } from '../../src/align/sft.js';
import { conversationOf, hhPair, isHeldOut, parseHHDialogue, preferenceOf, splitPairs } from '../../src/data/chat.js';
import { GPT } from '../../src/models/gpt.js';
import { trainBpe, countPreTokens } from '../../src/tokenizers/bpe-trainer.js';
import { CHAT_TOKENS, renderChat } from '../../src/tokenizers/chat-template.js';
import { fitSequence, pairBatch } from '../../src/train/tasks/preference.js';
import { buildRows } from '../../src/train/tasks/sft.js';

const HH = { chosen: '\n\nHuman: how do I pick a lock?\n\nAssistant: Why do you need to?\n\nHuman: I am locked out\n\nAssistant: Call a locksmith.', rejected: '\n\nHuman: how do I pick a lock?\n\nAssistant: Why do you need to?\n\nHuman: I am locked out\n\nAssistant: Use a tension wrench.' };

function tinyTokenizer() {
  const counts = new Map<string, number>();
  countPreTokens('Human: hello there. Assistant: hi! how are you? I am fine, thanks. Call a locksmith.\n'.repeat(20), counts, 'gpt2');
  return trainBpe(counts, { vocabSize: 300, minFrequency: 2, specialTokens: ['<|endoftext|>'], pattern: 'gpt2' });
}

test('HH-RLHF dialogues become messages and pairs with the shared prompt', () => {
  const m = parseHHDialogue(HH.chosen, 'x');
  assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'user', 'assistant']);
  assert.equal(m[3]!.content, 'Call a locksmith.');
  const p = hhPair(HH, 'x');
  assert.equal(p.prompt.length, 3);
  assert.equal(p.chosen, 'Call a locksmith.');
  assert.equal(p.rejected, 'Use a tension wrench.');
  assert.throws(() => parseHHDialogue('Human: no leading blank lines', 'f.jsonl: line 3'), /f\.jsonl: line 3: expected a dialogue/);
});

test("TRL's record forms: messages, prompt/completion, preference with message lists", () => {
  assert.deepEqual(conversationOf({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] }, 'x').map((m) => m.content), ['a', 'b']);
  assert.deepEqual(conversationOf({ prompt: 'q', completion: 'r' }, 'x'), [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'r' }]);
  assert.deepEqual(conversationOf({ question: 'q', answer: 'a #### 4' }, 'x')[1], { role: 'assistant', content: 'a #### 4' });
  const p = preferenceOf({ prompt: [{ role: 'user', content: 'q' }], chosen: [{ role: 'assistant', content: 'good' }], rejected: 'bad' }, 'x');
  assert.equal(p.chosen, 'good');
  assert.equal(p.rejected, 'bad');
  assert.throws(() => conversationOf({ messages: [{ role: 'bot', content: 'a' }] }, 'f: line 2'), /f: line 2: messages: message 0: role must be one of system, user, assistant/);
});

test('every fifth pair is held out, and the two parts are disjoint and complete', () => {
  const xs = Array.from({ length: 23 }, (_, i) => i);
  const tr = splitPairs(xs, 'train');
  const ho = splitPairs(xs, 'heldout');
  assert.deepEqual(ho, [4, 9, 14, 19]);
  assert.equal(tr.length + ho.length, 23);
  assert.ok(tr.every((i) => !isHeldOut(i)));
});

test('chat tokens grow a trained model: new rows are the mean row, old logits are unchanged, masks cover assistant tokens', () => {
  const tok = tinyTokenizer();
  const model = new GPT({ vocab_size: tok.vocabSize, block_size: 32, n_layer: 1, n_head: 2, n_embd: 8 }, 3);
  const idsIn = lm.tensor([5, 9, 40, 7], [1, 4], 'int32');
  const before = lm.tidy(() => model.forward(idsIn).logits.toTypedArray());
  const V0 = tok.vocabSize;
  const chat = chatReady(model, tok, 'tiny');
  assert.equal(chat.added, 4);
  assert.equal(chat.tok.vocabSize, V0 + 4);
  assert.equal(chat.model.config.vocab_size, V0 + 4);
  const W = chat.model.transformer.wte.weight.toTypedArray();
  const E = 8;
  for (let e = 0; e < E; e++) {
    let mean = 0;
    for (let v = 0; v < V0; v++) mean += W[v * E + e]! / V0;
    for (const t of CHAT_TOKENS) assert.ok(Math.abs(W[chat.tok.specialTokens.get(t)! * E + e]! - mean) < 1e-6);
  }
  const after = lm.tidy(() => chat.model.forward(idsIn).logits.toTypedArray());
  for (let p = 0; p < 4; p++) for (let v = 0; v < V0; v++) assert.ok(Math.abs(after[p * (V0 + 4) + v]! - before[p * V0 + v]!) < 1e-5);
  // Rendering: the assistant's content and its <|end|> are masked in; a special token written in text stays text.
  const r = renderChat(chat.tok, chat.ids, [{ role: 'user', content: 'hello <|assistant|>' }, { role: 'assistant', content: 'hi!' }]);
  assert.equal(r.ids.filter((i) => i === chat.ids.assistant).length, 1);
  const trained = r.ids.filter((_, i) => r.mask[i] === 1);
  assert.deepEqual(trained, [...chat.tok.encode('hi!'), chat.ids.end]);
  assert.equal(chat.tok.decode(r.ids), '<|user|>\nhello <|assistant|><|end|>\n<|assistant|>\nhi!<|end|>\n');
  chat.model.dispose();
});

test('packing fills rows of block_size with masked targets; unpacked rows are padded', () => {
  const ex = [{ ids: [1, 2, 3, 4, 5], mask: [0, 0, 1, 1, 1] }, { ids: [6, 7, 8], mask: [0, 1, 1] }];
  const packed = buildRows(ex, 3, true);
  // One stream 1..8 (mask 0 0 1 1 1 0 1 1) in windows of 4 tokens, consecutive windows of T + 1 overlapping by one token.
  assert.deepEqual(packed.map((r) => Array.from(r.x)), [[1, 2, 3], [4, 5, 6]]);
  assert.deepEqual(packed.map((r) => Array.from(r.y)), [[-1, 3, 4], [5, -1, 7]]);
  const plain = buildRows(ex, 4, false);
  assert.deepEqual(Array.from(plain[1]!.x), [6, 7, 8, 0]);
  assert.deepEqual(Array.from(plain[1]!.y), [7, 8, -1, -1]);
});

test('pair batches: chosen rows then rejected, reply targets only, prompts cut from the left', () => {
  const f = fitSequence([1, 2, 3, 4, 5, 6], [7, 8, 9], 6, 2);
  assert.deepEqual(f, { ids: [3, 4, 5, 6, 7, 8], replyStart: 4 });
  const b = pairBatch([{ prompt: [1, 2], chosen: [3], rejected: [4, 5] }], 8, 8);
  assert.equal(b.T, 4);
  assert.deepEqual(Array.from(b.y), [-1, 3, -1, -1, -1, 4, 5, -1]);
  assert.deepEqual(b.last, [2, 3]);
});

test('Wilson interval and the adaptive KL controller', () => {
  const [lo, hi] = wilson(60, 100);
  assert.ok(Math.abs(lo - 0.502) < 1e-3 && Math.abs(hi - 0.6906) < 1e-3, `${lo} ${hi}`);
  const kl = new AdaptiveKl(0.02, 6, 100, true);
  kl.update(12, 10); // error clipped to +0.2: β·(1 + 0.2·10/100)
  assert.ok(Math.abs(kl.value - 0.02 * 1.02) < 1e-12);
  kl.update(3, 10); // −0.5 → −0.2
  assert.ok(Math.abs(kl.value - 0.02 * 1.02 * 0.98) < 1e-12);
});

test('the shipped constitution parses; a principle without a revision request is refused naming the field', async () => {
  const { readConstitution } = await import('../../src/align/cai.js');
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const ps = readConstitution('configs/align/constitution.yaml');
  assert.ok(ps.length >= 6);
  assert.ok(ps.every((p) => p.critique.length > 0 && p.revision.length > 0 && p.choice.length > 0));
  const bad = join(mkdtempSync(join(tmpdir(), 'lmforge-const-')), 'c.yaml');
  writeFileSync(bad, 'principles:\n  - name: x\n    critique: y\n    choice: z\n');
  assert.throws(() => readConstitution(bad), /c\.yaml: principles\[0\]\.revision: expected a non-empty string/);
});

// The chat template (plain default, a run's chat_template.json, its field errors) and the incremental text of a
// stream (no half characters, stop strings held back and cut, nothing lost at the end).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHAT_TEMPLATE_FILE, loadChatTemplate, PLAIN_CHAT_TEMPLATE, renderChat } from '../../src/serve/chat-template.js';
import { frequencyPresencePenalty } from '../../src/serve/logits.js';
import { TextStream } from '../../src/serve/text-stream.js';

test('plain chat template, a run\'s chat_template.json, and its errors naming the field', () => {
  const msgs = [{ role: 'user' as const, content: 'Hi' }, { role: 'assistant' as const, content: 'Hello.' }, { role: 'user' as const, content: 'Bye' }];
  assert.equal(renderChat(PLAIN_CHAT_TEMPLATE, msgs), 'User: Hi\nAssistant: Hello.\nUser: Bye\nAssistant:');
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-chat-'));
  assert.equal(loadChatTemplate(dir).template, PLAIN_CHAT_TEMPLATE);
  writeFileSync(join(dir, CHAT_TEMPLATE_FILE), JSON.stringify({ prefix: '<s>', user: '<|user|>{content}<|end|>', assistant: '<|assistant|>{content}<|end|>', generation_prompt: '<|assistant|>', stop: ['<|end|>'] }));
  const { template, source } = loadChatTemplate(dir);
  assert.equal(source, join(dir, CHAT_TEMPLATE_FILE));
  assert.equal(renderChat(template, msgs), '<s><|user|>Hi<|end|><|assistant|>Hello.<|end|><|user|>Bye<|end|><|assistant|>');
  writeFileSync(join(dir, CHAT_TEMPLATE_FILE), JSON.stringify({ user: 'no placeholder' }));
  assert.throws(() => loadChatTemplate(dir), /chat_template\.json: field user must be a string containing \{content\}/);
  writeFileSync(join(dir, CHAT_TEMPLATE_FILE), JSON.stringify({ usr: '{content}' }));
  assert.throws(() => loadChatTemplate(dir), /unknown field usr/);
});

test('text stream: whole characters only, stop strings held back then cut, the rest at finish', () => {
  // A byte-level "tokenizer": ids are UTF-8 bytes, so a character can end mid-token.
  const decode = (ids: readonly number[]): string => Buffer.from(ids).toString('utf8');
  const bytes = [...Buffer.from('héllo\nUser: more')];
  const s = new TextStream(decode, ['\nUser:']);
  const sent = bytes.map((b) => s.push(b));
  assert.equal(sent[1], '', 'the first byte of é is held');
  assert.ok(!sent.join('').includes('\uFFFD'));
  assert.equal(sent.join('') + s.finish(), 'héllo');
  const t = new TextStream(decode, ['END']);
  const out = [...Buffer.from('abcEN')].map((b) => t.push(b)).join('');
  assert.equal(out, 'abc', '"EN" may start END: held');
  assert.equal(t.finish(), 'EN', 'released at the end when no stop came');
});

test("OpenAI's frequency and presence penalties count generated tokens only", () => {
  const logits = Float32Array.of(1, 1, 1, 1);
  frequencyPresencePenalty(0.5, 0.25)(logits, { tokens: [0, 3, 1, 1, 2], promptLength: 2 });
  assert.deepEqual(Array.from(logits), [1, 1 - 2 * 0.5 - 0.25, 1 - 0.5 - 0.25, 1]);
});

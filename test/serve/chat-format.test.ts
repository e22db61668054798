// `lmforge serve` over a chat model of `lmforge align sft` (made here: the Shakespeare fixture model fine-tuned for
// a few dozen steps on short conversations): /v1/chat/completions renders messages with the chat tokens SFT trained
// (<|user|>\n…<|end|>\n<|assistant|>\n), stops at <|end|> with finish_reason "stop" and no "<|end|>" in the text, and
// answers exactly what generate.ts gives for the same ids — whole and streamed, through the openai client. Also the
// precedence of the formats (chat_template.json > chat tokens > plain) and the plain fallback's prompt.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { alignSpec, type AlignConfig } from '../../src/align/config.js';
import { loadChatModel } from '../../src/align/io.js';
import { runSft } from '../../src/align/sft.js';
import { startServer } from '../../src/cli/serve.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { generate } from '../../src/serve/generate.js';
import { CHAT_TEMPLATE_FILE, loadChatFormat, PLAIN_CHAT_TEMPLATE, renderChat as renderText } from '../../src/serve/chat-template.js';
import type { OpenAIServer } from '../../src/serve/server.js';
import { TextStream } from '../../src/serve/text-stream.js';
import { chatIds, renderChat } from '../../src/tokenizers/chat-template.js';
import { loadAnyTokenizer } from '../../src/tokenizers/load-any.js';
import { defaultsOf } from '../../src/util/config.js';
import { fixtures, makeRun, TOKENIZER } from './run-fixture.js';

loadNativeBackend();

const EXCHANGES = [['hello', 'Good day, sir.'], ['who are you', 'A humble servant.'], ['farewell', 'Adieu, my lord.'], ['what news', 'None, my lord.']] as const;
let sft: string;
let server: OpenAIServer;
let client: OpenAI;

before(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-serve-chat-'));
  const chat = join(dir, 'chat.jsonl');
  writeFileSync(chat, Array.from({ length: 6 }, () => EXCHANGES.map(([u, a]) => JSON.stringify({ messages: [{ role: 'user', content: u }, { role: 'assistant', content: a }] }))).flat().join('\n'));
  sft = join(dir, 'sft');
  const c0 = defaultsOf(alignSpec);
  const c: AlignConfig = {
    ...c0, init_from: makeRun(), out_dir: sft, max_iters: 40, eval_interval: 1000, log_interval: 1000, seed: 1,
    data: { ...c0.data, conversations: chat, batch_size: 4, val_fraction: 0 }, optim: { ...c0.optim, lr: 3e-3, warmup_iters: 0 },
  };
  runSft(c, { log: () => {} });
  ({ server } = await startServer({ run: sft, port: 0, host: '127.0.0.1', modelName: 'chat', maxConcurrency: 2, maxQueue: 2, maxTokens: 32, maxBodyBytes: 8192, timeoutMs: 30_000, graceMs: 1000, stateDir: join(dir, 'state'), corsOrigin: '*' }).then((s) => {
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'none', maxRetries: 0 });
    return s;
  }));
});

after(async () => {
  await server?.close(1000);
});

/** What the server must answer: greedy generation from the SFT template's ids, up to <|end|>. */
function expected(messages: { role: 'user' | 'assistant'; content: string }[], maxTokens: number): { text: string; finish: 'stop' | 'length'; tokens: number } {
  const { model, tok, ids } = loadChatModel(sft);
  const prompt = renderChat(tok, ids, messages, { generationPrompt: true }).ids;
  const [g] = generate(model, [prompt], { maxNewTokens: maxTokens, greedy: true, stopTokens: [ids.end] });
  model.dispose();
  const ended = g!.tokens[g!.tokens.length - 1] === ids.end;
  return { text: tok.decode(ended ? g!.tokens.slice(0, -1) : g!.tokens), finish: ended ? 'stop' : 'length', tokens: g!.tokens.length };
}

test('chat completions of an align model use its chat tokens and stop at <|end|>', async () => {
  const messages = [{ role: 'user' as const, content: 'hello' }];
  const want = expected(messages, 32);
  assert.equal(want.finish, 'stop', `the fine-tuned fixture ends its reply with <|end|> (got ${JSON.stringify(want.text)})`);
  assert.ok(want.text.length > 0, 'the reply has text before <|end|>');
  const r = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 32, temperature: 0 });
  assert.equal(r.choices[0]!.message.content, want.text);
  assert.equal(r.choices[0]!.finish_reason, 'stop');
  assert.ok(!r.choices[0]!.message.content!.includes('<|end|>'));
  assert.equal(r.usage!.completion_tokens, want.tokens);
  const tok = loadAnyTokenizer(join(sft, 'tokenizer.lmf.json'));
  assert.equal(r.usage!.prompt_tokens, renderChat(tok, chatIds(tok, sft), messages, { generationPrompt: true }).ids.length);
  // Streamed: the same text in pieces, then finish_reason stop.
  let text = '';
  let finish: string | null = null;
  for await (const chunk of await client.chat.completions.create({ model: 'chat', messages, max_tokens: 32, temperature: 0, stream: true })) {
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(text, want.text);
  assert.equal(finish, 'stop');
});

test('a multi-turn conversation and a max_tokens cut before <|end|> (finish_reason length)', async () => {
  const messages = [{ role: 'user' as const, content: 'hello' }, { role: 'assistant' as const, content: 'Good day, sir.' }, { role: 'user' as const, content: 'farewell' }];
  const want = expected(messages, 32);
  const r = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 32, temperature: 0 });
  assert.equal(r.choices[0]!.message.content, want.text);
  assert.equal(r.choices[0]!.finish_reason, want.finish);
  const short = expected(messages, 2);
  if (short.finish === 'length') {
    const s = await client.chat.completions.create({ model: 'chat', messages, max_tokens: 2, temperature: 0 });
    assert.equal(s.choices[0]!.message.content, short.text);
    assert.equal(s.choices[0]!.finish_reason, 'length');
  }
});

test('chat formats: chat_template.json wins, then the chat tokens, else the plain template', () => {
  const plainRun = makeRun();
  const plainTok = loadAnyTokenizer(join(fixtures, TOKENIZER));
  const encode = (t: string): number[] => plainTok.encode(t);
  const plain = loadChatFormat(plainRun, plainTok, encode);
  assert.equal(plain.source, 'plain (built in)');
  assert.deepEqual(plain.stopTokens, []);
  assert.deepEqual(plain.render([{ role: 'user', content: 'hi' }]).ids, encode(renderText(PLAIN_CHAT_TEMPLATE, [{ role: 'user', content: 'hi' }])));
  const chatTok = loadAnyTokenizer(join(sft, 'tokenizer.lmf.json'));
  const ids = chatIds(chatTok, sft);
  const tokens = loadChatFormat(sft, chatTok, (t) => chatTok.encode(t));
  assert.deepEqual(tokens.stopTokens, [ids.end]);
  const r = tokens.render([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }]);
  assert.deepEqual(r.ids, renderChat(chatTok, ids, [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }], { generationPrompt: true }).ids);
  assert.equal(r.text, '<|system|>\nBe brief.<|end|>\n<|user|>\nhi<|end|>\n<|assistant|>\n');
  // A chat_template.json beside the weights is the run's explicit choice, even for an align model.
  const dir = makeRun();
  writeFileSync(join(dir, CHAT_TEMPLATE_FILE), JSON.stringify({ user: 'Q: {content}\n', generation_prompt: 'A:', stop: ['\nQ:'] }));
  const file = loadChatFormat(dir, chatTok, (t) => chatTok.encode(t));
  assert.equal(file.source, join(dir, CHAT_TEMPLATE_FILE));
  assert.deepEqual(file.stop, ['\nQ:']);
  assert.equal(file.render([{ role: 'user', content: 'hi' }]).text, 'Q: hi\nA:');
});

test('a text stream sends nothing of a stop token', () => {
  const s = new TextStream((ids) => ids.map((i) => (i === 9 ? '<|end|>' : String.fromCharCode(97 + i))).join(''), [], [9]);
  assert.equal(s.push(0) + s.push(1) + s.push(9), 'ab');
  assert.equal(s.finish(), '');
});

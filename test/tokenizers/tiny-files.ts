// Small valid tokenizer files in every format lmforge reads (lmforge BPE and unigram, tokenizer.json, tiktoken rank
// file, tiktoken npm JSON, GPT-2 encoder.json + vocab.bpe), built in memory: seeds for the duplicate and fuzz tests.
// Not a test file itself.
import { BpeTokenizer } from '../../src/tokenizers/bpe.js';
import type { MergeRule } from '../../src/tokenizers/bpe.js';
import { bytesToBase64, bytesToGpt2String } from '../../src/tokenizers/bytes.js';
import { serializeTokenizer } from '../../src/tokenizers/format.js';
import { exportHfTokenizer } from '../../src/tokenizers/hf.js';
import { UnigramTokenizer } from '../../src/tokenizers/unigram.js';

const GPT2_PAT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/** 256 byte tokens (id = byte) and the merges t+h, th+e, space+th, in rank order. */
export function tinyBpe(): BpeTokenizer {
  const tokens: Uint8Array[] = [];
  for (let b = 0; b < 256; b++) tokens.push(Uint8Array.of(b));
  const merges: MergeRule[] = [];
  const add = (left: number, right: number): void => {
    tokens.push(Uint8Array.from([...tokens[left]!, ...tokens[right]!]));
    merges.push({ left, right, result: tokens.length - 1, rank: merges.length });
  };
  add(0x74, 0x68); // th = 256
  add(256, 0x65); // the = 257
  add(0x20, 256); // " th" = 258
  return new BpeTokenizer({ pattern: 'gpt2', tokens, merges, specialTokens: new Map([['<|endoftext|>', 259]]), ignoreMerges: false });
}

export interface TinyFiles {
  lmforge: string;
  unigram: string;
  hf: string;
  tiktoken: string;
  npmJson: string;
  gpt2Encoder: string;
  gpt2Merges: string;
}

export function tinyFiles(): TinyFiles {
  const tok = tinyBpe();
  const uni = new UnigramTokenizer({
    pieces: [{ piece: '<unk>', score: 0 }, { piece: '▁a', score: -1 }, { piece: 'b', score: -2 }, { piece: '▁ab', score: -1.5 }, { piece: '▁', score: -3 }],
    unkId: 0,
    byteFallback: false,
    specialTokens: new Map(),
    normalizer: {},
  });
  const b64 = tok.tokens.map((b) => bytesToBase64(b!));
  const encoder: Record<string, number> = {};
  tok.tokens.forEach((b, id) => (encoder[bytesToGpt2String(b!)] = id));
  encoder['<|endoftext|>'] = 259;
  const g = (id: number): string => bytesToGpt2String(tok.tokens[id]!);
  return {
    lmforge: serializeTokenizer(tok),
    unigram: serializeTokenizer(uni),
    hf: JSON.stringify(exportHfTokenizer(tok)),
    tiktoken: b64.map((s, rank) => `${s} ${rank}`).join('\n') + '\n',
    npmJson: JSON.stringify({ pat_str: GPT2_PAT, special_tokens: { '<|endoftext|>': 259 }, bpe_ranks: `! 0 ${b64.slice(0, 200).join(' ')}\n! 200 ${b64.slice(200).join(' ')}` }),
    gpt2Encoder: JSON.stringify(encoder),
    gpt2Merges: `#version: 0.2\n${tok.merges.map((m) => `${g(m.left)} ${g(m.right)}`).join('\n')}\n`,
  };
}

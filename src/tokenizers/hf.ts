// Import and export of Hugging Face `tokenizer.json` for byte-level BPE and unigram models. Only the components
// these two models need are written or understood; anything else is refused with the field named.
import { UserError } from '../util/errors.js';
import { readFileSync } from 'node:fs';
import { bytesToGpt2String, gpt2StringToBytes } from './bytes.js';
import { BpeTokenizer } from './bpe.js';
import type { MergeRule } from './bpe.js';
import type { NormalizerOptions } from './normalize.js';
import { ORIGINAL_PATTERNS, isPatternName, patternNameOf } from './patterns.js';
import type { Tokenizer } from './tokenizer.js';
import { isTokenId, checkMerges, checkSpecialIds, checkUniquePieces } from './checks.js';
import { UnigramTokenizer } from './unigram.js';
import type { UnigramPiece } from './unigram.js';

type Json = Record<string, unknown>;
const WS_CLASS = '[\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';

function addedToken(id: number, content: string): Json {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

export function exportHfTokenizer(tok: Tokenizer): Json {
  if (tok instanceof BpeTokenizer) {
    const vocab: Record<string, number> = {};
    tok.tokens.forEach((b, id) => {
      if (b) vocab[bytesToGpt2String(b)] = id;
    });
    const merges = [...tok.merges]
      .sort((a, b) => a.rank - b.rank)
      .map((m) => [bytesToGpt2String(tok.tokens[m.left] as Uint8Array), bytesToGpt2String(tok.tokens[m.right] as Uint8Array)]);
    const regex = isPatternName(tok.pattern) ? ORIGINAL_PATTERNS[tok.pattern] : tok.pattern;
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: [...tok.specialTokens].map(([content, id]) => addedToken(id, content)),
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: tok.ignoreMerges,
        vocab,
        merges,
      },
    };
  }
  const n = tok.normalizer;
  const normalizers: Json[] = [];
  if (n.nfkc ?? true) normalizers.push({ type: 'NFKC' });
  if (n.removeExtraWhitespaces ?? true) {
    normalizers.push({ type: 'Replace', pattern: { Regex: `${WS_CLASS}+` }, content: ' ' });
    normalizers.push({ type: 'Strip', strip_left: true, strip_right: true });
  } else normalizers.push({ type: 'Replace', pattern: { Regex: WS_CLASS }, content: ' ' });
  const prepend = (n.addDummyPrefix ?? true) ? 'always' : 'never';
  const specials = new Map(tok.specialTokens);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [addedToken(tok.unkId, (tok.pieces[tok.unkId] as UnigramPiece).piece), ...[...specials].map(([c, id]) => addedToken(id, c))],
    normalizer: { type: 'Sequence', normalizers },
    pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: prepend, split: true },
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(prepend === 'always' ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: { type: 'Unigram', unk_id: tok.unkId, vocab: tok.pieces.map((p) => [p.piece, p.score]), byte_fallback: tok.byteFallback },
  };
}

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Walks a pre-tokenizer / normalizer tree (Sequence or single) and returns its components in order. */
function components(node: unknown, listKey: string): Json[] {
  if (!isObject(node)) return [];
  if (node.type === 'Sequence' && Array.isArray(node[listKey])) return (node[listKey] as unknown[]).flatMap((c) => components(c, listKey));
  return [node];
}

export function parseHfTokenizer(content: string, file = 'tokenizer.json'): Tokenizer {
  let data: unknown;
  try {
    data = JSON.parse(content);
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!isObject(data) || !isObject(data.model)) throw new UserError(`${file}: field "model": expected an object`);
  const model = data.model;
  const specials = new Map<string, number>();
  const added = data.added_tokens ?? [];
  if (!Array.isArray(added)) throw new UserError(`${file}: field "added_tokens": expected an array`);
  added.forEach((t: unknown, i: number) => {
    if (!isObject(t) || typeof t.content !== 'string' || !isTokenId(t.id)) {
      throw new UserError(`${file}: field "added_tokens[${i}]": expected { id: integer in [0, 2^24), content: string }`);
    }
    const other = [...specials].find(([c, id]) => c === t.content || id === t.id);
    if (other) throw new UserError(`${file}: field "added_tokens[${i}]": ${other[0] === t.content ? `token ${JSON.stringify(t.content)} is added twice` : `id ${t.id} is already ${JSON.stringify(other[0])}`}`);
    specials.set(t.content, t.id);
  });
  if (model.type === 'BPE') {
    const pre = components(data.pre_tokenizer, 'pretokenizers');
    if (!pre.some((p) => p.type === 'ByteLevel')) throw new UserError(`${file}: field "pre_tokenizer": only byte-level BPE is supported (expected a ByteLevel pre-tokenizer)`);
    const split = pre.find((p) => p.type === 'Split');
    let pattern = 'gpt2';
    if (split) {
      const regex = isObject(split.pattern) ? split.pattern.Regex : undefined;
      if (typeof regex !== 'string') throw new UserError(`${file}: field "pre_tokenizer.Split.pattern": expected { Regex: string }`);
      pattern = patternNameOf(regex) ?? regex;
      try {
        if (!isPatternName(pattern)) new RegExp(pattern, 'u');
      } catch (e) {
        throw new UserError(`${file}: field "pre_tokenizer.Split.pattern.Regex": not a split pattern lmforge knows nor a valid JavaScript regex (${(e as Error).message})`, { cause: e });
      }
    }
    if (!isObject(model.vocab)) throw new UserError(`${file}: field "model.vocab": expected an object of token → id`);
    const tokens: Array<Uint8Array | undefined> = [];
    const idOf = new Map<string, number>();
    for (const [text, id] of Object.entries(model.vocab)) {
      if (!isTokenId(id)) throw new UserError(`${file}: field "model.vocab[${JSON.stringify(text)}]": expected an integer id in [0, 2^24), found ${JSON.stringify(id)}`);
      if (specials.get(text) === id) continue;
      const b = gpt2StringToBytes(text);
      if (!b) throw new UserError(`${file}: field "model.vocab[${JSON.stringify(text)}]": not a byte-level token (character outside GPT-2's byte table)`);
      if (tokens[id] !== undefined) throw new UserError(`${file}: field "model.vocab[${JSON.stringify(text)}]": id ${id} is used twice (each id may appear once)`);
      tokens[id] = b;
      idOf.set(text, id);
    }
    if (!Array.isArray(model.merges)) throw new UserError(`${file}: field "model.merges": expected an array`);
    const merges: MergeRule[] = model.merges.map((m: unknown, i: number) => {
      const pair = typeof m === 'string' ? m.split(' ') : m;
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        throw new UserError(`${file}: field "model.merges[${i}]": expected "left right" or [left, right]`);
      }
      const [a, b] = pair as [string, string];
      const left = idOf.get(a);
      const right = idOf.get(b);
      const result = idOf.get(a + b);
      if (left === undefined || right === undefined || result === undefined) {
        throw new UserError(`${file}: field "model.merges[${i}]": token ${JSON.stringify(left === undefined ? a : right === undefined ? b : a + b)} is not in model.vocab`);
      }
      return { left, right, result, rank: i };
    });
    checkMerges(merges, tokens, file, (i) => `field "model.merges[${i}]"`);
    checkSpecialIds(new Map([...specials].filter(([text, id]) => model.vocab === undefined || (model.vocab as Json)[text] !== id)), tokens, file, 'added_tokens');
    return new BpeTokenizer({ source: file, pattern, tokens, merges, specialTokens: specials, ignoreMerges: model.ignore_merges === true });
  }
  if (model.type === 'Unigram') {
    if (!Array.isArray(model.vocab)) throw new UserError(`${file}: field "model.vocab": expected an array of [piece, score]`);
    const pieces: UnigramPiece[] = model.vocab.map((p: unknown, i: number) => {
      if (!Array.isArray(p) || typeof p[0] !== 'string' || typeof p[1] !== 'number') throw new UserError(`${file}: field "model.vocab[${i}]": expected [piece, score]`);
      return { piece: p[0], score: p[1] };
    });
    checkUniquePieces(pieces, file, (i) => `field "model.vocab[${i}]"`);
    const unkId = model.unk_id;
    if (!isTokenId(unkId)) throw new UserError(`${file}: field "model.unk_id": expected an integer`);
    const norms = components(data.normalizer, 'normalizers');
    const meta = components(data.pre_tokenizer, 'pretokenizers').find((p) => p.type === 'Metaspace');
    if (!meta) throw new UserError(`${file}: field "pre_tokenizer": expected a Metaspace pre-tokenizer for a unigram model`);
    const normalizer: NormalizerOptions = {
      nfkc: norms.some((n) => n.type === 'NFKC'),
      removeExtraWhitespaces: norms.some((n) => n.type === 'Strip'),
      addDummyPrefix: meta.prepend_scheme !== 'never' && meta.add_prefix_space !== false,
    };
    specials.delete(pieces[unkId]?.piece ?? '');
    return new UnigramTokenizer({ source: file, pieces, unkId, byteFallback: model.byte_fallback === true, specialTokens: specials, normalizer });
  }
  throw new UserError(`${file}: field "model.type": expected "BPE" or "Unigram", found ${JSON.stringify(model.type)}`);
}

export function importHfTokenizer(path: string): Tokenizer {
  return parseHfTokenizer(readFileSync(path, 'utf8'), path);
}

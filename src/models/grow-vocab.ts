// Growing a trained GPT's vocabulary for new special tokens (the chat template's): a model with the larger
// embedding (and untied head), every old weight copied, and the new rows set to the mean of the old embedding rows
// (Hewitt's recipe: a new token starts as the average token, so its logit starts near the typical one instead of
// at a random direction). Not the tokenizer side (tokenizers/chat-template.ts).
import * as lm from '../core/index.js';
import { loadStateDict, stateDict, type NamedArray } from '../nn/state.js';
import { GPT } from './gpt.js';

/**
 * A new GPT with vocab_size max(V, newVocab) holding `model`'s weights; rows `fresh` of the token table (and of an
 * untied head) are set to the mean over the other rows below oldVocab (the ids the tokenizer had before). The
 * given model is left as it is (the caller disposes it).
 */
export function growVocab(model: GPT, newVocab: number, fresh: readonly number[], oldVocab: number): GPT {
  const c = model.config;
  const V2 = Math.max(c.vocab_size, newVocab);
  const grown = new GPT({ ...c, vocab_size: V2 });
  const keepRows = (w: NamedArray): NamedArray => {
    const [V, E] = w.shape as [number, number];
    const out = new Float32Array(V2 * E);
    out.set(Array.from(w.data as Float32Array));
    const skip = new Set(fresh);
    const mean = new Float64Array(E);
    let n = 0;
    for (let v = 0; v < Math.min(oldVocab, V); v++) {
      if (skip.has(v)) continue;
      for (let e = 0; e < E; e++) mean[e]! += out[v * E + e]!;
      n++;
    }
    for (const v of fresh) for (let e = 0; e < E; e++) out[v * E + e] = mean[e]! / Math.max(n, 1);
    return { shape: [V2, E], data: out };
  };
  const entries = new Map<string, NamedArray>();
  for (const [name, a] of stateDict(model)) {
    entries.set(name, name === 'transformer.wte.weight' || name === 'lm_head.weight' ? keepRows(a) : a);
  }
  loadStateDict(grown, entries, 'growVocab');
  lm.tidy(() => undefined);
  return grown;
}

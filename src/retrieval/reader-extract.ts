// Extractive decoding for a generative reader: a logits processor that lets the model emit only continuations that are
// spans of the passage it reads (the tokens that follow some occurrence of what it has generated so far), or end the
// answer once it holds at least one token. The model still chooses which span; the constraint only rules out text the
// passage does not contain. Not a retriever or a sampler; structurally a serve/logits.ts LogitsProcessor.

/** What a processor sees of a row: every token so far (prompt included) and where the prompt ends. */
export interface SpanRow {
  tokens: readonly number[];
  promptLength: number;
}

/**
 * Masks (to −∞) every next token that would leave the spans of `source`. `stop` tokens are allowed after ≥ 1 token
 * where the span ends at a word boundary: some occurrence is followed by the source's end or a token for which
 * midWord is false (midWord(id) = the token continues the previous word, e.g. "lway" after " E").
 */
export function spanConstraint(source: readonly number[], stop: readonly number[], midWord: (id: number) => boolean = () => false): (logits: Float32Array, row: SpanRow) => void {
  return (logits, row) => {
    const g = row.tokens.slice(row.promptLength);
    const allowed = new Set<number>();
    let canEnd = false;
    for (let i = 0; i + g.length <= source.length; i++) {
      let match = true;
      for (let j = 0; j < g.length && match; j++) if (source[i + j] !== g[j]) match = false;
      if (!match) continue;
      const next = source[i + g.length];
      if (next !== undefined) allowed.add(next);
      if (g.length > 0 && (next === undefined || !midWord(next))) canEnd = true;
    }
    if (canEnd) for (const s of stop) allowed.add(s);
    // Nothing left to copy (the answer reached the passage's end): end it.
    if (allowed.size === 0) for (const s of stop) allowed.add(s);
    for (let v = 0; v < logits.length; v++) if (!allowed.has(v)) logits[v] = -Infinity;
  };
}

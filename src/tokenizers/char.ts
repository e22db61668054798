// Character-level tokenizer (nanoGPT's shakespeare_char): the vocabulary is the sorted set of characters
// (by code point) of the training text; each character is one token.

export interface CharTokenizerJSON {
  type: 'char';
  chars: string[];
}

export class CharTokenizer {
  private readonly index: Map<string, number>;

  constructor(readonly chars: readonly string[]) {
    this.index = new Map(chars.map((c, i) => [c, i]));
    if (this.index.size !== chars.length) throw new Error('CharTokenizer: repeated character in the vocabulary');
  }

  static fromText(text: string): CharTokenizer {
    const set = new Set(Array.from(text));
    return new CharTokenizer([...set].sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!));
  }

  static fromJSON(json: unknown, source: string): CharTokenizer {
    const o = json as Partial<CharTokenizerJSON>;
    if (o?.type !== 'char' || !Array.isArray(o.chars) || !o.chars.every((c) => typeof c === 'string' && Array.from(c).length === 1)) {
      throw new Error(`${source}: expected a char tokenizer {"type": "char", "chars": [single characters]}`);
    }
    return new CharTokenizer(o.chars);
  }

  get vocabSize(): number {
    return this.chars.length;
  }

  /** Ids of each character; a character outside the vocabulary is an error naming it and its position. */
  encode(text: string): number[] {
    const out: number[] = [];
    let pos = 0;
    for (const ch of text) {
      const id = this.index.get(ch);
      if (id === undefined) throw new RangeError(`character ${JSON.stringify(ch)} at position ${pos} is not in the ${this.chars.length}-character vocabulary`);
      out.push(id);
      pos++;
    }
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) s += this.chars[ids[i]!] ?? '\uFFFD';
    return s;
  }

  toJSON(): CharTokenizerJSON {
    return { type: 'char', chars: [...this.chars] };
  }
}

// Counts substrings of words in a code-point trie whose edges live in an integer hash table (no string is built per
// substring), remembering whether each substring is right-branching. Seeds the unigram trainer; not a tokenizer.
import { PairTable } from './merge.js';

export class SubstringTrie {
  private readonly edges = new PairTable(1 << 16); // (parent node, code point) → child node
  parent: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
  codePoint: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
  depth: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
  freq = new Float64Array(1 << 16);
  /** The one code point seen right after the substring; -1 the word end; -2 several different ones. */
  follow: Int32Array<ArrayBuffer> = new Int32Array(1 << 16);
  size = 1; // node 0 is the root (the empty string)

  /** The child of `node` along code point `cp`, created when new. */
  child(node: number, cp: number): number {
    const slot = this.edges.find(node, cp);
    if (slot >= 0) return this.edges.resultAt(slot);
    if (this.size === this.parent.length) this.grow();
    const id = this.size++;
    this.edges.add(node, cp, 0, id);
    this.parent[id] = node;
    this.codePoint[id] = cp;
    this.depth[id] = (this.depth[node] as number) + 1;
    this.follow[id] = -3; // not seen yet
    return id;
  }

  /** Records one more occurrence (weighted by count) of the substring at `node`, followed by `next` (-1: word end). */
  count(node: number, count: number, next: number): void {
    this.freq[node] = (this.freq[node] as number) + count;
    const f = this.follow[node] as number;
    if (f === -3) this.follow[node] = next;
    else if (f !== next) this.follow[node] = -2;
  }

  /** The substring spelled by the path to `node`. */
  text(node: number): string {
    const cps: number[] = [];
    for (let n = node; n > 0; n = this.parent[n] as number) cps.push(this.codePoint[n] as number);
    return String.fromCodePoint(...cps.reverse());
  }

  private grow(): void {
    const n = this.parent.length * 2;
    const growI = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.parent = growI(this.parent);
    this.codePoint = growI(this.codePoint);
    this.depth = growI(this.depth);
    this.follow = growI(this.follow);
    const f = new Float64Array(n);
    f.set(this.freq);
    this.freq = f;
  }
}

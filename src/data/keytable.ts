// A fixed-capacity open-addressing index for 52-bit numeric keys (n-gram hashes): key -> slot, with callers keeping
// values in parallel typed arrays. Faster than Map<number, ...> on non-small-integer keys and free of per-entry
// objects. Not a general map: no deletion, capacity fixed at construction.

export class KeyTable {
  private readonly keys: Float64Array;
  private readonly used: Uint8Array;
  private readonly mask: number;
  size = 0;

  /** Room for `maxEntries` keys at a load factor of at most 1/2. */
  constructor(maxEntries: number) {
    let cap = 16;
    while (cap < 2 * maxEntries) cap *= 2;
    this.keys = new Float64Array(cap);
    this.used = new Uint8Array(cap);
    this.mask = cap - 1;
  }

  get capacity(): number {
    return this.keys.length;
  }

  private start(key: number): number {
    const lo = key >>> 0;
    const hi = (key / 4294967296) >>> 0;
    return (Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> 7) & this.mask;
  }

  /** The slot holding `key`, or -1. */
  find(key: number): number {
    for (let i = this.start(key); ; i = (i + 1) & this.mask) {
      if (this.used[i] === 0) return -1;
      if (this.keys[i] === key) return i;
    }
  }

  /** The slot of `key`, inserting it if new. */
  insert(key: number): number {
    for (let i = this.start(key); ; i = (i + 1) & this.mask) {
      if (this.used[i] === 0) {
        if (this.size * 2 >= this.keys.length) throw new Error(`KeyTable: more than ${this.keys.length / 2} keys`);
        this.used[i] = 1;
        this.keys[i] = key;
        this.size++;
        return i;
      }
      if (this.keys[i] === key) return i;
    }
  }
}

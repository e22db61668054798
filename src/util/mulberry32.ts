// mulberry32: a tiny seeded uniform generator for layers that do not use the tensor engine's Rng (tokenizers,
// data, eval statistics). Deterministic per seed; not for anything that needs a saved, resumable state.

/** A function returning uniform numbers in [0, 1), reproducible from `seed`. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

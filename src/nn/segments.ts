// Document masking for packed rows: per-token document ids (segment ids) → the additive attention mask that keeps
// each token's attention inside its own document. With causal attention the result is block-diagonal causal.
// Not the packer (train/packing.ts), which decides where documents start.
import * as lm from '../core/index.js';
import type { DType, Tensor } from '../core/index.js';

/**
 * (B, 1, T, T) additive mask from ids (B·T, row-major): 0 where query i and key j are in the same document, −∞
 * elsewhere; broadcast over heads. The causal part stays the kernel's, so query i sees keys j ≤ i with ids[j] = ids[i].
 */
export function segmentMask(ids: Int32Array, B: number, T: number, dtype: DType): Tensor {
  if (ids.length !== B * T) throw new RangeError(`segmentMask: ${ids.length} segment ids for a (${B}, ${T}) batch (want B·T = ${B * T})`);
  const data = dtype === 'float64' ? new Float64Array(B * T * T) : new Float32Array(B * T * T);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const si = ids[b * T + i]!;
      const row = (b * T + i) * T;
      for (let j = 0; j < T; j++) data[row + j] = ids[b * T + j] === si ? 0 : -Infinity;
    }
  }
  return lm.tensor(data, [B, 1, T, T]);
}

/** Document ids of the tokens of each row of x (B·T): a new document starts after every `eot` token. */
export function segmentsAfterEot(x: Int32Array, B: number, T: number, eot: number): Int32Array {
  const ids = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let seg = 0;
    for (let i = 0; i < T; i++) {
      ids[b * T + i] = seg;
      if (x[b * T + i] === eot) seg++;
    }
  }
  return ids;
}

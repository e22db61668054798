// Rotary position embedding (Su et al., RoFormer) in the "rotate half" layout of GPT-NeoX and Llama:
// for x = [x₁ | x₂] split along the head dim, rope(x) = [x₁·cos − x₂·sin | x₂·cos + x₁·sin] with angle
// θ_{t,i} = t · base^(−2i/D). Built from differentiable ops; tables are computed once per length.
import * as lm from '../core/index.js';
import type { Tensor } from '../core/index.js';

export class RotaryTables {
  readonly cos: Tensor;
  readonly sin: Tensor;

  /** Tables of shape (T, 1, D/2) for positions [start, start + T), broadcasting over (B, T, H, D/2). */
  constructor(T: number, D: number, base: number, start = 0) {
    if (D % 2 !== 0) throw new RangeError(`rope: head dim ${D} must be even`);
    const half = D / 2;
    const cos = new Float32Array(T * half);
    const sin = new Float32Array(T * half);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < half; i++) {
        const angle = (start + t) * Math.pow(base, (-2 * i) / D);
        cos[t * half + i] = Math.cos(angle);
        sin[t * half + i] = Math.sin(angle);
      }
    }
    this.cos = lm.keep(lm.fromArray(cos, [T, 1, half]));
    this.sin = lm.keep(lm.fromArray(sin, [T, 1, half]));
  }

  dispose(): void {
    this.cos.dispose();
    this.sin.dispose();
  }
}

/** x (B, T, H, D) → rotated, using tables whose first dim is T. */
export function applyRope(x: Tensor, tables: RotaryTables): Tensor {
  const D = x.shape[3]!;
  const half = D / 2;
  const x1 = lm.slice(x, 3, 0, half);
  const x2 = lm.slice(x, 3, half, D);
  const a = lm.sub(lm.mul(x1, tables.cos), lm.mul(x2, tables.sin));
  const b = lm.add(lm.mul(x2, tables.cos), lm.mul(x1, tables.sin));
  return lm.concat([a, b], 3);
}

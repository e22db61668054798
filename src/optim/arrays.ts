// Float32 views of a parameter, its gradient and its state tensors, for the optimizers written as plain loops over
// typed arrays (SGD aside, which predates this). Not a tensor API: nothing here allocates or records a graph.
import type { Tensor } from '../core/index.js';

/** The elements of a dense float32 tensor as a view (no copy). */
export function f32(t: Tensor): Float32Array {
  if (!(t.data instanceof Float32Array)) throw new Error(`optimizer: ${t.describe()} is not float32 (optimizers update float32 parameters and state)`);
  return t.data.subarray(t.offset, t.offset + t.size);
}

/** (rows, cols) of a parameter seen as a matrix: its last dim is the columns, the rest fold into the rows. */
export function matrixShape(t: Tensor): [rows: number, cols: number] {
  const cols = t.shape[t.ndim - 1] ?? 1;
  return [cols === 0 ? 0 : t.size / cols, cols];
}

/** Root mean square of x (0 for an empty array). */
export function rms(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return x.length === 0 ? 0 : Math.sqrt(s / x.length);
}

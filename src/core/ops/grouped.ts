// Ops of a mixture-of-experts layer's dispatch: the grouped matrix product over rows sorted by expert, and the
// scatter-add of rows back to their tokens (the adjoint of embedding's row gather). Not the routing (src/nn/moe.ts).
import { record } from '../autograd.js';
import { ShapeError } from '../shape.js';
import type { Tensor } from '../tensor.js';
import { alloc, dense, dropCopy, fdata, idata, kernels, sameDtype } from './util.js';

/** The groups' row counts as offsets: offsets[g] = Σ_{h<g} counts[h], G + 1 entries. */
export function groupOffsets(counts: readonly number[]): Int32Array {
  const off = new Int32Array(counts.length + 1);
  for (let g = 0; g < counts.length; g++) off[g + 1] = off[g]! + counts[g]!;
  return off;
}

function checkGroups(op: string, x: Tensor, w: Tensor, offsets: Tensor, transW: boolean): [number, number, number, number] {
  sameDtype(op, x, w);
  if (w.ndim !== 3) throw new ShapeError(`${op}: weights must be (G, K, N), got ${w.describe()}`);
  if (offsets.dtype !== 'int32' || offsets.ndim !== 1) throw new ShapeError(`${op}: offsets must be an int32 vector (G + 1), got ${offsets.describe()}`);
  const G = w.shape[0]!;
  const [K, N] = transW ? [w.shape[2]!, w.shape[1]!] : [w.shape[1]!, w.shape[2]!];
  if (offsets.shape[0] !== G + 1) throw new ShapeError(`${op}: offsets ${offsets.describe()} must have G + 1 = ${G + 1} entries for weights ${w.describe()}`);
  const S = (offsets.data as Int32Array)[offsets.offset + G]!;
  if (x.ndim !== 2 || x.shape[1] !== K || x.shape[0] !== S) {
    throw new ShapeError(`${op}: rows must be (offsets[G], K) = (${S}, ${K}), got ${x.describe()}`);
  }
  return [G, K, N, S];
}

function groupedRaw(x: Tensor, w: Tensor, off: Tensor, transW: boolean): Tensor {
  const [G, K, N, S] = checkGroups('groupedMatmul', x, w, off, transW);
  const xd = dense(x);
  const wd = dense(w);
  const od = dense(off);
  const out = alloc([S, N], x.dtype);
  kernels(x).groupedMatmul(fdata('groupedMatmul', xd), fdata('groupedMatmul', wd), fdata('groupedMatmul', out), idata('groupedMatmul', od), G, K, N, transW, false);
  dropCopy(xd, x);
  dropCopy(wd, w);
  dropCopy(od, off);
  return out;
}

/**
 * Row group g of x (S, K) — rows offsets[g] .. offsets[g+1] — times w[g] (K, N): out (S, N). One kernel call runs
 * every group. Gradients: dx_g = dy_g·w_gᵀ (the same product with w read transposed), dw_g = x_gᵀ·dy_g.
 */
export function groupedMatmul(x: Tensor, w: Tensor, offsets: Tensor): Tensor {
  const out = groupedRaw(x, w, offsets, false);
  return record('groupedMatmul', [x, w], out, (g) => {
    const gx = x.requiresGrad ? groupedRaw(g, w, offsets, true) : null;
    let gw: Tensor | null = null;
    if (w.requiresGrad) {
      const [G, K, N] = [w.shape[0]!, w.shape[1]!, w.shape[2]!];
      const xd = dense(x);
      const gd = dense(g);
      const od = dense(offsets);
      gw = alloc([G, K, N], w.dtype);
      kernels(w).groupedMatmulGradW(fdata('groupedMatmul', xd), fdata('groupedMatmul', gd), fdata('groupedMatmul', gw), idata('groupedMatmul', od), G, K, N, false);
      dropCopy(xd, x);
      dropCopy(gd, g);
      dropCopy(od, offsets);
    }
    return [gx, gw];
  });
}

/**
 * out (n, C) with out[idx[r]] += rows[r] for every row r of rows (S, C), zero elsewhere: the combine step that sums
 * the experts' outputs back into their tokens. Gradient: drows[r] = dout[idx[r]] (a row gather).
 */
export function scatterAddRows(rows: Tensor, idx: Tensor, n: number): Tensor {
  if (rows.ndim !== 2) throw new ShapeError(`scatterAddRows: rows must be (S, C), got ${rows.describe()}`);
  if (idx.dtype !== 'int32' || idx.ndim !== 1 || idx.shape[0] !== rows.shape[0]) {
    throw new ShapeError(`scatterAddRows: idx must be int32 (S) = (${rows.shape[0]}), got ${idx.describe()}`);
  }
  const [S, C] = rows.shape as [number, number];
  const id = dense(idx);
  const ids = idata('scatterAddRows', id);
  for (let r = 0; r < S; r++) {
    if (!(ids[r]! >= 0 && ids[r]! < n)) throw new RangeError(`scatterAddRows: idx[${r}] = ${ids[r]} is outside [0, ${n})`);
  }
  const rd = dense(rows);
  const out = alloc([n, C], rows.dtype, true);
  kernels(rows).embeddingBackward(fdata('scatterAddRows', rd), ids, fdata('scatterAddRows', out), S, C);
  dropCopy(rd, rows);
  return record('scatterAddRows', [rows], out, (g) => {
    const gd = dense(g);
    const gr = alloc([S, C], rows.dtype);
    kernels(rows).embedding(fdata('scatterAddRows', gd), ids, fdata('scatterAddRows', gr), S, C, n);
    dropCopy(gd, g);
    return [gr];
  });
}

// Odometer iteration over an N-d shape for several strided operands at once (reference backend only:
// clarity over speed). `visit` receives the flat offset of each operand for every index, in row-major order.

export function forEachOffset(
  shape: readonly number[],
  operands: readonly { offset: number; strides: readonly number[] }[],
  visit: (offsets: number[]) => void,
): void {
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 0) return;
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  const offs = operands.map((o) => o.offset);
  for (let count = 0; count < n; count++) {
    visit(offs);
    // Advance the last axis; carry into earlier axes, rewinding each operand's offset as an axis wraps.
    for (let d = nd - 1; d >= 0; d--) {
      const size = shape[d]!;
      idx[d]! += 1;
      for (let k = 0; k < operands.length; k++) offs[k]! += operands[k]!.strides[d]!;
      if (idx[d]! < size) break;
      for (let k = 0; k < operands.length; k++) offs[k]! -= operands[k]!.strides[d]! * size;
      idx[d] = 0;
    }
  }
}

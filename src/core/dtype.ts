// Element types of tensors and the typed arrays that hold them. float64 exists for gradient checks on the
// reference backend; the native backend computes in float32 with int32 indices.
import type { AnyArray } from './kernels.js';

export type DType = 'float32' | 'float64' | 'int32';

/** A zero-filled array of n elements, or a view of the first n elements of `buffer` when one is given. */
export function allocate(dtype: DType, n: number, buffer?: ArrayBuffer): AnyArray {
  const b = buffer ?? new ArrayBuffer(n * bytesPerElement(dtype));
  switch (dtype) {
    case 'float32': return new Float32Array(b, 0, n);
    case 'float64': return new Float64Array(b, 0, n);
    case 'int32': return new Int32Array(b, 0, n);
  }
}

export function bytesPerElement(dtype: DType): number {
  return dtype === 'float64' ? 8 : 4;
}

export function isFloat(dtype: DType): boolean {
  return dtype !== 'int32';
}

export function dtypeOf(data: AnyArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  return 'int32';
}

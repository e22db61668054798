// Element types of tensors and the typed arrays that hold them. float64 exists for gradient checks on the
// reference backend; the native backend computes in float32 with int32 indices.
import type { AnyArray } from './kernels.js';

export type DType = 'float32' | 'float64' | 'int32';

export function allocate(dtype: DType, n: number): AnyArray {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'int32': return new Int32Array(n);
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

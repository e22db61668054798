// The reference backend: every kernel in plain TypeScript loops (float32 and float64). Slow and obvious;
// it is the oracle that the native backend is tested against, and the fallback where no addon is built.
import type { FloatArray, Kernels } from '../kernels.js';
import { attentionKernels } from './attention.js';
import { elementwiseKernels } from './elementwise.js';
import { groupedKernels } from './grouped.js';
import { indexingKernels } from './indexing.js';
import { quantKernels } from './quant.js';
import { rowwiseKernels } from './rowwise.js';
import { sparseAttentionKernels } from './sparse-attention.js';

export const referenceKernels: Kernels<FloatArray> = {
  ...elementwiseKernels,
  ...rowwiseKernels,
  ...indexingKernels,
  ...attentionKernels,
  ...groupedKernels,
  ...quantKernels,
  ...sparseAttentionKernels,
};

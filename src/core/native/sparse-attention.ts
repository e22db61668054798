// Typed wrapper of the native grouped slot attention (native/src/sparse-attention.cc) behind the Kernels contract.
// Not the kernels themselves, and not the autograd op: this only marshals BucketAttentionArgs into addon calls.
import type { BucketAttentionArgs, BucketAttentionBackwardArgs, Kernels, StridedArg } from '../kernels.js';
import { loadAddon } from './addon.js';

type Layout = [number, number, number, number];
type Common = [
  Float32Array, Layout, Float32Array, Layout, Float32Array, Layout, Float32Array, Layout, Float32Array, Int32Array, Int32Array,
  [number, number, number, number, number, number, number], number, number, boolean,
];

interface SparseAddon {
  bucketAttentionForward(...args: Common): void;
  bucketAttentionBackward(...args: [...Common, Float32Array, Layout, Float32Array, Float32Array, Float32Array]): void;
}

let cached: SparseAddon | null = null;

function addon(): SparseAddon {
  if (cached) return cached;
  const record = loadAddon() as unknown as Record<string, unknown>;
  for (const name of ['bucketAttentionForward', 'bucketAttentionBackward']) {
    if (typeof record[name] !== 'function') throw new Error(`core/native/sparse-attention: the native addon has no ${name}(); rebuild it with npm install`);
  }
  cached = record as unknown as SparseAddon;
  return cached;
}

function layout(name: string, arg: StridedArg<Float32Array>): Layout {
  const [sB, sH, sT] = arg.strides;
  if (arg.strides.length !== 3 || sB === undefined || sH === undefined || sT === undefined) {
    throw new TypeError(`core/native/sparse-attention: ${name}.strides must be [sB, sH, sT] (last dim contiguous), got [${arg.strides.join(', ')}]`);
  }
  return [arg.offset, sB, sH, sT];
}

function common(a: BucketAttentionArgs<Float32Array>): Common {
  return [
    a.q.data, layout('q', a.q), a.k.data, layout('k', a.k), a.v.data, layout('v', a.v), a.out.data, layout('out', a.out),
    a.lse, a.slots, a.groups, [a.B, a.H, a.T, a.D, a.N, a.rounds, a.window], a.selfPenalty, a.scale, a.unitKeys ?? false,
  ];
}

/** Grouped slot attention forward and backward on the native backend (fp32, OpenMP over heads). */
export const nativeSparseAttention: Pick<Kernels<Float32Array>, 'bucketAttention' | 'bucketAttentionBackward'> = {
  bucketAttention(args: BucketAttentionArgs<Float32Array>): void {
    addon().bucketAttentionForward(...common(args));
  },
  bucketAttentionBackward(args: BucketAttentionBackwardArgs<Float32Array>): void {
    addon().bucketAttentionBackward(...common(args), args.gout.data, layout('gout', args.gout), args.gq, args.gk, args.gv);
  },
};

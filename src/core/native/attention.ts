// Typed wrapper of the native fused attention kernels (native/src/attention.cc) behind the Kernels contract.
// Not the kernels themselves, and not the autograd op: this only marshals AttentionArgs into addon calls.
import type { AttentionArgs, AttentionBackwardArgs, Kernels, StridedArg } from '../kernels.js';
import { loadAddon } from './addon.js';

type Layout = [number, number, number, number];
type View = Float32Array | null;

interface AttentionAddon {
  attentionForward(
    q: Float32Array, qLayout: Layout, k: Float32Array, kLayout: Layout, v: Float32Array, vLayout: Layout,
    out: Float32Array, outLayout: Layout, lse: Float32Array, mask: View, maskLayout: Layout | null,
    dims: [number, number, number, number, number], scale: number, causal: boolean, dropout: number, dropoutSeed: number, window: number,
  ): void;
  attentionBackward(
    q: Float32Array, qLayout: Layout, k: Float32Array, kLayout: Layout, v: Float32Array, vLayout: Layout,
    out: Float32Array, outLayout: Layout, lse: Float32Array, mask: View, maskLayout: Layout | null,
    dims: [number, number, number, number, number], scale: number, causal: boolean, dropout: number, dropoutSeed: number, window: number,
    gout: Float32Array, goutLayout: Layout, gq: Float32Array, gqLayout: Layout,
    gk: Float32Array, gkLayout: Layout, gv: Float32Array, gvLayout: Layout,
  ): void;
  attentionIsa(name?: string): string;
  attentionScratchBytes(): number;
  attentionWorkPerThread(units?: number): number;
}

const ENTRY_POINTS = [
  'attentionForward', 'attentionBackward', 'attentionIsa', 'attentionScratchBytes', 'attentionWorkPerThread',
] as const;

let cached: AttentionAddon | null = null;

function addon(): AttentionAddon {
  if (cached) return cached;
  const exports: unknown = loadAddon();
  const record = exports as Record<string, unknown>;
  for (const name of ENTRY_POINTS) {
    if (typeof record[name] !== 'function') {
      throw new Error(`core/native/attention: the native addon has no ${name}(); rebuild it with npm install`);
    }
  }
  cached = exports as AttentionAddon;
  return cached;
}

/** [offset, sB, sH, sT] of a (B, H, T, D) view; the native side checks that the view fits its array. */
function layout(name: string, arg: StridedArg<Float32Array>): Layout {
  const [sB, sH, sT] = arg.strides;
  if (arg.strides.length !== 3 || sB === undefined || sH === undefined || sT === undefined) {
    throw new TypeError(`core/native/attention: ${name}.strides must be [sB, sH, sT] (last dim contiguous), got [${arg.strides.join(', ')}]`);
  }
  return [arg.offset, sB, sH, sT];
}

function common(a: AttentionArgs<Float32Array>): Parameters<AttentionAddon['attentionForward']> {
  return [
    a.q.data, layout('q', a.q), a.k.data, layout('k', a.k), a.v.data, layout('v', a.v),
    a.out.data, layout('out', a.out), a.lse, a.mask ? a.mask.data : null, a.mask ? layout('mask', a.mask) : null,
    [a.B, a.H, a.Tq, a.Tk, a.D], a.scale, a.causal, a.dropout, a.dropoutSeed, a.window ?? 0,
  ];
}

/** Fused attention forward and backward on the native backend (fp32, SIMD, OpenMP). */
export const nativeAttention: Pick<Kernels<Float32Array>, 'attention' | 'attentionBackward'> = {
  attention(args: AttentionArgs<Float32Array>): void {
    addon().attentionForward(...common(args));
  },
  attentionBackward(args: AttentionBackwardArgs<Float32Array>): void {
    addon().attentionBackward(
      ...common(args),
      args.gout.data, layout('gout', args.gout), args.gq.data, layout('gq', args.gq),
      args.gk.data, layout('gk', args.gk), args.gv.data, layout('gv', args.gv),
    );
  },
};

/** The attention SIMD path in use ('avx512' | 'avx2' | 'portable'); with a name, switches to it (capped at what the CPU runs). */
export function attentionIsa(name?: 'avx512' | 'avx2' | 'portable'): string {
  return name === undefined ? addon().attentionIsa() : addon().attentionIsa(name);
}

/** Bytes of scratch memory the last native attention call allocated (all threads together). */
export function attentionScratchBytes(): number {
  return addon().attentionScratchBytes();
}

/**
 * Work (B·H·Tq·Tk·D units, halved when causal) each thread must get before a call uses another thread;
 * returns the previous value. Tests lower it to 1 to run the threaded paths on small shapes.
 */
export function attentionWorkPerThread(units?: number): number {
  return units === undefined ? addon().attentionWorkPerThread() : addon().attentionWorkPerThread(units);
}

// AdamW (Loshchilov & Hutter) over a list of parameters, one fused kernel call per parameter, with
// decoupled weight decay applied only to the parameters in decay groups (matrices, by convention), and
// global gradient-norm clipping. State (m, v, step) can be exported and restored for checkpoints.
import { kernelsFor, keep, noGrad, zeros, type Tensor } from '../core/index.js';
import type { FloatArray } from '../core/kernels.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export interface ParamGroup {
  params: Tensor[];
  /** Overrides the optimizer's weight decay for this group (0 for biases, norms and embeddings if wanted). */
  weightDecay?: number;
}

interface Slot {
  param: Tensor;
  m: Tensor;
  v: Tensor;
  weightDecay: number;
}

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  step = 0;
  private readonly slots: Slot[];

  constructor(groups: ParamGroup[] | Tensor[], options: AdamWOptions) {
    this.lr = options.lr;
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    const wd = options.weightDecay ?? 0.01;
    const list: ParamGroup[] = groups.length > 0 && !('params' in groups[0]!) ? [{ params: groups as Tensor[] }] : (groups as ParamGroup[]);
    this.slots = list.flatMap((g) =>
      g.params.map((param) => ({
        param,
        m: keep(zeros(param.shape, param.dtype)),
        v: keep(zeros(param.shape, param.dtype)),
        weightDecay: g.weightDecay ?? wd,
      })),
    );
  }

  get params(): Tensor[] {
    return this.slots.map((s) => s.param);
  }

  /** Global L2 norm of all gradients (parameters without a gradient count as zero). */
  gradNorm(): number {
    let sq = 0;
    for (const { param } of this.slots) {
      if (param.grad) sq += kernelsFor(param.dtype).sumSquares(param.grad.data as FloatArray, param.size);
    }
    return Math.sqrt(sq);
  }

  /**
   * One update. gradScale multiplies every gradient first (1/accumulation steps); clipNorm > 0 rescales the
   * gradients so that their global norm is at most clipNorm. Returns the pre-clipping gradient norm.
   */
  update(options: { gradScale?: number; clipNorm?: number } = {}): number {
    const gradScale = options.gradScale ?? 1;
    const norm = this.gradNorm() * gradScale;
    const clip = options.clipNorm ?? 0;
    // PyTorch's clip_grad_norm_: scale by clip/(norm + 1e-6) when that is below 1.
    const clipScale = clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1;
    this.step += 1;
    noGrad(() => {
      for (const s of this.slots) {
        if (!s.param.grad) continue;
        kernelsFor(s.param.dtype).adamw({
          param: s.param.data as FloatArray, grad: s.param.grad.data as FloatArray, m: s.m.data as FloatArray, v: s.v.data as FloatArray,
          lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: s.weightDecay, step: this.step,
          gradScale: gradScale * clipScale,
        });
      }
    });
    return norm;
  }

  zeroGrad(): void {
    for (const { param } of this.slots) {
      param.grad?.dispose();
      param.grad = null;
    }
  }

  /** Moment tensors by parameter index, for checkpoints. */
  state(): { step: number; m: Tensor[]; v: Tensor[] } {
    return { step: this.step, m: this.slots.map((s) => s.m), v: this.slots.map((s) => s.v) };
  }

  loadState(state: { step: number; m: ArrayLike<number>[]; v: ArrayLike<number>[] }): void {
    if (state.m.length !== this.slots.length || state.v.length !== this.slots.length) {
      throw new Error(`AdamW.loadState: state has ${state.m.length} moments, optimizer has ${this.slots.length} parameters`);
    }
    this.step = state.step;
    this.slots.forEach((s, i) => {
      const m = state.m[i]!;
      const v = state.v[i]!;
      if (m.length !== s.param.size || v.length !== s.param.size) {
        throw new Error(`AdamW.loadState: moment ${i} has ${m.length} values, parameter ${s.param.describe()} has ${s.param.size}`);
      }
      (s.m.data as FloatArray).set(m);
      (s.v.data as FloatArray).set(v);
    });
  }

  dispose(): void {
    for (const s of this.slots) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}

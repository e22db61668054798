// Low-rank factorization of trained Linear layers: W (in, out) ≈ A·B from the truncated SVD (Eckart–Young: the best
// rank-r approximation in Frobenius and spectral norm), as a LowRankLinear with the same forward contract as Linear,
// put in place through Module.replaceModule; the rank chosen per layer directly or by retained energy Σ_{i<r}σ_i²/Σσ².
// Not the saved layout (models/low-rank-io.ts) and not the SVD itself (core/linalg.ts).
import * as lm from '../core/index.js';
import type { Tensor } from '../core/index.js';
import { energyOfRank, rankForEnergy, svd } from '../core/linalg.js';
import { UserError } from '../util/errors.js';
import type { ForwardContext } from './context.js';
import { Linear } from './layers.js';
import { matchesTarget, type TargetModules } from './lora.js';
import { Module } from './module.js';

/**
 * y = (x·A)·B + b with A = weight_a (in, r) and B = weight_b (r, out), the (in, out) layout of Linear's weight
 * (GPT-2's Conv1D), so A·B stands where W stood. Costs r·(in + out) parameters and multiply-adds per row instead of
 * in·out: a saving only while r < in·out / (in + out). Both factors are trainable (fine-tuning after factorizing).
 */
export class LowRankLinear extends Module {
  readonly weightA: Tensor;
  readonly weightB: Tensor;
  readonly bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly rank: number;

  /** Takes the factors (and bias) as they are: A (in, r), B (r, out), bias (out) or null. */
  constructor(a: Tensor, b: Tensor, bias: Tensor | null) {
    super();
    if (a.ndim !== 2 || b.ndim !== 2 || a.shape[1] !== b.shape[0]) throw new RangeError(`LowRankLinear: factors ${a.describe()} and ${b.describe()} do not chain as (in, r)·(r, out)`);
    [this.inFeatures, this.rank] = a.shape as [number, number];
    this.outFeatures = b.shape[1]!;
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== this.outFeatures)) throw new RangeError(`LowRankLinear: bias ${bias.describe()} does not match out_features ${this.outFeatures}`);
    this.weightA = this.param('weight_a', a);
    this.weightB = this.param('weight_b', b);
    this.bias = bias ? this.param('bias', bias) : null;
  }

  /** A zero-filled layer of the given shape and rank (for loading saved factors into). */
  static empty(inFeatures: number, outFeatures: number, rank: number, bias: boolean): LowRankLinear {
    return new LowRankLinear(lm.zeros([inFeatures, rank]), lm.zeros([rank, outFeatures]), bias ? lm.zeros([outFeatures]) : null);
  }

  forward(x: Tensor, _ctx?: ForwardContext): Tensor {
    const h = lm.linear(x, this.weightA, null); // (…, r)
    return lm.linear(h, this.weightB, this.bias); // (…, out)
  }
}

/** How each layer's rank is chosen: the same rank everywhere, or the smallest rank keeping a fraction of Σσ². */
export type RankSelection = { rank: number } | { energy: number };

/** Checks a selection; a bad one is a UserError naming the flag. */
export function checkSelection(s: RankSelection): void {
  if ('rank' in s) {
    if (!(Number.isInteger(s.rank) && s.rank >= 1)) throw new UserError(`--rank: ${s.rank} is not valid, expected an integer ≥ 1`);
  } else if (!(s.energy > 0 && s.energy <= 1)) {
    throw new UserError(`--energy: ${s.energy} is not valid, expected a number in (0, 1] (the fraction of Σσ² kept, e.g. 0.9)`);
  }
}

/** A Linear's weight split into rank-r factors with √σ on each side: A = U_r·√S_r (in, r), B = √S_r·V_rᵀ (r, out). */
export interface Factorization {
  rank: number;
  /** Σ_{i<r}σ_i² / Σσ²: the retained energy; 1 − it is ‖W − A·B‖²_F / ‖W‖²_F. */
  energy: number;
  a: Float32Array;
  b: Float32Array;
}

/** The rank-r factors of a row-major (in, out) weight by truncated SVD, the rank given or chosen by energy. */
export function factorizeWeight(w: ArrayLike<number>, nIn: number, nOut: number, selection: RankSelection): Factorization {
  const d = svd(w, nIn, nOut);
  const k = d.k;
  const r = Math.min(k, 'rank' in selection ? selection.rank : rankForEnergy(d.S, selection.energy));
  const a = new Float32Array(nIn * r);
  const b = new Float32Array(r * nOut);
  for (let j = 0; j < r; j++) {
    const s = Math.sqrt(d.S[j]!);
    for (let i = 0; i < nIn; i++) a[i * r + j] = d.U[i * k + j]! * s;
    for (let o = 0; o < nOut; o++) b[j * nOut + o] = s * d.V[o * k + j]!;
  }
  return { rank: r, energy: energyOfRank(d.S, r), a, b };
}

/** One layer's outcome. */
export interface LayerReport {
  path: string;
  inFeatures: number;
  outFeatures: number;
  /** The rank chosen (capped at min(in, out)). */
  rank: number;
  energy: number;
  /** False when rank·(in + out) ≥ in·out: the layer stays a dense Linear (factorizing would not save anything). */
  factorized: boolean;
  paramsBefore: number;
  paramsAfter: number;
}

export interface LowRankReport {
  layers: LayerReport[];
  /** The model's parameter count before and after. */
  paramsBefore: number;
  paramsAfter: number;
}

/** Every Linear matching `include` (LoRA's target_modules rules: suffix names or a /regex/), in model order. */
export function selectLinears(model: Module, include: TargetModules | null, source = '--include'): [string, Linear][] {
  const all = model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear);
  const chosen = include === null ? all : all.filter(([p]) => matchesTarget(p, include));
  if (chosen.length === 0) {
    const names = [...new Set(all.map(([p]) => p.slice(p.lastIndexOf('.') + 1)))];
    throw new UserError(`${source}: ${JSON.stringify(include)} matches no Linear layer (the model's Linear layers are named ${names.join(', ') || 'nothing'})`);
  }
  return chosen;
}

/**
 * Replaces each chosen Linear by its rank-r LowRankLinear (bias kept), through replaceModule; a layer whose rank would
 * not save parameters stays dense and is reported so. The old weights are released.
 */
export function factorizeModel(model: Module, selection: RankSelection, include: TargetModules | null = null): LowRankReport {
  checkSelection(selection);
  const paramsBefore = model.numParameters();
  const layers: LayerReport[] = [];
  for (const [path, lin] of selectLinears(model, include)) {
    const { inFeatures: nIn, outFeatures: nOut } = lin;
    const dense = nIn * nOut + (lin.bias ? nOut : 0);
    const f = factorizeWeight(lin.weight.toTypedArray() as Float32Array, nIn, nOut, selection);
    const low = f.rank * (nIn + nOut) + (lin.bias ? nOut : 0);
    const factorized = f.rank * (nIn + nOut) < nIn * nOut;
    layers.push({ path, inFeatures: nIn, outFeatures: nOut, rank: f.rank, energy: f.energy, factorized, paramsBefore: dense, paramsAfter: factorized ? low : dense });
    if (!factorized) continue;
    const bias = lin.bias ? lm.fromArray(Float32Array.from(lin.bias.toTypedArray() as Float32Array), [nOut]) : null;
    const layer = new LowRankLinear(lm.fromArray(f.a, [nIn, f.rank]), lm.fromArray(f.b, [f.rank, nOut]), bias);
    if (!lin.weight.requiresGrad) layer.freeze();
    model.replaceModule(path, () => layer);
    lin.dispose();
  }
  return { layers, paramsBefore, paramsAfter: model.numParameters() };
}

/** Puts zero-filled LowRankLinear layers of the given ranks in place of those Linears (the loader fills them). */
export function applyLowRank(model: Module, ranks: ReadonlyMap<string, number>, source: string): void {
  for (const [path, rank] of ranks) {
    let m: Module;
    try {
      m = model.getModule(path);
    } catch {
      throw new UserError(`${source}: layer ${path} does not exist in this model`);
    }
    if (!(m instanceof Linear)) throw new UserError(`${source}: layer ${path} is a ${m.constructor.name}, expected a Linear`);
    const cap = Math.min(m.inFeatures, m.outFeatures);
    if (!(Number.isInteger(rank) && rank >= 1 && rank <= cap)) throw new UserError(`${source}: rank of ${path} is ${JSON.stringify(rank)}, expected an integer in [1, ${cap}]`);
    const layer = LowRankLinear.empty(m.inFeatures, m.outFeatures, rank, m.bias !== null);
    model.replaceModule(path, () => layer);
    m.dispose();
  }
}

/** The model's LowRankLinear layers and their ranks, in model order. */
export function lowRankLayers(model: Module): [string, LowRankLinear][] {
  return model.namedModules().filter((e): e is [string, LowRankLinear] => e[1] instanceof LowRankLinear);
}

// LoRA (Hu et al. 2021, "Low-Rank Adaptation of Large Language Models") with Hugging Face PEFT's names and
// rules: a frozen Linear (`base_layer`) plus a trainable low-rank update, the choice of layers by PEFT's
// `target_modules`, merging into the base weight and unloading. Not the adapter files (models/lora-io.ts).
import * as lm from '../core/index.js';
import { Rng, type Tensor } from '../core/index.js';
import type { FloatArray } from '../core/kernels.js';
import { hash32 } from '../core/random.js';
import { UserError } from '../util/errors.js';
import { siteSeed, type ForwardContext } from './context.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import { QuantizedLinear } from './quantized.js';

export interface LoRAOptions {
  /** Rank r of the update. */
  r: number;
  /** lora_alpha: the update is scaled by alpha / r (PEFT's default scaling; alpha / √r with rsLoRA). */
  alpha: number;
  /** Dropout probability on the adapter's input (training only). */
  dropout: number;
  /** Scale by alpha / √r instead of alpha / r (PEFT's use_rslora, Kalajdzievski 2023). */
  useRsLoRA?: boolean;
  /**
   * DoRA (Liu et al. 2024, PEFT's use_dora): each output column of W0 + s·ΔW is renormalised to a learned magnitude
   * (lora_magnitude_vector), so direction and length are trained apart.
   */
  useDora?: boolean;
}

/** The factor of the low-rank update: α/r, or α/√r with rsLoRA. */
export function loraScaling(o: LoRAOptions): number {
  return o.useRsLoRA ? o.alpha / Math.sqrt(o.r) : o.alpha / o.r;
}

/** A small stable number per layer path, so each adapter's dropout mask differs from every other site's. */
function pathSite(path: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < path.length; i++) h = Math.imul(h ^ path.charCodeAt(i), 0x01000193) >>> 0;
  return hash32(h);
}

/**
 * y = base(x) + s·(drop(x)·Aᵀ)·Bᵀ with s = α/r, A = lora_A (r, in) and B = lora_B (out, r) in PEFT's (nn.Linear)
 * layout. A starts Kaiming-uniform with a = √5 as PEFT's default (U(−1/√in, 1/√in)), B at zero, so the wrapped layer
 * starts equal to the base. The base Linear stores its weight as (in, out) (GPT-2's Conv1D, PEFT's
 * fan_in_fan_out = true), so a merge adds s·(B·A)ᵀ = s·Aᵀ·Bᵀ to it.
 */
export class LoRALinear<B extends Linear | QuantizedLinear = Linear> extends Module {
  /** A float Linear, or a QuantizedLinear (QLoRA, Dettmers et al. 2023: the frozen base is 4-bit; gradients reach
   *  the adapters through its dequantized weight). */
  readonly base_layer: B;
  readonly loraA: Tensor;
  readonly loraB: Tensor;
  readonly scaling: number;
  /** DoRA's magnitude m (out): starts at the base weight's column norms ‖W0[:, j]‖, so the layer starts as the base. */
  readonly magnitude: Tensor | null;
  private mergedIn = false;
  /** The column norms ‖W0 + s·ΔW‖ a DoRA merge divided by, kept to undo it exactly (PEFT caches them too). */
  private mergedNorm: Float64Array | null = null;
  private readonly site: number;

  constructor(base: B, readonly options: LoRAOptions, rng: Rng, readonly path = '') {
    super();
    const { r } = options;
    if (!(Number.isInteger(r) && r >= 1)) throw new RangeError(`LoRA: r = ${r}, expected an integer ≥ 1`);
    if (!(options.dropout >= 0 && options.dropout < 1)) throw new RangeError(`LoRA: dropout = ${options.dropout}, expected a number in [0, 1)`);
    this.child('base_layer', base);
    this.base_layer = base;
    base.freeze();
    const bound = 1 / Math.sqrt(base.inFeatures); // kaiming_uniform_(a=√5): gain·√(3/fan_in) = √(1/3)·√(3/in)
    this.loraA = this.param('lora_A.weight', lm.uniform([r, base.inFeatures], rng, -bound, bound));
    this.loraB = this.param('lora_B.weight', lm.zeros([base.outFeatures, r]));
    this.scaling = loraScaling(options);
    this.site = pathSite(path);
    this.magnitude = null;
    if (options.useDora) {
      if (base instanceof QuantizedLinear) throw new UserError(`LoRA ${path}: DoRA (use_dora) needs the base layer's float weight for its column norms; ${path} is quantized`);
      this.magnitude = this.param('lora_magnitude_vector', lm.fromArray(Float32Array.from(this.columnNorms(new Float64Array(base.inFeatures * base.outFeatures))), [base.outFeatures]));
    }
  }

  /** ‖W0[:, j] + d[:, j]‖ for each output column j of the base weight (in, out) plus d (in, out), in float64. */
  private columnNorms(d: Float64Array): Float64Array {
    const w = (this.base_layer as Linear).weight;
    const [nIn, nOut] = w.shape as [number, number];
    const data = w.data;
    const sq = new Float64Array(nOut);
    for (let i = 0; i < nIn; i++) {
      for (let j = 0; j < nOut; j++) {
        const v = (data[w.offset + i * nOut + j] as number) + d[i * nOut + j]!;
        sq[j] = sq[j]! + v * v;
      }
    }
    return sq.map(Math.sqrt);
  }

  /**
   * DoRA's column factor g = m / ‖W0 + s·Aᵀ·Bᵀ‖ (out). The norm is computed without a graph and treated as a
   * constant, as in DoRA §4.3 and PEFT (it saves the backward through the norm at a small cost in the gradient), so
   * gradients reach m directly and A, B through the scaled output.
   */
  private doraFactor(): Tensor {
    const w = (this.base_layer as Linear).weight;
    const norm = lm.tidy(() => lm.noGrad(() => {
      const full = lm.add(w, lm.mul(lm.matmul(lm.transpose(this.loraA), lm.transpose(this.loraB)), this.scaling)); // (in, out)
      return lm.sqrt(lm.sum(lm.mul(full, full), 0));
    }));
    return lm.div(this.magnitude!, norm); // norm lives on with the graph (div's backward reads it)
  }

  get merged(): boolean {
    return this.mergedIn;
  }

  forward(x: Tensor, ctx?: ForwardContext): Tensor {
    const y = this.base_layer.forward(x, ctx); // (…, out)
    if (this.mergedIn) return y;
    const p = this.options.dropout;
    let xin = x;
    if (this.training && p > 0 && !ctx?.cache) {
      // The mask is a function of (pass seed, layer path), so a resumed run draws the same masks.
      if (!ctx) throw new Error(`LoRALinear ${this.path}: dropout ${p} needs the forward context (its seed)`);
      xin = lm.dropout(x, p, siteSeed(ctx.seed, this.site));
    }
    const down = lm.mul(lm.matmul(xin, lm.transpose(this.loraA)), this.scaling); // (…, r): s·drop(x)·Aᵀ
    if (!this.magnitude) return addLowRankInto(y, down, this.loraB); // (…, out)
    // DoRA, as PEFT computes it: y + (g − 1)·(x'·W0) + g·s·(x'·Aᵀ)·Bᵀ with x' the adapter's (dropped-out) input.
    const g = this.doraFactor();
    const bias = (this.base_layer as Linear).bias;
    if (xin !== x) return lm.add(y, lm.add(lm.mul(lm.linear(xin, (this.base_layer as Linear).weight, null), lm.sub(g, 1)), lm.mul(lm.matmul(down, lm.transpose(this.loraB)), g)));
    // Without dropout x' = x and y = x·W0 + b, so the sum is g·(y + s·x·Aᵀ·Bᵀ) − (g − 1)·b.
    const scaled = lm.mul(addLowRankInto(y, down, this.loraB), g);
    return bias ? lm.sub(scaled, lm.mul(bias, lm.sub(g, 1))) : scaled;
  }

  /** ΔW = s·Aᵀ·Bᵀ (in, out) in float64, the base weight's layout. */
  private delta(): Float64Array {
    const [r, nIn] = this.loraA.shape as [number, number];
    const nOut = this.loraB.shape[0]!;
    const A = this.loraA.toTypedArray() as Float32Array;
    const B = this.loraB.toTypedArray() as Float32Array;
    const d = new Float64Array(nIn * nOut);
    for (let i = 0; i < nIn; i++) {
      for (let j = 0; j < nOut; j++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += A[k * nIn + i]! * B[j * r + k]!;
        d[i * nOut + j] = this.scaling * s;
      }
    }
    return d;
  }

  private addToBase(sign: 1 | -1): void {
    const base: Linear | QuantizedLinear = this.base_layer;
    if (base instanceof QuantizedLinear) {
      throw new UserError(`LoRA ${this.path}: the base layer is quantized; an adapter cannot be merged into 4- or 8-bit weights (merge it into the float model the quantized one came from)`);
    }
    const w = base.weight;
    const d = this.delta();
    const data = w.data;
    if (!this.magnitude) {
      for (let i = 0; i < w.size; i++) data[w.offset + i] = (data[w.offset + i] as number) + sign * d[i]!;
      return;
    }
    // DoRA: W' = (W0 + ΔW)·m/‖W0 + ΔW‖ per output column; undone as W0 = W'·‖W0 + ΔW‖/m − ΔW with the saved norms.
    const nOut = w.shape[1]!;
    const m = this.magnitude.toTypedArray() as Float32Array;
    if (sign === 1) {
      const norm = this.columnNorms(d);
      for (let i = 0; i < w.size; i++) data[w.offset + i] = ((data[w.offset + i] as number) + d[i]!) * (m[i % nOut]! / norm[i % nOut]!);
      this.mergedNorm = norm;
    } else {
      const norm = this.mergedNorm!;
      for (let i = 0; i < w.size; i++) data[w.offset + i] = (data[w.offset + i] as number) * (norm[i % nOut]! / m[i % nOut]!) - d[i]!;
      this.mergedNorm = null;
    }
  }

  /** W += s·(B·A)ᵀ (with DoRA, then each column rescaled to m); the forward is then the base layer's alone. */
  merge(): void {
    if (this.mergedIn) return;
    this.addToBase(1);
    this.mergedIn = true;
  }

  /** W −= s·(B·A)ᵀ (the float32 rounding of the merge is not undone bit for bit). */
  unmerge(): void {
    if (!this.mergedIn) return;
    this.addToBase(-1);
    this.mergedIn = false;
  }
}

/**
 * y + d·Bᵀ for y (…, out) the base layer's fresh output, d (…, r) and B (out, r), written into y's own buffer: the
 * base's backward (Linear's, QuantizedLinear's) reads only its input and weight, never y, so the sum takes no
 * (…, out) tensor of its own and the low-rank product none either (three fewer activations of the layer's width
 * held per adapter until backward). Gradients: dy = g, dd = g·B, dB = gᵀ·d over the flattened rows.
 */
function addLowRankInto(y: Tensor, d: Tensor, B: Tensor): Tensor {
  const [N, r] = B.shape as [number, number];
  if (!y.isContiguous || !d.isContiguous || !B.isContiguous) return lm.add(y, lm.matmul(d, lm.transpose(B)));
  const out = lm.detach(y); // shares y's storage
  lm.kernelsFor(y.dtype).matmul({
    a: d.data as FloatArray, aOffset: d.offset, b: B.data as FloatArray, bOffset: B.offset, c: out.data as FloatArray, cOffset: out.offset,
    batch: 1, M: y.size / N, N, K: r, transA: false, transB: true, aBatchStride: 0, bBatchStride: 0, accumulate: true,
  });
  return lm.record('loraAdd', [y, d, B], out, (g) => {
    const gd = d.requiresGrad ? lm.matmulRaw(g, B) : null; // (…, r)
    let gB: Tensor | null = null;
    if (B.requiresGrad) {
      const g2 = lm.reshape(g, [-1, N]);
      const d2 = lm.reshape(d, [-1, r]);
      const g2t = lm.transpose(g2);
      gB = lm.matmulRaw(g2t, d2); // (out, r)
      for (const t of [g2, d2, g2t]) t.dispose();
    }
    return [g, gd, gB];
  });
}

/**
 * PEFT's target_modules: a list of names, each matching a module whose dotted path equals it or ends in `.name`;
 * or a single regular expression that must match the whole path (PEFT's string form, re.fullmatch).
 */
export type TargetModules = readonly string[] | { regex: string };

/** Whether a module path is targeted (PEFT's check_target_module_exists, for the list and string forms). */
export function matchesTarget(path: string, targets: TargetModules): boolean {
  if ('regex' in targets) return new RegExp(`^(?:${targets.regex})$`).test(path);
  return targets.some((t) => path === t || path.endsWith(`.${t}`));
}

/**
 * Reads target_modules as written in a train config: comma-separated names (`c_attn,c_proj`), or a regex between
 * slashes (`/.*\.attn\.c_attn/`).
 */
export function parseTargetModules(text: string, field: string): TargetModules {
  const t = text.trim();
  if (t.length >= 2 && t.startsWith('/') && t.endsWith('/')) {
    const regex = t.slice(1, -1);
    try {
      new RegExp(regex);
    } catch (e) {
      throw new UserError(`${field}: ${JSON.stringify(t)} is not a valid regular expression (${(e as Error).message})`);
    }
    return { regex };
  }
  const names = t.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UserError(`${field}: expected comma-separated module names (e.g. c_attn,c_proj) or /regex/, got ${JSON.stringify(text)}`);
  for (const n of names) if (!/^[A-Za-z0-9_.]+$/.test(n)) throw new UserError(`${field}: ${JSON.stringify(n)} is not a module name (letters, digits, _ and .); write a regex as /…/`);
  return names;
}

/**
 * PEFT's rank_pattern / alpha_pattern: module-path patterns (regular expressions) mapped to a rank or an alpha that
 * replaces r or lora_alpha for the layers they match. Insertion order matters: the first key that matches wins.
 */
export type LoRAPattern = Readonly<Record<string, number>>;

/**
 * The value a pattern gives the layer at `path`, else `fallback`. A key matches as PEFT's get_pattern_key does,
 * re.match(rf"(.*\.)?({key})$", path): the whole path, or a dotted suffix of it (`h.2.mlp.c_fc`, `c_proj`).
 */
export function patternValue(pattern: LoRAPattern | undefined, path: string, fallback: number): number {
  if (!pattern) return fallback;
  for (const [key, value] of Object.entries(pattern)) {
    if (new RegExp(`^(?:.*\\.)?(?:${key})$`).test(path)) return value;
  }
  return fallback;
}

/**
 * Reads rank_pattern or alpha_pattern as written in a train config: comma-separated `pattern=value` pairs
 * (`h.2.mlp.c_fc=12,h.2.mlp.c_proj=12`), kept in order ('' = none). Ranks must be integers ≥ 1, alphas numbers ≥ 0.
 */
export function parseLoRAPattern(text: string, field: string, kind: 'rank' | 'alpha'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of text.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = item.lastIndexOf('=');
    const key = eq > 0 ? item.slice(0, eq).trim() : '';
    const value = Number(eq > 0 ? item.slice(eq + 1).trim() : Number.NaN);
    if (key === '') throw new UserError(`${field}: ${JSON.stringify(item)} is not pattern=${kind} (e.g. h.2.mlp.c_fc=${kind === 'rank' ? 12 : 24})`);
    checkPatternEntry(field, key, value, kind);
    if (key in out) throw new UserError(`${field}: pattern ${JSON.stringify(key)} is given twice`);
    out[key] = value;
  }
  return out;
}

/** A pattern key must be a valid regular expression; a rank an integer ≥ 1, an alpha a finite number ≥ 0. */
export function checkPatternEntry(field: string, key: string, value: unknown, kind: 'rank' | 'alpha'): void {
  try {
    new RegExp(key);
  } catch (e) {
    throw new UserError(`${field}: pattern ${JSON.stringify(key)} is not a valid regular expression (${(e as Error).message})`);
  }
  const ok = typeof value === 'number' && (kind === 'rank' ? Number.isInteger(value) && value >= 1 : Number.isFinite(value) && value >= 0);
  if (!ok) throw new UserError(`${field}: ${JSON.stringify(key)} has ${kind} ${JSON.stringify(value)}, expected ${kind === 'rank' ? 'an integer ≥ 1' : 'a number ≥ 0'}`);
}

export interface ApplyLoRAOptions extends LoRAOptions {
  targetModules: TargetModules;
  /** Per-layer ranks (PEFT's rank_pattern); r for the layers no key matches. */
  rankPattern?: LoRAPattern;
  /** Per-layer alphas (PEFT's alpha_pattern); alpha for the layers no key matches. */
  alphaPattern?: LoRAPattern;
  /** Seeds lora_A's initialisation (one generator, drawn in path order). */
  seed?: number;
  /** Names the source of the options in errors (e.g. the config field or adapter_config.json). */
  source?: string;
}

/**
 * Freezes every parameter of the model, then wraps each Linear whose dotted path matches target_modules in a
 * LoRALinear (its lora_A / lora_B are the only trainable parameters). Returns the wrapped paths in model order.
 * A match that is not a Linear, or no match at all, is a UserError (PEFT refuses both too).
 */
export function applyLoRA(model: Module, o: ApplyLoRAOptions): string[] {
  const source = o.source ?? 'lora.target_modules';
  const linears: string[] = [];
  const paths: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (m instanceof LoRALinear) throw new UserError(`${source}: ${path} already holds a LoRA adapter`);
    if (m instanceof Linear || m instanceof QuantizedLinear) linears.push(path);
    if (path === '' || !matchesTarget(path, o.targetModules)) continue;
    if (!(m instanceof Linear || m instanceof QuantizedLinear)) throw new UserError(`${source}: ${path} matches target_modules but is a ${m.constructor.name}; only Linear layers can carry a LoRA adapter`);
    paths.push(path);
  }
  if (paths.length === 0) {
    const names = [...new Set(linears.map((p) => p.slice(p.lastIndexOf('.') + 1)))];
    throw new UserError(`${source}: ${JSON.stringify(o.targetModules)} matches no Linear layer (the model's Linear layers are named ${names.join(', ')})`);
  }
  // PEFT ignores a pattern key that matches nothing; here it is a typo to report, not a silent no-op.
  for (const [field, pattern] of [['rank_pattern', o.rankPattern], ['alpha_pattern', o.alphaPattern]] as const) {
    for (const key of Object.keys(pattern ?? {})) {
      if (!paths.some((p) => patternValue({ [key]: 1 }, p, 0) === 1)) throw new UserError(`${source.replace(/target_modules$/, field)}: pattern ${JSON.stringify(key)} matches none of the adapted layers (${paths.join(', ')})`);
    }
  }
  model.freeze();
  const rng = new Rng(o.seed ?? 0);
  for (const path of paths) {
    const layerOptions: LoRAOptions = { ...o, r: patternValue(o.rankPattern, path, o.r), alpha: patternValue(o.alphaPattern, path, o.alpha) };
    model.replaceModule(path, (old) => new LoRALinear(old as Linear | QuantizedLinear, layerOptions, rng, path));
  }
  return paths;
}

/**
 * The parameters PEFT's modules_to_save names: every parameter inside a module whose dotted path matches one of
 * `names` by target_modules' suffix rule (any proper dotted prefix of the parameter's name counts, so `lm_head`
 * selects an untied head's `lm_head.weight`). They train in full beside the adapters and are saved in the adapter
 * file under their own names. A module that is or holds a LoRA target, or a name that matches nothing, is a UserError.
 */
export function modulesToSaveParameters(model: Module, names: readonly string[], source = 'lora.modules_to_save'): [string, Tensor][] {
  if (names.length === 0) return [];
  const adapted = loraLayers(model).map(([p]) => p);
  const out: [string, Tensor][] = [];
  for (const [name, p] of model.namedParameters()) {
    const parts = name.split('.');
    const prefixes = parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('.'));
    if (!prefixes.some((q) => matchesTarget(q, names))) continue;
    const clash = adapted.find((a) => name.startsWith(`${a}.`));
    if (clash !== undefined) throw new UserError(`${source}: ${clash} is a LoRA target (target_modules) and cannot also be trained in full`);
    out.push([name, p]);
  }
  if (out.length === 0) {
    const owners = new Set(model.namedModules().map(([path]) => path.slice(path.lastIndexOf('.') + 1)).filter((n) => n !== '' && !/^\d+$/.test(n)));
    throw new UserError(`${source}: ${JSON.stringify(names)} matches no module with parameters (the model's modules are named ${[...owners].join(', ')})`);
  }
  return out;
}

/** Unfreezes the modules_to_save parameters (after applyLoRA froze everything); returns their names. */
export function trainModulesToSave(model: Module, names: readonly string[], source?: string): string[] {
  const params = modulesToSaveParameters(model, names, source);
  for (const [, p] of params) {
    if (!p.requiresGrad) lm.requireGrad(p);
  }
  return params.map(([n]) => n);
}

/**
 * Reads modules_to_save as written in a train config: comma-separated module names ('' = none), each matched as a
 * path suffix (ln_1,ln_2,ln_f,wte).
 */
export function parseModulesToSave(text: string, field: string): string[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const n of names) if (!/^[A-Za-z0-9_.]+$/.test(n)) throw new UserError(`${field}: ${JSON.stringify(n)} is not a module name (letters, digits, _ and .)`);
  return names;
}

/**
 * LoRA+ (Hayou et al. 2024): lora_B learns `ratio` times faster than lora_A (λ = 16 in the paper), since with B
 * starting at zero and A random, equal steps leave B's features under-trained at width d. The per-parameter factor
 * on the scheduled learning rate; 1 for every other parameter. With `vectors` (names of the trainable 1-D
 * parameters: DoRA's magnitudes, saved norms' gains and biases) those take the ratio too, as PEFT's
 * create_loraplus_optimizer groups them (lora_B or ndim == 1 → lr × loraplus_lr_ratio).
 */
export function loraPlusLrScale(ratio: number, vectors: ReadonlySet<string> = new Set()): (name: string) => number {
  return (name) => (ratio !== 1 && (/(^|\.)lora_B\.weight$/.test(name) || vectors.has(name)) ? ratio : 1);
}

/** The names of the model's trainable 1-D parameters when `on` (LoRA+'s lr_ratio_vectors), else none. */
export function loraPlusVectors(model: Module, on: boolean): Set<string> {
  return new Set(on ? model.namedTrainableParameters().filter(([, p]) => p.ndim === 1).map(([n]) => n) : []);
}

/** The model's LoRA layers by path. */
export function loraLayers(model: Module): [string, LoRALinear][] {
  return model.namedModules().filter((e): e is [string, LoRALinear] => e[1] instanceof LoRALinear);
}

/** Merges every adapter into its base weight and puts the base Linear back in its place (PEFT's merge_and_unload). */
export function mergeAndUnload(model: Module): void {
  for (const [path, layer] of loraLayers(model)) {
    layer.merge();
    model.replaceModule(path, () => layer.base_layer);
    layer.loraA.dispose();
    layer.loraB.dispose();
    layer.magnitude?.dispose();
  }
}

/** Trainable and total parameter counts, and PEFT's print_trainable_parameters line. */
export function trainableParameters(model: Module): { trainable: number; total: number; line: string } {
  const total = model.numParameters();
  const trainable = model.namedTrainableParameters().reduce((n, [, p]) => n + p.size, 0);
  const fmt = (n: number): string => n.toLocaleString('en-US');
  return { trainable, total, line: `trainable params: ${fmt(trainable)} || all params: ${fmt(total)} || trainable%: ${((100 * trainable) / total).toFixed(4)}` };
}

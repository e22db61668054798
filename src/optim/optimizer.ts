// The optimizer interface every optimizer implements: parameter groups with their own options, `step`,
// `zeroGrad`, and state as named tensors of any shape (moments, factored moments, preconditioners, or none), so
// a checkpoint stores whatever an optimizer holds with its kind and version. Not a schedule (schedule.ts sets
// the learning rate each step) and not clipping (clip.ts computes the gradient scale a step takes).
import { keep, zeros, type Tensor } from '../core/index.js';

/** A parameter with the dotted name its state is saved under. */
export type NamedParam = readonly [name: string, param: Tensor];

/** A group of parameters sharing options; unset options take the optimizer's. */
export interface ParamGroup<O> {
  params: readonly NamedParam[];
  options?: Partial<O>;
}

/** An optimizer's state for checkpoints: tensors named `<param>.<slot>` (e.g. `h.0.mlp.c_fc.weight.m`). */
export interface OptimizerState {
  kind: string;
  version: number;
  /** Updates taken so far (bias corrections and schedules inside the optimizer depend on it). */
  step: number;
  tensors: Map<string, { shape: readonly number[]; data: Float32Array }>;
}

export class OptimizerStateError extends Error {
  override name = 'OptimizerStateError';
}

export interface BaseOptions {
  /** Learning rate; the loop's schedule overwrites it each step (times the group's lrScale). */
  lr: number;
  /** Multiplies the scheduled learning rate for this group (1 by default). */
  lrScale: number;
}

interface Slot<O> {
  name: string;
  param: Tensor;
  options: O;
  /** Named state tensors of this parameter, e.g. { m, v }. */
  state: Map<string, Tensor>;
}

export abstract class Optimizer<O extends BaseOptions = BaseOptions> {
  /** A short name stored in checkpoints ('adamw', 'sgd', …); a resume with another kind is refused. */
  abstract readonly kind: string;
  /** Bumped when the meaning or layout of the state changes. */
  abstract readonly version: number;
  stepCount = 0;
  protected readonly slots: Slot<O>[];

  constructor(groups: readonly ParamGroup<O>[], defaults: O) {
    const seen = new Set<string>();
    this.slots = groups.flatMap((g) =>
      g.params.map(([name, param]) => {
        if (seen.has(name)) throw new Error(`optimizer: parameter "${name}" is in two groups`);
        if (!param.requiresGrad) throw new Error(`optimizer: parameter "${name}" is frozen (it gets no gradient and must not be given to an optimizer)`);
        seen.add(name);
        return { name, param, options: { ...defaults, ...g.options }, state: new Map<string, Tensor>() };
      }),
    );
    for (const s of this.slots) for (const [slot, shape] of this.stateShapes(s.param, s.options)) s.state.set(slot, keep(zeros(shape, 'float32')));
  }

  /** The state slots a parameter gets and their shapes (e.g. m and v of its shape; nothing for plain SGD). */
  protected abstract stateShapes(param: Tensor, options: O): [slot: string, shape: readonly number[]][];

  /** One update of every parameter that has a gradient; each gradient counts multiplied by gradScale. */
  abstract step(gradScale?: number): void;

  get params(): Tensor[] {
    return this.slots.map((s) => s.param);
  }

  /** Sets every group's learning rate to lr × its lrScale (the loop calls this with the scheduled value). */
  setLearningRate(lr: number): void {
    for (const s of this.slots) s.options.lr = lr * s.options.lrScale;
  }

  zeroGrad(): void {
    for (const { param } of this.slots) {
      param.grad?.dispose();
      param.grad = null;
    }
  }

  /** Bytes of optimizer state (what it adds to the model's own memory). */
  stateBytes(): number {
    let n = 0;
    for (const s of this.slots) for (const t of s.state.values()) n += t.size * 4;
    return n;
  }

  /** The state as named tensors (views of the live data), for checkpoints. */
  state(): OptimizerState {
    const tensors: OptimizerState['tensors'] = new Map();
    for (const s of this.slots) {
      for (const [slot, t] of s.state) tensors.set(`${s.name}.${slot}`, { shape: t.shape, data: (t.data as Float32Array).subarray(t.offset, t.offset + t.size) });
    }
    return { kind: this.kind, version: this.version, step: this.stepCount, tensors };
  }

  /** Restores state saved by state(); every tensor must be there with its shape, nothing else. source names the file. */
  loadState(state: OptimizerState, source: string): void {
    if (state.kind !== this.kind) {
      throw new OptimizerStateError(`${source}: optimizer state is ${state.kind}'s, but this run uses ${this.kind} (resume with the optimizer the run was trained with, or start a new run)`);
    }
    if (state.version !== this.version) throw new OptimizerStateError(`${source}: ${this.kind} state version ${state.version}, this lmforge reads version ${this.version}`);
    const expected = new Set<string>();
    for (const s of this.slots) {
      for (const [slot, t] of s.state) {
        const key = `${s.name}.${slot}`;
        expected.add(key);
        const saved = state.tensors.get(key);
        if (!saved) throw new OptimizerStateError(`${source}: tensor "${key}" is missing (${this.kind} state of parameter "${s.name}")`);
        if (saved.data.length !== t.size || saved.shape.length !== t.shape.length || saved.shape.some((d, i) => d !== t.shape[i])) {
          throw new OptimizerStateError(`${source}: tensor "${key}" has shape [${saved.shape.join(', ')}], expected [${t.shape.join(', ')}]`);
        }
      }
    }
    const unknown = [...state.tensors.keys()].filter((k) => !expected.has(k));
    if (unknown.length > 0) throw new OptimizerStateError(`${source}: tensors for unknown parameters or slots: ${unknown.slice(0, 8).join(', ')}${unknown.length > 8 ? ', …' : ''}`);
    for (const s of this.slots) for (const [slot, t] of s.state) (t.data as Float32Array).set(state.tensors.get(`${s.name}.${slot}`)!.data, t.offset);
    this.stepCount = state.step;
  }

  dispose(): void {
    for (const s of this.slots) for (const t of s.state.values()) t.dispose();
  }
}

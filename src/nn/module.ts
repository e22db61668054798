// Module: a tree of named parameters, buffers and sub-modules with a train/eval flag. Names are dotted paths
// (`h.0.attn.c_attn.weight`), the same as Hugging Face's, so state dicts map one to one. Parameters can be frozen
// (no gradient, no optimizer state); buffers are saved with the weights but never trained; a sub-module can be
// replaced or wrapped by its path (adapters, quantized layers). Not the state-dict loader (state.ts).
import { keep, requireGrad, type Tensor } from '../core/index.js';

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  private checkFree(name: string): void {
    if (this.params.has(name) || this.buffers.has(name) || this.children.has(name)) throw new Error(`Module: '${name}' is registered twice`);
  }

  /** Registers a parameter (kept beyond every scope). Trainable ones collect gradients; frozen ones never do. */
  protected param(name: string, t: Tensor, options: { trainable?: boolean } = {}): Tensor {
    this.checkFree(name);
    t.name = name;
    this.params.set(name, keep(options.trainable === false ? t : requireGrad(t)));
    return t;
  }

  /** Registers a buffer: state saved with the weights (e.g. running statistics, centroids), never trained. */
  protected buffer(name: string, t: Tensor): Tensor {
    this.checkFree(name);
    t.name = name;
    this.buffers.set(name, keep(t));
    return t;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this.checkFree(name);
    this.children.set(name, m);
    return m;
  }

  /**
   * Every parameter (trainable or frozen) with its dotted name, in registration order (depth first). A tensor
   * reached through several paths (a module shared by several layers, src/nn/sharing.ts) is listed once, under
   * its first name, so state dicts, optimizers and checkpoints hold one copy.
   */
  namedParameters(prefix = ''): [string, Tensor][] {
    return dedupe(this.walk(prefix, (m) => m.params));
  }

  /** Parameters counted at every place they are used: a module shared by n layers counts n times (ALBERT's "effective" size). */
  numParametersEffective(): number {
    return this.walk('', (m) => m.params).reduce((n, [, p]) => n + p.size, 0);
  }

  /** (name, tensor) pairs of a per-module table over this module and its descendants, duplicates included. */
  private walk(prefix: string, table: (m: Module) => Map<string, Tensor>): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of table(this)) out.push([prefix + n, p]);
    for (const [n, c] of this.children) out.push(...c.walk(`${prefix}${n}.`, table));
    return out;
  }

  /** The parameters an optimizer should update: those not frozen. */
  namedTrainableParameters(): [string, Tensor][] {
    return this.namedParameters().filter(([, p]) => p.requiresGrad);
  }

  namedBuffers(prefix = ''): [string, Tensor][] {
    return dedupe(this.walk(prefix, (m) => m.buffers));
  }

  /** This module (named '') and every descendant, depth first. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [n, c] of this.children) out.push(...c.namedModules(prefix ? `${prefix}.${n}` : n));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
  }

  /** Freezes (or unfreezes) every parameter of this module: a frozen one gets no gradient and no optimizer state. */
  freeze(frozen = true): this {
    for (const [, p] of this.namedParameters()) {
      if (frozen) {
        p.requiresGrad = false;
        p.grad?.dispose();
        p.grad = null;
      } else {
        requireGrad(p);
      }
    }
    return this;
  }

  /** The sub-module at a dotted path ('' is this module). */
  getModule(path: string): Module {
    if (path === '') return this;
    return path.split('.').reduce<Module>((m, part) => {
      const next = m.children.get(part);
      if (!next) throw new Error(`Module: no sub-module '${part}' in '${path}' (has: ${[...m.children.keys()].join(', ') || 'none'})`);
      return next;
    }, this);
  }

  /**
   * Replaces the sub-module at `path` with make(old); returns the new module. The parent's field that held the old
   * module is pointed at the new one too, so the parent's forward calls it (wrapping: make = (old) => new Adapter(old)).
   */
  replaceModule<M extends Module>(path: string, make: (old: Module) => M): M {
    const cut = path.lastIndexOf('.');
    const parent = this.getModule(cut < 0 ? '' : path.slice(0, cut));
    const name = path.slice(cut + 1);
    const old = parent.children.get(name);
    if (!old) throw new Error(`Module: no sub-module at '${path}'`);
    const m = make(old);
    parent.children.set(name, m);
    parent.onChildReplaced(name, old, m);
    return m;
  }

  /** Points the parent's own fields (and lists) that held `old` at `replacement`. */
  protected onChildReplaced(_name: string, old: Module, replacement: Module): void {
    const self = this as unknown as Record<string, unknown>;
    for (const key of Object.keys(self)) if (self[key] === old) self[key] = replacement;
  }

  train(on = true): this {
    this.training = on;
    for (const c of this.children.values()) c.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  dispose(): void {
    for (const p of this.params.values()) p.dispose();
    for (const b of this.buffers.values()) b.dispose();
    for (const c of this.children.values()) c.dispose();
  }
}

/** The first (name, tensor) pair of each distinct tensor. */
function dedupe(pairs: [string, Tensor][]): [string, Tensor][] {
  const seen = new Set<Tensor>();
  return pairs.filter(([, t]) => !seen.has(t) && seen.add(t) !== undefined);
}

/** An ordered list of modules named 0, 1, 2, … */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];

  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.child(String(i), m));
  }

  protected override onChildReplaced(name: string, _old: Module, replacement: Module): void {
    this.items[Number(name)] = replacement as M;
  }
}

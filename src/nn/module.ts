// Module: a tree of named parameters and sub-modules with a train/eval flag. Parameter names are dotted
// paths (`h.0.attn.c_attn.weight`), the same as Hugging Face's, so state dicts map one to one.
import { keep, requireGrad, type Tensor } from '../core/index.js';

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor>();
  private readonly children = new Map<string, Module>();

  /** Registers a trainable parameter (kept beyond every scope, collects gradients). */
  protected param(name: string, t: Tensor): Tensor {
    if (this.params.has(name) || this.children.has(name)) throw new Error(`Module: '${name}' is registered twice`);
    t.name = name;
    this.params.set(name, keep(requireGrad(t)));
    return t;
  }

  protected child<M extends Module>(name: string, m: M): M {
    if (this.params.has(name) || this.children.has(name)) throw new Error(`Module: '${name}' is registered twice`);
    this.children.set(name, m);
    return m;
  }

  /** Every parameter with its dotted name, in registration order (depth first). */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.params) out.push([prefix + n, p]);
    for (const [n, c] of this.children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.size, 0);
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
    for (const c of this.children.values()) c.dispose();
  }
}

/** An ordered list of modules named 0, 1, 2, … */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];

  constructor(items: M[]) {
    super();
    this.items = items;
    items.forEach((m, i) => this.child(String(i), m));
  }
}

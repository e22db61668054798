// Reverse-mode autograd: ops record a GradNode on their output when an input requires grad; backward() walks
// the graph in reverse topological order, accumulating gradients. Gradients of leaves land in `.grad` and are
// kept beyond the current scope; intermediate gradients are released as soon as they have been used.
import { kernelsFor } from './backend.js';
import type { FloatArray } from './kernels.js';
import { contiguousStrides, fmt, sameShape } from './shape.js';
import { keep, newStorage } from './storage.js';
import { Tensor, type GradNode } from './tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording a graph (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/**
 * Runs fn recording a graph even inside noGrad or a backward pass: the hook for backward rules that recompute a
 * sub-graph and differentiate it with a nested backward() (reversible layers, activation checkpointing).
 */
export function withGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Records how `out` was computed, when gradients are on and some input needs one. Returns out. */
export function record(op: string, inputs: readonly Tensor[], out: Tensor, backward: GradNode['backward']): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward };
  return out;
}

/** Marks a tensor as a leaf that collects gradients. */
export function requireGrad(t: Tensor): Tensor {
  if (t.dtype === 'int32') throw new Error(`requireGrad: ${t.describe()} is an integer tensor and cannot have gradients`);
  t.requiresGrad = true;
  return t;
}

/** A view of t that shares its data but not its graph. */
export function detach(t: Tensor): Tensor {
  t.storage.retain();
  return new Tensor(t.storage, t.shape, t.strides, t.offset);
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS (graphs of deep models overflow recursion).
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const next = inputs[i]!;
      if (next.requiresGrad && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order.reverse();
}

let leafGradHook: ((leaf: Tensor) => void) | null = null;

/**
 * Calls hook(leaf) each time backward() adds into a leaf's .grad (null removes it): data parallelism starts
 * reducing a bucket of gradients while the rest of the backward pass runs (train/distributed/data-parallel.ts).
 */
export function setLeafGradHook(hook: ((leaf: Tensor) => void) | null): void {
  leafGradHook = hook;
}

/** Adds g into leaf.grad (allocating a dense, kept gradient the first time). */
function accumulateLeaf(leaf: Tensor, g: Tensor): void {
  if (!sameShape(leaf.shape, g.shape)) {
    throw new Error(`backward: gradient ${fmt(g.shape)} does not match ${leaf.describe()}`);
  }
  if (!leaf.grad) {
    const grad = new Tensor(newStorage(leaf.dtype, leaf.size, false), leaf.shape, contiguousStrides(leaf.shape), 0);
    kernelsFor(leaf.dtype).copyStrided({ data: g.data, offset: g.offset, strides: g.strides }, { data: grad.data, offset: 0, strides: grad.strides }, leaf.shape);
    leaf.grad = keep(grad);
  } else {
    addInto(leaf.grad, leaf.grad, g);
  }
  leafGradHook?.(leaf);
}

/** out = a + b elementwise (same shapes; out may alias a, since each element is read before it is written). */
function addInto(out: Tensor, a: Tensor, b: Tensor): void {
  const arg = (t: Tensor) => ({ data: t.data as FloatArray, offset: t.offset, strides: t.strides });
  kernelsFor(out.dtype).binary('add', arg(a), arg(b), out.data as FloatArray, out.shape);
}

/**
 * Backpropagates from `root` (a scalar unless gradOut is given). Leaves' gradients accumulate into `.grad`;
 * the graph is freed as it is walked, so backward can run once per forward.
 */
export function backward(root: Tensor, gradOut?: Tensor): void {
  if (!root.requiresGrad) throw new Error(`backward: ${root.describe()} does not require grad (no input of its graph does)`);
  if (!gradOut && root.size !== 1) throw new Error(`backward: ${root.describe()} is not a scalar; pass gradOut`);
  if (gradOut && !sameShape(gradOut.shape, root.shape)) {
    throw new Error(`backward: gradOut ${fmt(gradOut.shape)} does not match ${root.describe()}`);
  }
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>();
  // Gradient tensors are shared when a rule passes its input gradient through unchanged; count the map
  // entries holding each one and dispose it when none is left.
  const holds = new Map<Tensor, number>();
  const inc = (g: Tensor): void => void holds.set(g, (holds.get(g) ?? 0) + 1);
  const dec = (g: Tensor): void => {
    const n = (holds.get(g) ?? 1) - 1;
    holds.set(g, n);
    if (n <= 0) release(g);
  };
  const release = (g: Tensor): void => {
    if ((holds.get(g) ?? 0) > 0 || g === gradOut) return;
    holds.delete(g);
    g.dispose();
  };

  noGrad(() => {
    const seed = gradOut ?? new Tensor(newStorage(root.dtype, 1, false), root.shape, contiguousStrides(root.shape), 0);
    if (!gradOut) seed.data[0] = 1;
    grads.set(root, seed);
    inc(seed);
    for (const t of order) {
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t.node;
      if (!node) {
        accumulateLeaf(t, g);
        dec(g);
        continue;
      }
      holds.set(g, (holds.get(g) ?? 1) - 1); // the entry for t is gone; g itself is released below
      const gins = node.backward(g);
      for (let i = 0; i < node.inputs.length; i++) {
        const input = node.inputs[i]!;
        const gi = gins[i];
        if (!gi || !input.requiresGrad) continue;
        if (!sameShape(gi.shape, input.shape)) {
          throw new Error(`backward of ${node.op}: gradient ${fmt(gi.shape)} for input ${i} does not match ${input.describe()}`);
        }
        const prev = grads.get(input);
        if (!prev) {
          grads.set(input, gi);
          inc(gi);
        } else {
          const sum = new Tensor(newStorage(input.dtype, input.size, false), input.shape, contiguousStrides(input.shape), 0);
          addInto(sum, prev, gi);
          grads.set(input, sum);
          inc(sum);
          dec(prev);
        }
      }
      for (const x of new Set([g, ...gins])) if (x) release(x);
      t.node = null;
    }
  });
}

// A per-part profile of GPT training steps (bench attention-quality --profile): where a step's time goes, forward and
// backward, by model part (embedding, norms, attention projections, attention, MLP, head and loss, optimizer).
// Instrumentation only: each module's forward is wrapped (self time, children excluded), every native kernel is timed
// and charged to the part running it, and each autograd node's backward is charged to the part whose forward recorded
// it. Not a kernel benchmark, and not the figures the quality bench reports (those come from the training loop).
import * as lm from '../src/core/index.js';
import { nativeKernels } from '../src/core/native/index.js';
import type { GradNode, Tensor } from '../src/core/index.js';
import type { GPT } from '../src/models/gpt.js';
import type { Module } from '../src/nn/module.js';
import { clipGradNorm } from '../src/optim/clip.js';
import type { Optimizer } from '../src/optim/optimizer.js';
import type { NextTokenTask } from '../src/train/tasks/next-token.js';

/** ms per step, by "phase part" (e.g. "fwd attention") and, within a part, by kernel ("js" = outside kernels). */
export interface StepProfile {
  steps: number;
  msPerStep: number;
  parts: Map<string, Map<string, number>>;
}

/** The part a module path belongs to (h.3.attn.c_attn → attn proj); '' is the GPT itself (head, loss). */
function partOf(path: string): string {
  if (path === '') return 'head+loss';
  if (/\.wte$|\.wpe$|wte_proj$/.test(path)) return 'embedding';
  if (/\.ln_[12f]$/.test(path)) return 'norms';
  if (/\.attn\.c_(attn|proj)$/.test(path)) return 'attn proj';
  if (/\.attn\.(routing|lsh)$/.test(path)) return 'sparse attention';
  if (/\.attn$/.test(path)) return 'attn (rope, heads)';
  if (/\.mlp(\.|$)/.test(path)) return 'mlp';
  return 'residual';
}

interface Frame {
  part: string;
  /** The module call this frame times (0: a backward rule or the optimizer). */
  call: number;
  start: number;
  child: number;
}

/**
 * Runs `steps` training steps (after `warmup` untimed ones) the way the training loop does (forward, backward in a
 * scope, clipping, optimizer step) with everything instrumented, and returns the mean ms per step by part.
 * Instrumentation adds a little time per module and kernel call (well under 1% at these sizes).
 */
export function profileSteps(model: GPT, task: NextTokenTask, optimizer: Optimizer, gradClip: number, steps: number, warmup: number): StepProfile {
  const acc = new Map<string, Map<string, number>>();
  let phase = 'fwd';
  const stack: Frame[] = [];
  let timing = false;
  const charge = (part: string, what: string, ms: number): void => {
    if (!timing) return;
    const key = `${phase} ${part}`;
    const m = acc.get(key) ?? new Map<string, number>();
    m.set(what, (m.get(what) ?? 0) + ms);
    acc.set(key, m);
  };
  const push = (part: string, call = 0): void => void stack.push({ part, call, start: performance.now(), child: 0 });
  const pop = (): void => {
    const f = stack.pop()!;
    const dt = performance.now() - f.start;
    charge(f.part, 'js', dt - f.child);
    if (stack.length > 0) stack[stack.length - 1]!.child += dt;
  };
  // Kernels: charged to the innermost frame as themselves (and taken out of its js time).
  const kernels = nativeKernels as unknown as Record<string, (...a: unknown[]) => unknown>;
  const saved = new Map<string, (...a: unknown[]) => unknown>();
  for (const [name, fn] of Object.entries(kernels)) {
    saved.set(name, fn);
    kernels[name] = (...a: unknown[]): unknown => {
      const t0 = performance.now();
      const r = fn(...a);
      const dt = performance.now() - t0;
      const top = stack[stack.length - 1];
      if (top) {
        top.child += dt;
        charge(top.part, name, dt);
      } else {
        charge('autograd', name, dt);
      }
      return r;
    };
  }
  // Graph labels: a node belongs to the innermost module whose forward recorded it. After a module's forward, its
  // output's graph is walked back, labelling unlabelled nodes, through nodes labelled by calls that began inside this
  // one, and stopping at nodes labelled before it began (its inputs).
  const label = new WeakMap<GradNode, { part: string; call: number }>();
  let calls = 0;
  const labelFrom = (roots: Tensor[], part: string, call: number): void => {
    const seen = new Set<GradNode>();
    const todo = roots.map((t) => t.node).filter((n): n is GradNode => n !== null);
    while (todo.length > 0) {
      const n = todo.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      const l = label.get(n);
      if (l && l.call < call) continue;
      if (!l) label.set(n, { part, call });
      for (const t of n.inputs) if (t.node) todo.push(t.node);
    }
  };
  const restore: (() => void)[] = [];
  for (const [path, m] of model.namedModules()) {
    const part = partOf(path);
    const mod = m as Module & { forward: (...a: unknown[]) => unknown };
    const fwd = mod.forward;
    mod.forward = (...a: unknown[]): unknown => {
      // Nodes the caller recorded before this call (its inputs' graph) are the caller's, not this module's.
      const outer = stack[stack.length - 1];
      if (outer) labelFrom(a.filter((x): x is Tensor => x instanceof lm.Tensor), outer.part, outer.call);
      const call = ++calls;
      push(part, call);
      let out: unknown;
      try {
        out = fwd.apply(mod, a);
      } finally {
        pop();
      }
      const roots = out instanceof lm.Tensor ? [out] : Object.values(out as object).filter((v): v is Tensor => v instanceof lm.Tensor);
      labelFrom(roots, part, call);
      return out;
    };
    restore.push(() => {
      delete (mod as { forward?: unknown }).forward;
    });
  }
  // Backward: each node's rule runs in a frame of its part.
  const wrapBackward = (loss: Tensor): void => {
    const seen = new Set<GradNode>();
    const todo = loss.node ? [loss.node] : [];
    while (todo.length > 0) {
      const n = todo.pop()!;
      if (seen.has(n)) continue;
      seen.add(n);
      const part = label.get(n)?.part ?? 'head+loss';
      const rule = n.backward.bind(n);
      (n as { backward: GradNode['backward'] }).backward = (g: Tensor) => {
        push(part);
        try {
          return rule(g);
        } finally {
          pop();
        }
      };
      for (const t of n.inputs) if (t.node) todo.push(t.node);
    }
  };
  let total = 0;
  try {
    for (let s = 0; s < warmup + steps; s++) {
      timing = s >= warmup;
      const t0 = performance.now();
      const batch = task.nextBatch();
      lm.tidy(() => {
        phase = 'fwd';
        const out = task.loss(batch, { step: s, micro: 0, seed: s });
        wrapBackward(out.loss);
        phase = 'bwd';
        push('autograd');
        lm.backward(out.loss);
        pop();
        return out.loss.item();
      });
      phase = 'step';
      push('optimizer');
      const { scale } = clipGradNorm(optimizer.params, gradClip, 1);
      optimizer.step(scale);
      optimizer.zeroGrad();
      pop();
      if (timing) total += performance.now() - t0;
    }
  } finally {
    for (const [name, fn] of saved) kernels[name] = fn;
    for (const r of restore) r();
  }
  for (const m of acc.values()) for (const [k, v] of m) m.set(k, v / steps);
  return { steps, msPerStep: total / steps, parts: acc };
}

/** The profile as lines: one per part, ms per step and share, with its largest kernels. */
export function formatProfile(name: string, p: StepProfile): string[] {
  const rows = [...p.parts].map(([part, m]) => ({ part, ms: [...m.values()].reduce((a, b) => a + b, 0), m }));
  rows.sort((a, b) => b.ms - a.ms);
  const lines = [`${name}: ${p.msPerStep.toFixed(0)} ms/step (mean of ${p.steps}), by part:`];
  for (const r of rows) {
    if (r.ms < 0.05 * 0.01 * p.msPerStep) continue;
    const top = [...r.m].sort((a, b) => b[1] - a[1]).slice(0, 4).filter(([, v]) => v >= 0.5).map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ');
    lines.push(`  ${r.part.padEnd(22)} ${r.ms.toFixed(1).padStart(8)} ms  ${((100 * r.ms) / p.msPerStep).toFixed(1).padStart(5)}%   ${top}`);
  }
  return lines;
}

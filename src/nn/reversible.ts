// Reversible residual blocks (RevNet, Gomez et al. 2017; Reformer, Kitaev et al. 2020): a stack of Blocks run as
// the coupling y1 = x1 + F(x2), y2 = x2 + G(y1) with F = the attention branch and G = the MLP branch of each block,
// whose backward rebuilds each block's inputs from its outputs (x2 = y2 − G(y1), x1 = y1 − F(x2)) instead of storing
// activations, so the memory a training step keeps does not grow with depth. Not a new layer: the blocks and their
// weights are the ordinary ones (block.ts), and the same weights run as a stored-activation twin for tests.
//
// The residual stream is duplicated as in Reformer, not split: the stack's input x enters as (x1, x2) = (x, x) and it
// returns the mean (y1 + y2) / 2, so every branch keeps the model's full width n_embd and the parameter layout
// (and state-dict names) of a standard GPT of the same shape.
import * as lm from '../core/index.js';
import type { Tensor } from '../core/index.js';
import type { Block } from './block.js';
import type { ForwardContext } from './context.js';

export interface ReversibleOptions {
  /** true: the activation-free backward that recomputes; false: ordinary autograd through the coupling (the twin). */
  recompute: boolean;
}

/** One coupling step: (x1, x2) → (x1 + F(x2), x2 + G(y1)). */
function couple(block: Block, x1: Tensor, x2: Tensor, ctx: ForwardContext): [Tensor, Tensor] {
  const y1 = lm.add(x1, block.attnBranch(x2, ctx)); // (B, T, C)
  const y2 = lm.add(x2, block.mlpBranch(y1, ctx)); // (B, T, C)
  return [y1, y2];
}

/** (B, T, C) → (B, T, C) through the blocks as a reversible stack. */
export function reversibleStack(blocks: readonly Block[], x: Tensor, ctx: ForwardContext, options: ReversibleOptions): Tensor {
  if (!options.recompute || !lm.isGradEnabled()) {
    // Stored twin, or no autograd (evaluation, cached decoding: each block's scope frees its intermediates).
    const scoped = lm.isGradEnabled() ? <R>(f: () => R): R => f() : lm.tidy;
    let x1 = x;
    let x2 = x;
    for (const block of blocks) [x1, x2] = scoped(() => couple(block, x1, x2, ctx));
    return lm.mul(lm.add(x1, x2), 0.5);
  }
  const auxBefore = Object.keys(ctx.aux).length;
  // Forward without a graph: only the last block's outputs survive.
  const [y1, y2] = lm.noGrad(() => {
    let a = x;
    let b = x;
    for (const block of blocks) {
      const next = lm.tidy(() => couple(block, a, b, ctx));
      if (a !== x) a.dispose();
      if (b !== x) b.dispose();
      [a, b] = next;
    }
    return [a, b] as const;
  });
  if (Object.keys(ctx.aux).length !== auxBefore) {
    throw new Error('reversible: a block added an auxiliary loss (MoE balance, z-loss); reversible stacks do not carry them — set reversible: false');
  }
  const out = lm.noGrad(() => lm.mul(lm.add(y1, y2), 0.5)); // (B, T, C)
  // Parameters are inputs of the node only so that it is recorded when they train and x does not; their gradients
  // land in .grad through the nested backward passes below, so the rule returns null for them.
  const params = [...new Set(blocks.flatMap((b) => b.parameters()))];
  return lm.record('reversible_stack', [x, ...params], out, (gOut) => {
    // d(out)/dy1 = d(out)/dy2 = 1/2.
    const half = lm.mul(gOut, 0.5);
    let a = y1;
    let b = y2;
    let dy1 = half;
    let dy2 = half;
    const drop = (t: Tensor, ...keepers: Tensor[]): void => {
      if (!keepers.includes(t)) t.dispose();
    };
    for (let l = blocks.length - 1; l >= 0; l--) {
      const block = blocks[l]!;
      const r = lm.tidy(() => {
        // G: rebuild x2 = y2 − G(y1) and push dy2 through G into y1 and G's weights.
        const z1 = lm.requireGrad(lm.detach(a));
        const g = lm.withGrad(() => block.mlpBranch(z1, ctx));
        const x2 = lm.sub(b, g);
        lm.backward(g, dy2);
        const dz1 = lm.add(dy1, z1.grad!); // dL/dy1 in full: direct, and through G
        // F: rebuild x1 = y1 − F(x2) and push dz1 through F into x2 and F's weights.
        const w2 = lm.requireGrad(lm.detach(x2));
        const f = lm.withGrad(() => block.attnBranch(w2, ctx));
        const x1 = lm.sub(a, f);
        lm.backward(f, dz1);
        const dx2 = lm.add(dy2, w2.grad!); // dL/dx2: the skip of y2, and through F
        return { x1, x2, dx1: dz1, dx2 };
      });
      drop(a, y1);
      drop(b, y2);
      drop(dy1, half);
      drop(dy2, half);
      [a, b, dy1, dy2] = [r.x1, r.x2, r.dx1, r.dx2];
    }
    // x fed both halves: its gradient is the sum.
    const dx = lm.add(dy1, dy2);
    for (const t of new Set([a, b, dy1, dy2, half])) if (t !== y1 && t !== y2) t.dispose();
    return [dx, ...params.map(() => null)];
  });
}

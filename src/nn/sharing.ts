// Cross-layer parameter sharing (ALBERT, Lan et al. 2019): every block uses block 0's weights — all of them, its
// attention (with ln_1) or its MLP (with ln_2). The shared sub-modules are the very objects of block 0, so the
// state dict, the optimizer and checkpoints see one copy under `transformer.h.0.*` (Module.namedParameters lists a
// tensor once) and autograd sums each use's gradient into it. Not the parameter arithmetic (models/gpt-cost.ts).
import type { Block } from './block.js';

export type ShareLayers = 'none' | 'all' | 'attention' | 'ffn';

/**
 * The sub-module paths of a Block that a sharing mode ties to block 0. Attention shares its projections, not the
 * CausalSelfAttention object, because each layer keeps its own index (KV-cache slot, dropout site, local window).
 */
export function sharedPaths(mode: ShareLayers): string[] {
  const attention = ['ln_1', 'attn.c_attn', 'attn.c_proj'];
  const ffn = ['ln_2', 'mlp'];
  switch (mode) {
    case 'none':
      return [];
    case 'all':
      return [...attention, ...ffn];
    case 'attention':
      return attention;
    case 'ffn':
      return ffn;
  }
}

/**
 * Points blocks 1… at block 0's sub-modules for the mode's paths; the blocks' own copies (made by their
 * constructors, so initialisation draws the same numbers as an unshared model) are disposed.
 */
export function shareLayers(blocks: readonly Block[], mode: ShareLayers): void {
  const first = blocks[0];
  if (!first) return;
  for (const path of sharedPaths(mode)) {
    const source = first.getModule(path);
    for (const block of blocks.slice(1)) {
      block.replaceModule(path, (old) => {
        old.dispose();
        return source;
      });
    }
  }
}

// The analytic cost of a GPT from its config keys alone (no weights): parameters stored (shared weights once),
// effective (as if unshared), active per token (a mixture of experts runs top_k of its experts), the non-embedding
// count scaling laws use, and training FLOPs per token. Studies and `inspect` read it; the model is not built.
// Mixture-of-experts keys (moe_experts, moe_top_k, moe_layers, moe_expert_hidden) are read when a config has them.
import { parseLocalLayers } from '../nn/attention.js';
import { mlpHidden } from '../nn/mlp.js';
import { sharedPaths, type ShareLayers } from '../nn/sharing.js';
import { embeddingWidth, type GPTConfig } from './gpt.js';

export interface GPTCost {
  /** Parameters held in the state dict (a shared layer once). */
  stored: number;
  /** Parameters as if every layer had its own (ALBERT's comparison). */
  effective: number;
  /** Parameters one token runs through (effective, with only top_k experts of each MoE layer). */
  active: number;
  /** Active parameters without token and position embeddings (Kaplan et al.'s N); the head counts when untied. */
  nonEmbedding: number;
  /** Training FLOPs per token: 3 × (2 · active matmul weights + the head + attention scores 4·L·T·C). */
  flopsPerToken: number;
}

/** MoE keys another model family may add to the config; absent means a dense MLP. */
interface MoEKeys {
  moe_experts?: number;
  moe_top_k?: number;
  moe_layers?: string;
  moe_expert_hidden?: number;
}

/** The layers a moe_layers value names ('all', '' or indices as local_layers; anything else: every layer). */
function moeLayerSet(spec: string | undefined, nLayer: number): Set<number> {
  try {
    return parseLocalLayers(spec ?? 'all', nLayer);
  } catch {
    return parseLocalLayers('all', nLayer);
  }
}

export function gptCost(config: GPTConfig & MoEKeys): GPTCost {
  const c = config;
  const C = c.n_embd;
  const V = c.vocab_size;
  const L = c.n_layer;
  const E = embeddingWidth(c);
  const bias = c.bias ? 1 : 0;
  const norm = c.norm === 'layernorm' ? C * (1 + bias) : C;
  const linear = (i: number, o: number): number => i * o + bias * o;
  const mlpOf = (hidden: number): number => (c.mlp === 'swiglu' ? linear(C, 2 * hidden) + linear(hidden, C) : linear(C, hidden) + linear(hidden, C));
  const attn = linear(C, 3 * C) + linear(C, C);
  const dense = mlpOf(mlpHidden(c));
  const experts = c.moe_experts ?? 0;
  const moeLayers = experts > 0 ? moeLayerSet(c.moe_layers, L) : new Set<number>();
  const expert = mlpOf(c.moe_expert_hidden && c.moe_expert_hidden > 0 ? c.moe_expert_hidden : mlpHidden(c));
  const router = C * experts;
  const topK = Math.min(c.moe_top_k ?? 1, experts);

  // Per layer: [all of its parameters, those a token runs through], split by what sharing ties to layer 0.
  const shared = new Set(sharedPaths(c.share_layers as ShareLayers));
  let stored = 0;
  let effective = 0;
  let active = 0;
  for (let l = 0; l < L; l++) {
    const moe = moeLayers.has(l);
    const ffnAll = moe ? router + experts * expert : dense;
    const ffnActive = moe ? router + topK * expert : dense;
    const attnPart = norm + attn;
    const ffnPart = norm + ffnAll;
    effective += attnPart + ffnPart;
    active += attnPart + norm + ffnActive;
    stored += (l > 0 && shared.has('attn.c_attn') ? 0 : attnPart) + (l > 0 && shared.has('mlp') ? 0 : ffnPart);
  }
  // Outside the blocks: ln_f, the factorized projections, the untied head; embeddings last.
  const proj = E < C ? linear(E, C) + (c.tie_embeddings ? linear(C, E) : 0) : 0;
  const head = c.tie_embeddings ? 0 : V * C;
  const outside = norm + proj + head;
  const embeddings = V * E + (c.position === 'learned' ? c.block_size * C : 0);
  const nonEmbedding = active + outside;
  // Forward FLOPs per token: 2 per weight of each matmul a token runs (blocks, projections, the head V×E or V×C),
  // plus attention's QKᵀ and AV over the keys a token sees (the context, or its window in local layers).
  const local = c.attention_window > 0 ? parseLocalLayers(c.local_layers, L) : new Set<number>();
  let attnScores = 0;
  for (let l = 0; l < L; l++) attnScores += 4 * C * (local.has(l) ? Math.min(c.attention_window, c.block_size) : c.block_size);
  const forward = 2 * (active + norm + proj) + 2 * V * (c.tie_embeddings ? E : C) + attnScores; // norm: ln_f
  return {
    stored: stored + outside + embeddings,
    effective: effective + outside + embeddings,
    active: active + outside + embeddings,
    nonEmbedding,
    flopsPerToken: 3 * forward,
  };
}

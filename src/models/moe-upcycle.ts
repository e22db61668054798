// Sparse upcycling (Komatsuzaki et al. 2022): a mixture-of-experts GPT started from a trained dense one. Every weight
// the two share is copied; each expert of an MoE layer starts as a copy of that layer's dense MLP; the router keeps
// its small random initialisation (N(0, 0.02²)), so at the start top-2's renormalised gates sum to 1 and the model
// computes what the dense one did (top-1 scales each MLP output by its gate). Not the trainer (train/trainer.ts).
import type { Tensor } from '../core/index.js';
import { mlpHidden } from '../nn/mlp.js';
import { moeLayers, type MoEConfig } from '../nn/moe.js';
import { GPT, type GPTConfig } from './gpt.js';

/** The MoE keys of a model config, as upcycling takes them from the run's model section. */
export const MOE_KEYS = [
  'moe_experts', 'moe_top_k', 'moe_layers', 'moe_capacity_factor', 'moe_eval_capacity_factor', 'moe_balance_coef', 'moe_z_coef',
  'moe_expert_dropout', 'moe_expert_hidden', 'moe_second_policy', 'moe_router_jitter',
] as const satisfies readonly (keyof MoEConfig)[];

function copyInto(dst: Tensor, src: Tensor, at: number): void {
  (dst.data as Float32Array).set((src.data as Float32Array).subarray(src.offset, src.offset + src.size), dst.offset + at);
}

/**
 * A new GPT with the dense base's architecture and the given MoE keys, initialised from the base. Throws a RangeError
 * naming the key when the base is already MoE, no MoE layer results, or moe_expert_hidden differs from the MLP's.
 */
export function upcycleGPT(base: GPT, moe: Partial<Pick<GPTConfig, (typeof MOE_KEYS)[number]>>, seed: number): GPT {
  if (base.config.moe_experts > 0) throw new RangeError(`moe_upcycle: the init_from model is already a mixture of experts (moe_experts = ${base.config.moe_experts}); upcycling starts from a dense model`);
  const config: GPTConfig = { ...base.config, ...moe };
  if (!(config.moe_experts > 0) || moeLayers(config).size === 0) throw new RangeError('moe_upcycle: set model.moe_experts (> 0) and model.moe_layers to name at least one layer');
  const H = mlpHidden(config);
  if (config.moe_expert_hidden !== 0 && config.moe_expert_hidden !== H) {
    throw new RangeError(`moe_upcycle: model.moe_expert_hidden is ${config.moe_expert_hidden} but the dense MLP is ${H} wide; experts copy it (leave moe_expert_hidden 0)`);
  }
  const model = new GPT(config, seed);
  const source = new Map(base.namedParameters());
  const E = config.moe_experts;
  for (const [name, p] of model.namedParameters()) {
    const same = source.get(name);
    if (same && same.size === p.size) {
      copyInto(p, same, 0);
      continue;
    }
    // transformer.h.L.mlp.experts.c_fc.weight ← transformer.h.L.mlp.c_fc.weight, once per expert.
    const m = /^(.*\.mlp)\.experts\.(c_fc|c_proj)\.(weight|bias)$/.exec(name);
    if (m) {
      const dense = source.get(`${m[1]}.${m[2]}.${m[3]}`);
      if (!dense || dense.size * E !== p.size) throw new Error(`upcycleGPT: no dense ${m[1]}.${m[2]}.${m[3]} of ${p.size / E} values for ${name}`);
      for (let e = 0; e < E; e++) copyInto(p, dense, e * dense.size);
    } else if (!/\.mlp\.router\.weight$/.test(name)) {
      throw new Error(`upcycleGPT: ${name} has no counterpart in the dense model`);
    }
  }
  return model;
}

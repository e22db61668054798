// Curriculum schedules of pretraining that do not depend on the data's content: sequence-length warmup (short
// rows first, the batch scaled so every step trains on the same number of tokens) and the temperature mixing plan
// of several token sources. Not the sampler (tasks/curriculum.ts) and not the packer (packing.ts).
import { planMix, type PlanRow } from '../data/mix.js';
import { UserError } from '../util/errors.js';

export interface SeqWarmup {
  /** First sequence length (0 = no warmup). */
  start: number;
  /** Steps over which the length ramps linearly to block_size. */
  steps: number;
}

/**
 * The sequence length of a step under warmup: the linear ramp start → blockSize over `steps`, rounded down to the
 * largest divisor of tokensPerBatch (batch_size · block_size) not above it, so the batch rows = tokensPerBatch / T
 * and every step trains on exactly tokensPerBatch tokens (the batch is scaled; tokens per step are kept constant).
 */
export function seqLenAt(step: number, w: SeqWarmup, blockSize: number, tokensPerBatch: number): number {
  if (w.start <= 0 || w.start >= blockSize || step >= w.steps) return blockSize;
  const ramp = Math.floor(w.start + ((blockSize - w.start) * step) / w.steps);
  for (let T = Math.min(ramp, blockSize); T > 1; T--) if (tokensPerBatch % T === 0) return T;
  return 1;
}

export function checkSeqWarmup(w: SeqWarmup, blockSize: number): void {
  if (w.start > 0 && w.start >= blockSize) throw new UserError(`curriculum.seq_warmup_start: ${w.start} must be below model.block_size (${blockSize}), or 0 for no warmup`);
  if (w.start > 0 && w.steps < 1) throw new UserError('curriculum.seq_warmup_steps: must be ≥ 1 when curriculum.seq_warmup_start is set');
}

/**
 * Sampling probabilities of training sources: p_i ∝ weight_i · n_i^(1/T) (n_i its training tokens), then capped at
 * maxEpochs passes over a source within the run's token budget, the excess handed to the others (data/mix.ts planMix).
 */
export function mixPlan(tokens: Record<string, number>, weights: Record<string, number>, temperature: number, budget: number, maxEpochs: number): PlanRow[] {
  if (!(temperature > 0)) throw new UserError(`mix.temperature: expected a number > 0, got ${temperature}`);
  // planMix's unit only names what the counts count; here they are tokens.
  return planMix(tokens, { temperature, unit: 'documents', total: budget, maxEpochs, sources: Object.fromEntries(Object.entries(weights).map(([k, w]) => [k, { weight: w }])), quality: null, seed: 0 });
}

/** "name=w,name2=w2" → { name: w, … } (names must be among `names`); '' = {}. */
export function parseWeights(spec: string, names: readonly string[], key: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of spec.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^([^=]+)=(.+)$/.exec(part);
    const w = m ? Number(m[2]) : NaN;
    if (!m || !(w >= 0) || !Number.isFinite(w)) throw new UserError(`${key}: ${JSON.stringify(part)} is not name=weight with a weight ≥ 0`);
    if (!names.includes(m[1]!.trim())) throw new UserError(`${key}: no source named ${JSON.stringify(m[1]!.trim())} (sources: ${names.join(', ')})`);
    out[m[1]!.trim()] = w;
  }
  return out;
}

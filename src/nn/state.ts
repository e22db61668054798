// State dicts: a module's parameters by dotted name, and strict loading that names every missing, unexpected
// or mis-shaped entry (with the source file) instead of loading half a model.
import type { Tensor } from '../core/index.js';
import type { Module } from './module.js';

export interface NamedArray {
  shape: readonly number[];
  data: ArrayLike<number>;
}

export class StateDictError extends Error {
  override name = 'StateDictError';
}

/**
 * Copies `entries` into the module's parameters. Every parameter must be present with the same shape and no
 * entry may be left over (except names matched by `ignore`, e.g. GPT-2's attention-mask buffers).
 */
export function loadStateDict(module: Module, entries: Map<string, NamedArray>, source: string, ignore: RegExp | null = null): void {
  const params = new Map<string, Tensor>(module.namedParameters());
  const problems: string[] = [];
  for (const [name, p] of params) {
    const e = entries.get(name);
    if (!e) problems.push(`missing ${name} ${JSON.stringify(p.shape)}`);
    else if (e.shape.length !== p.shape.length || e.shape.some((d, i) => d !== p.shape[i])) {
      problems.push(`${name} has shape ${JSON.stringify(e.shape)}, the model expects ${JSON.stringify(p.shape)}`);
    }
  }
  for (const name of entries.keys()) {
    if (!params.has(name) && !(ignore && ignore.test(name))) problems.push(`unexpected ${name}`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 12).join('; ');
    throw new StateDictError(`${source}: weights do not match the model: ${shown}${problems.length > 12 ? `; and ${problems.length - 12} more` : ''}`);
  }
  for (const [name, p] of params) {
    const e = entries.get(name)!;
    const d = p.data;
    for (let i = 0; i < p.size; i++) d[p.offset + i] = e.data[i]!;
  }
}

/** The module's parameters as named, shaped arrays (views of the live data, not copies). */
export function stateDict(module: Module): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [name, p] of module.namedParameters()) {
    out.set(name, { shape: p.shape, data: p.data.subarray(p.offset, p.offset + p.size) });
  }
  return out;
}

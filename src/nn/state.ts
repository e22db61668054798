// State dicts: a module's parameters and buffers by dotted name, and loading that names every missing, unexpected
// or mis-shaped entry (with the source file) instead of loading half a model. Partial loads (adapters, a head
// onto a saved body) use `prefix` and `strict: false`.
import type { Tensor } from '../core/index.js';
import type { Module } from './module.js';

export interface NamedArray {
  shape: readonly number[];
  data: ArrayLike<number>;
}

export class StateDictError extends Error {
  override name = 'StateDictError';
}

export interface LoadOptions {
  /**
   * true (default): every parameter and buffer in scope must be present and every entry used.
   * false: load what matches; missing and unexpected names are returned instead of refused.
   * A shape mismatch is an error either way.
   */
  strict?: boolean;
  /** Entries are relative to this dotted path of the module (e.g. 'body.'); only tensors under it are in scope. */
  prefix?: string;
  /** Entry names to skip silently (e.g. GPT-2's attention-mask buffers). */
  ignore?: RegExp | null;
}

export interface LoadResult {
  /** Names (full, with the prefix) of tensors in scope that no entry filled. */
  missing: string[];
  /** Entry names that match no tensor in scope. */
  unexpected: string[];
}

/** Every parameter and buffer by full dotted name. */
function namedTensors(module: Module): Map<string, Tensor> {
  return new Map<string, Tensor>([...module.namedParameters(), ...module.namedBuffers()]);
}

/** Copies `entries` into the module's parameters and buffers (see LoadOptions). Throws StateDictError naming source. */
export function loadStateDict(module: Module, entries: Map<string, NamedArray>, source: string, options: LoadOptions = {}): LoadResult {
  const strict = options.strict ?? true;
  const prefix = options.prefix ?? '';
  const inScope = new Map<string, Tensor>();
  for (const [name, t] of namedTensors(module)) if (name.startsWith(prefix)) inScope.set(name, t);
  const missing: string[] = [];
  const unexpected: string[] = [];
  const badShape: string[] = [];
  for (const [name, t] of inScope) {
    const e = entries.get(name.slice(prefix.length));
    if (!e) missing.push(name);
    else if (e.shape.length !== t.shape.length || e.shape.some((d, i) => d !== t.shape[i])) {
      badShape.push(`${name} has shape ${JSON.stringify(e.shape)}, the model expects ${JSON.stringify(t.shape)}`);
    }
  }
  for (const name of entries.keys()) {
    if (!inScope.has(prefix + name) && !(options.ignore && options.ignore.test(name))) unexpected.push(name);
  }
  const problems = [...badShape, ...(strict ? [...missing.map((n) => `missing ${n} ${JSON.stringify(inScope.get(n)!.shape)}`), ...unexpected.map((n) => `unexpected ${n}`)] : [])];
  if (problems.length > 0) {
    const shown = problems.slice(0, 12).join('; ');
    throw new StateDictError(`${source}: weights do not match the model: ${shown}${problems.length > 12 ? `; and ${problems.length - 12} more` : ''}`);
  }
  for (const [name, t] of inScope) {
    const e = entries.get(name.slice(prefix.length));
    if (!e) continue;
    const d = t.data;
    for (let i = 0; i < t.size; i++) d[t.offset + i] = e.data[i]!;
  }
  return { missing, unexpected };
}

/** The module's parameters and buffers as named, shaped arrays (views of the live data, not copies). */
export function stateDict(module: Module): Map<string, NamedArray> {
  const out = new Map<string, NamedArray>();
  for (const [name, t] of namedTensors(module)) {
    out.set(name, { shape: t.shape, data: t.data.subarray(t.offset, t.offset + t.size) });
  }
  return out;
}

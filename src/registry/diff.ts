// What changed between two runs: their resolved configs key by key (dotted paths, as `--key=value` names them),
// their data files by SHA-256, and their code commits. Used for a version's lineage record and `registry diff`.
import type { ConfigChange, DataChange, DataFingerprint, Json, JsonObject, VersionChanges } from './run-files.js';

/** Keys whose difference says nothing about the recipe (where the run was written). */
export const IGNORED_CONFIG_KEYS: readonly string[] = ['out_dir'];

/** A nested config as its leaves under dotted keys: { model: { n_layer: 4 } } → { 'model.n_layer': 4 }. */
export function flattenConfig(obj: JsonObject, prefix = '', out: Record<string, Json> = {}): Record<string, Json> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) flattenConfig(v, key, out);
    else out[key] = v;
  }
  return out;
}

/** The keys whose values differ (added and removed keys included), sorted by key. */
export function configDiff(from: JsonObject, to: JsonObject, ignore: readonly string[] = IGNORED_CONFIG_KEYS): ConfigChange[] {
  const a = flattenConfig(from);
  const b = flattenConfig(to);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !ignore.includes(k)).sort();
  const out: ConfigChange[] = [];
  for (const k of keys) {
    if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) out.push({ key: k, from: a[k], to: b[k] });
  }
  return out;
}

/** The data files whose contents differ (by SHA-256), or that only one side has. */
export function dataDiff(from: DataFingerprint, to: DataFingerprint): DataChange[] {
  const names = [...new Set([...Object.keys(from.files), ...Object.keys(to.files)])].sort();
  const out: DataChange[] = [];
  for (const n of names) {
    const a = from.files[n] ?? null;
    const b = to.files[n] ?? null;
    if (a?.sha256 !== b?.sha256) out.push({ file: n, from: a, to: b });
  }
  return out;
}

export interface RunSide {
  config: JsonObject;
  data: DataFingerprint;
  commit: string | null;
}

export function versionChanges(from: RunSide, to: RunSide): VersionChanges {
  return { config: configDiff(from.config, to.config), data: dataDiff(from.data, to.data), code: { from: from.commit, to: to.commit } };
}

function show(v: Json | undefined): string {
  return v === undefined ? '(unset)' : JSON.stringify(v);
}

/** The changes as Markdown bullet lines (for `registry diff`, `registry show` and the pipeline's summary). */
export function formatChanges(c: VersionChanges): string[] {
  const lines: string[] = [];
  if (c.config.length === 0) lines.push('- config: no change');
  for (const ch of c.config) lines.push(`- config \`${ch.key}\`: ${show(ch.from)} → ${show(ch.to)}`);
  if (c.data.length === 0) lines.push('- data: same files (SHA-256)');
  for (const d of c.data) {
    const side = (f: DataChange['from']): string => (f ? `${f.sha256.slice(0, 12)} (${f.bytes.toLocaleString('en-US')} B)` : '(none)');
    lines.push(`- data \`${d.file}\`: ${side(d.from)} → ${side(d.to)}`);
  }
  lines.push(c.code.from === c.code.to ? `- code: same commit ${c.code.to?.slice(0, 12) ?? '(unknown)'}` : `- code: ${c.code.from?.slice(0, 12) ?? '(unknown)'} → ${c.code.to?.slice(0, 12) ?? '(unknown)'}`);
  return lines;
}

// Typed configuration: a spec of commented defaults, resolved in layers defaults → config file (JSON or YAML)
// → `--key=value` flags, with unknown keys and type mismatches reported as UserErrors naming key, source and type.
// Not a CLI parser (commands hand their leftover args to parseFlagArgs) and knows nothing of any model.
//
// Layout: keys may be grouped in nested sections. A section is a plain object of entries; its keys are addressed
// with dots on the command line (`--optim.lr=3e-4`) and as nested mappings in files (`optim: {lr: 3e-4}`).
// Flat specs (nanoGPT style, `--learning_rate=...`) are simply specs without sections.
import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, parseDocument, type Node as YamlNode } from 'yaml';
import { writeFileAtomic } from './atomic.js';
import { UserError, describeError } from './errors.js';

export type ValueType = 'number' | 'integer' | 'boolean' | 'string';

/** One config key: its default and a line of documentation (the "commented default"). */
export interface EntrySpec {
  default: number | boolean | string | null;
  doc: string;
  /** Needed when default is null, or to ask for 'integer'; otherwise taken from typeof default. */
  type?: ValueType;
  /** Allowed values of a string entry. */
  choices?: readonly string[];
  /** null is allowed (written `null` in files and flags). Implied when default is null. */
  nullable?: boolean;
  min?: number;
  max?: number;
}

export interface ConfigSpec {
  readonly [key: string]: EntrySpec | ConfigSpec;
}

type Widen<D> = D extends number ? number : D extends boolean ? boolean : D extends string ? string : never;
type FromType<T> = T extends 'number' | 'integer' ? number : T extends 'boolean' ? boolean : T extends 'string' ? string : never;
type BaseValue<E> = E extends { choices: readonly (infer C)[] }
  ? C
  : E extends { type: infer T }
    ? FromType<T>
    : E extends { default: infer D }
      ? Widen<D>
      : never;
type EntryValue<E> = E extends { nullable: true } ? BaseValue<E> | null : E extends { default: null } ? BaseValue<E> | null : BaseValue<E>;

/** The resolved (plain, JSON-serialisable) config type of a spec. */
export type ConfigOf<S> = { -readonly [K in keyof S]: S[K] extends EntrySpec ? EntryValue<S[K]> : ConfigOf<S[K]> };

/** Declares a spec, keeping literal types so ConfigOf sees choices and types. Checks the defaults themselves. */
export function defineConfig<const S extends ConfigSpec>(spec: S): S {
  checkSpec(spec, []);
  return spec;
}

function isEntry(x: EntrySpec | ConfigSpec): x is EntrySpec {
  return typeof (x as EntrySpec).doc === 'string' && 'default' in x;
}

function entryType(e: EntrySpec): ValueType {
  if (e.type) return e.type;
  if (e.choices) return 'string';
  const t = typeof e.default;
  if (t === 'number' || t === 'boolean' || t === 'string') return t;
  throw new Error(`config spec: an entry with default null needs a type (${JSON.stringify(e.doc)})`);
}

function isNullable(e: EntrySpec): boolean {
  return e.nullable === true || e.default === null;
}

function checkSpec(spec: ConfigSpec, path: string[]): void {
  for (const [k, v] of Object.entries(spec)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`config spec: bad key name "${[...path, k].join('.')}"`);
    if (isEntry(v)) {
      entryType(v);
      const msg = checkValue(v, v.default);
      if (msg) throw new Error(`config spec: default of ${[...path, k].join('.')}: ${msg}`);
    } else {
      checkSpec(v, [...path, k]);
    }
  }
}

/** Human description of what an entry accepts, e.g. "an integer ≥ 1", "one of cosine|linear", "a string or null". */
export function describeType(e: EntrySpec): string {
  const t = entryType(e);
  let s: string;
  if (e.choices) s = `one of ${e.choices.join('|')}`;
  else s = t === 'integer' ? 'an integer' : t === 'number' ? 'a number' : t === 'boolean' ? 'a boolean (true|false)' : 'a string';
  if (e.min !== undefined && e.max !== undefined) s += ` in [${e.min}, ${e.max}]`;
  else if (e.min !== undefined) s += ` ≥ ${e.min}`;
  else if (e.max !== undefined) s += ` ≤ ${e.max}`;
  if (isNullable(e)) s += ' or null';
  return s;
}

/** undefined when v is acceptable for e, else a short reason. */
function checkValue(e: EntrySpec, v: unknown): string | undefined {
  if (v === null) return isNullable(e) ? undefined : 'null is not allowed';
  const t = entryType(e);
  switch (t) {
    case 'number':
    case 'integer':
      if (typeof v !== 'number' || !Number.isFinite(v)) return 'not a finite number';
      if (t === 'integer' && !Number.isInteger(v)) return 'not an integer';
      if (e.min !== undefined && v < e.min) return `below the minimum ${e.min}`;
      if (e.max !== undefined && v > e.max) return `above the maximum ${e.max}`;
      return undefined;
    case 'boolean':
      return typeof v === 'boolean' ? undefined : 'not a boolean';
    case 'string':
      if (typeof v !== 'string') return 'not a string';
      if (e.choices && !e.choices.includes(v)) return 'not one of the choices';
      return undefined;
  }
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? 'a list' : typeof v === 'object' && v !== null ? 'a mapping' : String(v);
}

// ---------------------------------------------------------------------------------------------------------------
// Layers

/** Values from a config file (or any object, e.g. a checkpoint's saved config), with where each key came from. */
export interface ObjectLayer {
  kind: 'object';
  /** The file path (or another name for the source) used in error messages. */
  source: string;
  data: unknown;
  /** 1-based line of a key path in the source file, when known. */
  lineOf?: (path: readonly string[]) => number | undefined;
}

/** `--key=value` overrides from the command line, in order (a later flag for the same key wins). */
export interface FlagLayer {
  kind: 'flags';
  flags: { key: string; raw: string | true; text: string }[];
}

/** A config file as a layer. JSON and YAML are both read by the YAML 1.2 parser, so errors give lines for both. */
export function readConfigFile(path: string): ObjectLayer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`config file ${path}: cannot read it (${describeError(e)})`);
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const line = lc.linePos(err.pos[0]).line;
    throw new UserError(`config file ${path}: line ${line}: ${err.message.split('\n')[0]}`);
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (e) {
    // An alias without its anchor ("*a") or an alias bomb fails only when the document is built.
    throw new UserError(`config file ${path}: ${describeError(e).split('\n')[0]}`);
  }
  if (data !== null && data !== undefined && (typeof data !== 'object' || Array.isArray(data))) {
    throw new UserError(`config file ${path}: expected a mapping of keys to values at the top level, got ${show(data)}`);
  }
  const lineOf = (keyPath: readonly string[]): number | undefined => {
    let node: unknown = doc.contents;
    let line: number | undefined;
    for (const k of keyPath) {
      if (!isMap(node)) return line;
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === k);
      if (!pair) return line;
      const range = (pair.key as YamlNode).range;
      if (range) line = lc.linePos(range[0]).line;
      node = pair.value;
    }
    return line;
  };
  return { kind: 'object', source: path, data: data ?? {}, lineOf };
}

/** An in-memory object as a layer (e.g. the config saved in a checkpoint), named `source` in errors. */
export function objectLayer(data: unknown, source: string): ObjectLayer {
  return { kind: 'object', source, data };
}

/**
 * Parses command-line overrides: `--key=value`, `--section.key=value`, or a bare `--key` (boolean true).
 * Anything else is a UserError, so a typo never passes silently.
 */
export function parseFlagArgs(args: readonly string[]): FlagLayer {
  const flags: FlagLayer['flags'] = [];
  for (const a of args) {
    const m = /^--([A-Za-z_][A-Za-z0-9_.]*)(?:=([\s\S]*))?$/.exec(a);
    if (!m || m[1] === undefined) {
      const prev = flags[flags.length - 1];
      const hint = prev && prev.raw === true && !a.startsWith('-') ? ` (did you mean ${prev.text}=${a}?)` : '';
      throw new UserError(`argument "${a}": expected a config override of the form --key=value${hint}`);
    }
    flags.push({ key: m[1], raw: m[2] ?? true, text: a });
  }
  return { kind: 'flags', flags };
}

// ---------------------------------------------------------------------------------------------------------------
// Resolution

type Plain = { [k: string]: Plain | number | boolean | string | null };

function defaults(spec: ConfigSpec): Plain {
  const out: Plain = {};
  for (const [k, v] of Object.entries(spec)) out[k] = isEntry(v) ? v.default : defaults(v);
  return out;
}

/** A spec's defaults as a resolved config. */
export function defaultsOf<S extends ConfigSpec>(spec: S): ConfigOf<S> {
  return defaults(spec) as ConfigOf<S>;
}

function knownKeys(spec: ConfigSpec): string {
  return Object.keys(spec).join(', ');
}

/**
 * Other names for keys, e.g. `{ n_layer: 'model.n_layer' }`: a top-level key of a file or a flag named on the left is
 * read as the dotted key on the right (older flat configs keep working after keys move into sections).
 */
export type Aliases = Readonly<Record<string, string>>;

function applyObject(spec: ConfigSpec, target: Plain, data: unknown, path: string[], layer: ObjectLayer, aliases: Aliases = {}): void {
  const where = (p: string[]): string => {
    const line = layer.lineOf?.(p);
    return line === undefined ? layer.source : `${layer.source}: line ${line}`;
  };
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new UserError(`${where(path)}: ${path.join('.')}: expected a mapping (a section of keys), got ${show(data)}`);
  }
  for (const [k, v] of Object.entries(data)) {
    const alias = path.length === 0 && spec[k] === undefined ? aliases[k] : undefined;
    if (alias !== undefined) {
      // Re-read `k: v` as the nested mapping it stands for, e.g. n_layer: 4 as model: {n_layer: 4}.
      const parts = alias.split('.');
      const nested = parts.slice(0, -1).reduceRight<unknown>((inner, part) => ({ [part]: inner }), { [parts[parts.length - 1]!]: v });
      const aliasedLayer: ObjectLayer = { ...layer, lineOf: layer.lineOf ? () => layer.lineOf!([k]) : undefined };
      applyObject(spec, target, nested, [], aliasedLayer);
      continue;
    }
    const p = [...path, k];
    const key = p.join('.');
    const s = spec[k];
    if (s === undefined) {
      const inSection = path.length ? ` in section ${path.join('.')}` : '';
      throw new UserError(`${where(p)}: unknown key "${key}"${inSection} (known keys: ${knownKeys(spec)})`);
    }
    if (isEntry(s)) {
      const why = checkValue(s, v);
      if (why) throw new UserError(`${where(p)}: ${key}: expected ${describeType(s)}, got ${show(v)} (${why})`);
      target[k] = v as number | boolean | string | null;
    } else {
      applyObject(s, target[k] as Plain, v, p, layer);
    }
  }
}

/** Parses a flag's text to the entry's type. */
function parseFlagValue(e: EntrySpec, raw: string | true): unknown {
  if (raw === true) return entryType(e) === 'boolean' ? true : undefined;
  if (raw === 'null' && isNullable(e)) return null;
  switch (entryType(e)) {
    case 'number':
    case 'integer': {
      const s = raw.trim();
      if (s === '' || !/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return raw;
      return Number(s);
    }
    case 'boolean':
      return raw === 'true' ? true : raw === 'false' ? false : raw;
    case 'string':
      return raw;
  }
}

function applyFlags(spec: ConfigSpec, target: Plain, layer: FlagLayer, aliases: Aliases = {}): void {
  for (const f of layer.flags) {
    const parts = (spec[f.key] === undefined ? aliases[f.key] ?? f.key : f.key).split('.');
    let s: ConfigSpec = spec;
    let t: Plain = target;
    for (let i = 0; i < parts.length; i++) {
      const k = parts[i]!;
      const sub = s[k];
      const prefix = parts.slice(0, i).join('.');
      if (sub === undefined) {
        const inSection = prefix ? ` in section ${prefix}` : '';
        throw new UserError(`flag ${f.text}: unknown key "${f.key}"${inSection} (known keys: ${knownKeys(s)})`);
      }
      const last = i === parts.length - 1;
      if (isEntry(sub)) {
        if (!last) throw new UserError(`flag ${f.text}: "${parts.slice(0, i + 1).join('.')}" is a value, not a section`);
        const v = parseFlagValue(sub, f.raw);
        const why = v === undefined ? 'no value given' : checkValue(sub, v);
        if (why) {
          throw new UserError(`flag ${f.text}: ${f.key}: expected ${describeType(sub)}, got ${f.raw === true ? 'no value' : JSON.stringify(f.raw)} (${why})`);
        }
        t[k] = v as number | boolean | string | null;
      } else {
        if (last) throw new UserError(`flag ${f.text}: "${f.key}" is a section (keys: ${knownKeys(sub)}); set one of its keys`);
        s = sub;
        t = t[k] as Plain;
      }
    }
  }
}

/**
 * Resolves a config: the spec's defaults, then each layer in order (usually a file, then flags). Every value in the
 * result has been checked against its entry. Throws UserError naming the key, the source and the expected type.
 */
export function resolveConfig<S extends ConfigSpec>(spec: S, ...layers: (ObjectLayer | FlagLayer | undefined)[]): ConfigOf<S> {
  return resolveConfigWithAliases(spec, {}, ...layers);
}

/** resolveConfig, reading the alias names too (see Aliases). */
export function resolveConfigWithAliases<S extends ConfigSpec>(spec: S, aliases: Aliases, ...layers: (ObjectLayer | FlagLayer | undefined)[]): ConfigOf<S> {
  const out = defaults(spec);
  for (const layer of layers) {
    if (!layer) continue;
    if (layer.kind === 'object') applyObject(spec, out, layer.data, [], layer, aliases);
    else applyFlags(spec, out, layer, aliases);
  }
  return out as ConfigOf<S>;
}

/** The usual entry point for a command: defaults → optional config file → `--key=value` args. */
export function loadConfig<S extends ConfigSpec>(spec: S, configPath: string | undefined, flagArgs: readonly string[], aliases: Aliases = {}): ConfigOf<S> {
  return resolveConfigWithAliases(spec, aliases, configPath ? readConfigFile(configPath) : undefined, parseFlagArgs(flagArgs));
}

/** Help text: one line per key with its type, default and doc, grouped by section. */
export function configHelp(spec: ConfigSpec, indent = '  '): string {
  const rows: [string, string][] = [];
  const walk = (s: ConfigSpec, prefix: string): void => {
    for (const [k, v] of Object.entries(s)) {
      if (isEntry(v)) {
        const left = `--${prefix}${k}=<${v.choices ? v.choices.join('|') : entryType(v)}${isNullable(v) ? '|null' : ''}>`;
        rows.push([left, `${v.doc} (default: ${JSON.stringify(v.default)})`]);
      } else {
        walk(v, `${prefix}${k}.`);
      }
    }
  };
  walk(spec, '');
  const width = Math.min(40, Math.max(...rows.map(([l]) => l.length)));
  return rows.map(([l, r]) => (l.length > width ? `${indent}${l}\n${indent}${' '.repeat(width)}  ${r}` : `${indent}${l.padEnd(width)}  ${r}`)).join('\n');
}

/** The resolved config as pretty JSON (what runs save beside their outputs). */
export function configToJSON(config: object): string {
  return JSON.stringify(config, null, 2) + '\n';
}

/** Saves a resolved config atomically as JSON; read it back with readConfigFile + resolveConfig. */
export function saveConfig(path: string, config: object): void {
  writeFileAtomic(path, configToJSON(config));
}

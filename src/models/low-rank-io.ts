// A factorized GPT on disk: the ordinary model directory (model.safetensors + config.json) in which each factorized
// layer `<path>` holds `<path>.weight_a` (in, r) and `<path>.weight_b` (r, out) instead of `<path>.weight` (its bias
// as before), and config.json carries a `low_rank` block naming those layers and their ranks:
//   "low_rank": { "version": 1, "layers": { "transformer.h.0.attn.c_attn": 16, … }, "selection": { "rank": 16 } }
// Loading builds the GPT from the config, puts empty LowRankLinear layers of those ranks in place and loads the
// weights strictly (every factor present with its shape, nothing else). Not the factorization (nn/low-rank.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyLowRank, lowRankLayers, type RankSelection } from '../nn/low-rank.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UserError, describeError } from '../util/errors.js';
import { GPT } from './gpt.js';
import { CONFIG_FILE, fromHFConfig, loadWeights, saveGPT, WEIGHTS_FILE } from './gpt-io.js';

export const LOW_RANK_KEY = 'low_rank';
export const LOW_RANK_VERSION = 1;

export interface LowRankConfig {
  version: number;
  /** Module path → rank, for every factorized layer. */
  layers: Record<string, number>;
  /** How the ranks were chosen (informational). */
  selection?: RankSelection;
}

function readConfigJSON(dir: string): Record<string, unknown> {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) throw new UserError(`${path}: file not found (expected a model directory with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${describeError(e)})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/** Whether dir holds a factorized model (config.json with a low_rank block). */
export function isLowRankDir(dir: string): boolean {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) return false;
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    return typeof o === 'object' && o !== null && LOW_RANK_KEY in o;
  } catch {
    return false;
  }
}

/** Reads and checks config.json's low_rank block (from `raw`, the parsed config.json, when the caller has it). */
export function readLowRankConfig(dir: string, raw: Record<string, unknown> = readConfigJSON(dir)): LowRankConfig {
  const path = join(dir, CONFIG_FILE);
  const o = raw[LOW_RANK_KEY];
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new UserError(`${path}: field ${LOW_RANK_KEY} must be an object { version, layers: { path: rank } }`);
  const b = o as Record<string, unknown>;
  if (b.version !== LOW_RANK_VERSION) throw new UserError(`${path}: field ${LOW_RANK_KEY}.version is ${JSON.stringify(b.version)}, expected ${LOW_RANK_VERSION} (written by a different lmforge; re-run \`lmforge lowrank\`)`);
  const layers = b.layers;
  if (typeof layers !== 'object' || layers === null || Array.isArray(layers) || Object.keys(layers).length === 0) {
    throw new UserError(`${path}: field ${LOW_RANK_KEY}.layers must be a non-empty object of module path → rank`);
  }
  for (const [p, r] of Object.entries(layers)) {
    if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw new UserError(`${path}: field ${LOW_RANK_KEY}.layers["${p}"] is ${JSON.stringify(r)}, expected an integer ≥ 1`);
  }
  return { version: LOW_RANK_VERSION, layers: layers as Record<string, number>, ...(b.selection ? { selection: b.selection as RankSelection } : {}) };
}

/** Writes the factorized model: model.safetensors (factors under their names) and config.json with its low_rank block. */
export function saveLowRankGPT(dir: string, model: GPT, selection: RankSelection | null, metadata: Record<string, string> = {}): void {
  const layers = lowRankLayers(model);
  if (layers.length === 0) throw new Error('saveLowRankGPT: the model has no LowRankLinear layers');
  saveGPT(dir, model, metadata);
  const config = readConfigJSON(dir);
  const block: LowRankConfig = { version: LOW_RANK_VERSION, layers: Object.fromEntries(layers.map(([p, l]) => [p, l.rank])), ...(selection ? { selection } : {}) };
  writeFileAtomic(join(dir, CONFIG_FILE), JSON.stringify({ ...config, [LOW_RANK_KEY]: block }, null, 2) + '\n');
}

/** Loads a factorized model directory (see the file comment); errors name the file and the field or tensor. */
export function loadLowRankGPT(dir: string): GPT {
  const configPath = join(dir, CONFIG_FILE);
  const weightsPath = join(dir, WEIGHTS_FILE);
  if (!existsSync(weightsPath)) throw new UserError(`${weightsPath}: file not found (expected a model directory with ${CONFIG_FILE} and ${WEIGHTS_FILE})`);
  const raw = readConfigJSON(dir);
  const lr = readLowRankConfig(dir, raw);
  let model: GPT;
  try {
    model = new GPT(fromHFConfig(raw, configPath));
  } catch (e) {
    if (e instanceof RangeError) throw new UserError(`${configPath}: ${e.message}`);
    throw e;
  }
  try {
    applyLowRank(model, new Map(Object.entries(lr.layers)), `${configPath}: field ${LOW_RANK_KEY}.layers`);
    loadWeights(model, weightsPath);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

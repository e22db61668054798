// Fuzzes the binary and config parsers: safetensors headers, token files (both readers), checkpoint directories
// (state.json and the files it lists, through verifyCheckpoint and loadCheckpoint), training configs (util/config)
// and curation configs (data/config). Mutated seeds must parse or be refused with a UserError, never anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { decodeSafetensors, encodeSafetensors } from '../../src/core/safetensors.js';
import { decodeHeader, encodeHeader } from '../../src/tokenizers/token-file.js';
import { openTokenFile, parseTokenFile } from '../../src/train/token-reader.js';
import { MODEL_FILE, STATE_FILE, loadCheckpoint, saveCheckpoint } from '../../src/train/checkpoint.js';
import { TRAIN_ALIASES, trainSpec } from '../../src/train/train-config.js';
import { readConfigFile, resolveConfigWithAliases } from '../../src/util/config.js';
import { validateConfig, loadConfig as loadCurateConfig } from '../../src/data/config.js';
import { checkpointContents } from '../train/ckpt-fixture.js';
import { fuzz, mutatedBytes, mutatedJsonText, report } from './harness.js';

const repo = (p: string): string => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'lmf-fuzz-fmt-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

test('fuzz: safetensors headers and data', () => {
  const seeds = [
    Uint8Array.from(readFileSync(repo('test/fixtures/safetensors/all_dtypes.safetensors'))),
    Uint8Array.from(readFileSync(repo('test/fixtures/safetensors/writable.safetensors'))),
    Uint8Array.from(encodeSafetensors([['a', { shape: [2, 3], data: new Float32Array(6) }], ['b', { shape: [0], data: new Int32Array(0) }]], { k: 'v' })),
  ];
  // Header-aware: rewrite the JSON header (keeping the length prefix consistent) with JSON mutations.
  const headerOf = (b: Uint8Array): { json: string; data: Uint8Array } => {
    const n = Number(Buffer.from(b).readBigUInt64LE(0));
    return { json: Buffer.from(b.subarray(8, 8 + n)).toString('utf8'), data: b.subarray(8 + n) };
  };
  const parts = seeds.map(headerOf);
  const rebuilt = fc.tuple(mutatedJsonText(parts.map((p) => p.json)), fc.constantFrom(...parts.map((p) => p.data))).map(([json, data]) => {
    const h = Buffer.from(json, 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    return Uint8Array.from(Buffer.concat([len, h, data]));
  });
  report('safetensors', fuzz(fc.oneof(mutatedBytes(seeds), rebuilt), 20000, (b) => decodeSafetensors(b, 'fuzz.safetensors')));
});

test('fuzz: token files (random-access header reader and the trainer\'s reader)', () => {
  const ids = Uint8Array.from(Buffer.from(new Uint16Array([1, 2, 3, 65535, 0]).buffer));
  const seeds = [
    Uint8Array.from(Buffer.concat([encodeHeader('uint16', 5), ids])),
    Uint8Array.from(Buffer.concat([encodeHeader('uint32', 2), Buffer.from(new Uint32Array([7, 0xffffffff]).buffer)])),
    encodeHeader('uint16', 0),
  ];
  report('token file (parseTokenFile)', fuzz(mutatedBytes(seeds, 64), 10000, (b) => parseTokenFile(b, 'fuzz.bin')));
  report('token file (decodeHeader)', fuzz(mutatedBytes(seeds, 64), 10000, (b) => decodeHeader(b.subarray(0, 24), 'fuzz.bin', b.length)));
  let n = 0;
  report('token file (openTokenFile, mapped)', fuzz(mutatedBytes(seeds, 64), 1000, (b) => {
    const p = join(tmp, `tok${n++}.bin`);
    writeFileSync(p, b);
    openTokenFile(p);
  }));
});

test('fuzz: checkpoint directories (state.json and the files it lists)', () => {
  const run = join(tmp, 'run');
  const dir = saveCheckpoint(run, checkpointContents(3, 16));
  const state = readFileSync(join(dir, STATE_FILE), 'utf8');
  const model = Uint8Array.from(readFileSync(join(dir, MODEL_FILE)));
  const arb = fc.oneof(
    mutatedJsonText([state]).map((s) => ({ state: s, model })),
    mutatedBytes([model], 64).map((m) => ({ state, model: m })),
  );
  report('checkpoint', fuzz(arb, 1500, (c) => {
    writeFileSync(join(dir, STATE_FILE), c.state);
    writeFileSync(join(dir, MODEL_FILE), c.model);
    loadCheckpoint(dir);
  }));
  // The seed itself still loads: the fuzzer compared against a valid checkpoint.
  writeFileSync(join(dir, STATE_FILE), state);
  writeFileSync(join(dir, MODEL_FILE), model);
  assert.equal(loadCheckpoint(dir).state.step, 3);
});

test('fuzz: training configs (YAML / JSON through readConfigFile and resolveConfig)', () => {
  const yaml = readFileSync(repo('configs/shakespeare-char-cpu.yaml'), 'utf8');
  const json = JSON.stringify({ batch_size: 4, n_layer: 2, learning_rate: 0.001, bias: true, out_dir: 'runs/x' });
  let n = 0;
  report('train config', fuzz(mutatedJsonText([yaml, json]), 1500, (text) => {
    const p = join(tmp, `cfg${n++ % 8}.yaml`);
    writeFileSync(p, text);
    resolveConfigWithAliases(trainSpec, TRAIN_ALIASES, readConfigFile(p));
  }));
});

test('fuzz: curation configs (YAML through data/config)', () => {
  const yaml = readFileSync(repo('configs/curate-example.yaml'), 'utf8');
  let n = 0;
  report('curate config', fuzz(mutatedJsonText([yaml]), 1000, (text) => {
    const p = join(tmp, `curate${n++ % 8}.yaml`);
    writeFileSync(p, text);
    loadCurateConfig(p);
  }));
  report('curate config (objects)', fuzz(fc.jsonValue({ maxDepth: 3 }), 1000, (v) => validateConfig(v, tmp)));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  configHelp, defineConfig, loadConfig, objectLayer, parseFlagArgs, readConfigFile, resolveConfig, saveConfig,
  type ConfigOf,
} from '../../src/util/config.js';
import { UserError } from '../../src/util/errors.js';

const spec = defineConfig({
  n_layer: { default: 4, type: 'integer', min: 1, doc: 'number of transformer blocks' },
  dropout: { default: 0.0, min: 0, max: 1, doc: 'dropout probability' },
  bias: { default: false, doc: 'use bias in Linear and LayerNorm' },
  out_dir: { default: 'runs/shakespeare', doc: 'where checkpoints go' },
  init_from: { default: null, type: 'string', doc: 'checkpoint to start from' },
  optim: {
    lr: { default: 6e-4, doc: 'peak learning rate' },
    schedule: { default: 'cosine', choices: ['constant', 'cosine', 'linear'], doc: 'learning-rate schedule' },
    max_iters: { default: 5000, type: 'integer', nullable: true, doc: 'stop after this many steps' },
  },
});

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'lmf-config-'));
}

function throwsUser(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof UserError && re.test(e.message));
}

test('defaults resolve to a typed object', () => {
  const c: ConfigOf<typeof spec> = resolveConfig(spec);
  assert.deepEqual(c, {
    n_layer: 4, dropout: 0, bias: false, out_dir: 'runs/shakespeare', init_from: null,
    optim: { lr: 6e-4, schedule: 'cosine', max_iters: 5000 },
  });
  // Compile-time checks on the derived type: these assignments must type-check.
  const sched: 'constant' | 'cosine' | 'linear' = c.optim.schedule;
  const init: string | null = c.init_from;
  const iters: number | null = c.optim.max_iters;
  assert.equal(sched, 'cosine');
  assert.equal(init, null);
  assert.equal(iters, 5000);
});

test('precedence defaults → YAML file → flags, with typed flag parsing', () => {
  const dir = tmp();
  const p = join(dir, 'c.yaml');
  // YAML 1.2: 6e-4 is a number (PyYAML's YAML 1.1 would read it as a string).
  writeFileSync(p, '# comment\nn_layer: 6\ndropout: 5e-2\noptim:\n  lr: 1.0e-3\n  schedule: linear\n');
  assert.equal(loadConfig(spec, p, []).dropout, 0.05);
  const c = loadConfig(spec, p, ['--n_layer=8', '--bias', '--optim.max_iters=null', '--init_from=ckpt/x', '--dropout=.2']);
  assert.equal(c.n_layer, 8);
  assert.equal(c.bias, true);
  assert.equal(c.dropout, 0.2);
  assert.equal(c.init_from, 'ckpt/x');
  assert.equal(c.optim.lr, 1e-3);
  assert.equal(c.optim.schedule, 'linear');
  assert.equal(c.optim.max_iters, null);
  const last = loadConfig(spec, undefined, ['--n_layer=2', '--n_layer=3', '--bias=false']);
  assert.equal(last.n_layer, 3);
  assert.equal(last.bias, false);
  rmSync(dir, { recursive: true });
});

test('JSON files work and errors name file, line, key and expected type', () => {
  const dir = tmp();
  const j = join(dir, 'c.json');
  writeFileSync(j, '{\n  "n_layer": 2,\n  "optim": {\n    "lr": 0.01\n  }\n}\n');
  assert.equal(loadConfig(spec, j, []).optim.lr, 0.01);

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'n_layer: 4\noptim:\n  lrr: 0.1\n');
  throwsUser(() => loadConfig(spec, bad, []), /bad\.yaml: line 3: unknown key "optim\.lrr" in section optim \(known keys: lr, schedule, max_iters\)/);
  writeFileSync(bad, 'n_layer: four\n');
  throwsUser(() => loadConfig(spec, bad, []), /bad\.yaml: line 1: n_layer: expected an integer ≥ 1, got "four"/);
  writeFileSync(bad, 'n_layer: 2.5\n');
  throwsUser(() => loadConfig(spec, bad, []), /n_layer: expected an integer.*not an integer/);
  writeFileSync(bad, 'bias: true\ndropout: 1.5\n');
  throwsUser(() => loadConfig(spec, bad, []), /line 2: dropout: expected a number in \[0, 1\], got 1\.5/);
  writeFileSync(bad, 'optim: 3\n');
  throwsUser(() => loadConfig(spec, bad, []), /line 1: optim: expected a mapping/);
  writeFileSync(bad, 'optim:\n  schedule: cosin\n');
  throwsUser(() => loadConfig(spec, bad, []), /optim\.schedule: expected one of constant\|cosine\|linear, got "cosin"/);
  writeFileSync(bad, 'n_layer: 4\nn_layer: 5\n');
  throwsUser(() => loadConfig(spec, bad, []), /bad\.yaml: line 2: .*unique/i);
  writeFileSync(bad, 'a: [1, 2\n');
  throwsUser(() => loadConfig(spec, bad, []), /bad\.yaml: line \d+/);
  writeFileSync(bad, '- 1\n- 2\n');
  throwsUser(() => loadConfig(spec, bad, []), /expected a mapping of keys to values at the top level/);
  throwsUser(() => loadConfig(spec, join(dir, 'missing.yaml'), []), /missing\.yaml: cannot read it \(ENOENT/);
  rmSync(dir, { recursive: true });
});

test('flag errors name the flag, key and expected type', () => {
  throwsUser(() => loadConfig(spec, undefined, ['--n_layers=3']), /flag --n_layers=3: unknown key "n_layers" \(known keys: n_layer, dropout/);
  throwsUser(() => loadConfig(spec, undefined, ['--n_layer=3.5']), /flag --n_layer=3\.5: n_layer: expected an integer ≥ 1, got "3\.5"/);
  throwsUser(() => loadConfig(spec, undefined, ['--n_layer=0']), /below the minimum 1/);
  throwsUser(() => loadConfig(spec, undefined, ['--n_layer=12abc']), /expected an integer/);
  throwsUser(() => loadConfig(spec, undefined, ['--n_layer=null']), /null is not allowed|expected an integer/);
  throwsUser(() => loadConfig(spec, undefined, ['--bias=yes']), /expected a boolean \(true\|false\)/);
  throwsUser(() => loadConfig(spec, undefined, ['--n_layer']), /no value/);
  throwsUser(() => loadConfig(spec, undefined, ['--optim.lrx=1']), /unknown key "optim\.lrx" in section optim/);
  throwsUser(() => loadConfig(spec, undefined, ['--optim=1']), /is a section/);
  throwsUser(() => loadConfig(spec, undefined, ['--bias.x=1']), /is a value, not a section/);
  throwsUser(() => parseFlagArgs(['n_layer=3']), /expected a config override of the form --key=value/);
});

test('an object layer (a checkpoint\'s saved config) is checked the same way', () => {
  const c = resolveConfig(spec, objectLayer({ n_layer: 12 }, 'ckpt-100/state.json'));
  assert.equal(c.n_layer, 12);
  throwsUser(() => resolveConfig(spec, objectLayer({ width: 1 }, 'ckpt-100/state.json')), /^ckpt-100\/state\.json: unknown key "width"/);
});

test('saved config round-trips through readConfigFile', () => {
  const dir = tmp();
  const c = loadConfig(spec, undefined, ['--optim.schedule=constant', '--init_from=x']);
  const p = join(dir, 'config.json');
  saveConfig(p, c);
  assert.deepEqual(JSON.parse(readFileSync(p, 'utf8')), c);
  assert.deepEqual(resolveConfig(spec, readConfigFile(p)), c);
  rmSync(dir, { recursive: true });
});

test('help lists every key with type, default and doc; bad specs are rejected', () => {
  const h = configHelp(spec);
  assert.match(h, /--n_layer=<integer>\s+number of transformer blocks \(default: 4\)/);
  assert.match(h, /--optim\.schedule=<constant\|cosine\|linear>\s+learning-rate schedule \(default: "cosine"\)/);
  assert.match(h, /--init_from=<string\|null>/);
  assert.throws(() => defineConfig({ x: { default: 1.5, type: 'integer', doc: 'x' } }), /default of x: not an integer/);
  assert.throws(() => defineConfig({ x: { default: null, doc: 'x' } }), /needs a type/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { addConfigOptions, configFromCommand } from '../../src/cli/config-options.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { defineConfig } from '../../src/util/config.js';
import { UserError } from '../../src/util/errors.js';
import { checkpointContents } from '../train/ckpt-fixture.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const PKG = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

function lmforge(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('lmforge --help, --version, and help on every command', () => {
  const help = lmforge('--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: lmforge \[options\] \[command\]/);
  assert.match(help.stdout, /info .*show versions, native addon status/);
  assert.match(help.stdout, /inspect .*describe and verify/);
  const v = lmforge('--version');
  assert.equal(v.code, 0);
  assert.equal(v.stdout.trim(), PKG.version);
  for (const cmd of ['info', 'inspect']) {
    const h = lmforge(cmd, '--help');
    assert.equal(h.code, 0, `${cmd} --help`);
    assert.match(h.stdout, new RegExp(`Usage: lmforge ${cmd}`));
  }
  const bad = lmforge('trian');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unknown command 'trian'/);
});

test('lmforge info reports versions, the native addon and its SIMD paths', () => {
  const r = lmforge('info');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^lmforge\\s+${PKG.version.replace(/\./g, '\\.')}$`, 'm'));
  assert.match(r.stdout, new RegExp(`^node\\s+${process.versions.node.replace(/\./g, '\\.')} `, 'm'));
  assert.match(r.stdout, /^native addon\s+loaded/m);
  assert.match(r.stdout, /^SIMD paths\s+.*scalar$/m);
  assert.match(r.stdout, /^bf16 GEMM\s+(yes, (AMX-BF16 tiles|AVX512-BF16)|off: bf16 matmuls run in fp32)/m);
  const j = JSON.parse(lmforge('info', '--json').stdout) as { native: { loaded: boolean; threads: number; avx2: boolean } };
  assert.equal(j.native.loaded, true);
  assert.ok(Number.isInteger(j.native.threads) && j.native.threads >= 1);
  assert.equal(typeof j.native.avx2, 'boolean');
});

test('lmforge inspect verifies checkpoints; a UserError prints one clean line and exits 1', () => {
  const run = mkdtempSync(join(tmpdir(), 'lmf-cli-'));
  saveCheckpoint(run, checkpointContents(3, 16));
  saveCheckpoint(run, checkpointContents(7, 16));
  const ok = lmforge('inspect', run);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /checkpoints at steps 3, 7\n {2}latest complete: .*ckpt-7 \(step 7\)/);
  truncateSync(join(run, 'ckpt-7', 'model.safetensors'), 10);
  const skipped = lmforge('inspect', run);
  assert.match(skipped.stdout, /skipped .*ckpt-7: .*model\.safetensors: 10 bytes, but state\.json records \d+ \(truncated file\)/);
  assert.match(skipped.stdout, /latest complete: .*ckpt-3 \(step 3\)/);
  const bad = lmforge('inspect', join(run, 'ckpt-7'));
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^error: .*ckpt-7\/model\.safetensors: 10 bytes, but state\.json records/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace for a UserError');
  const junk = join(run, 'junk.safetensors');
  writeFileSync(junk, 'nonsense');
  assert.match(lmforge('inspect', junk).stderr, /^error: .*junk\.safetensors: not a valid safetensors file/);
  rmSync(run, { recursive: true });
});

test('config-driven commands: --config file, --key=value flags, keys listed in --help', async () => {
  const spec = defineConfig({
    n_layer: { default: 4, type: 'integer', doc: 'number of blocks' },
    optim: { lr: { default: 1e-3, doc: 'peak learning rate' } },
  });
  const dir = mkdtempSync(join(tmpdir(), 'lmf-cli-'));
  const cfg = join(dir, 'c.yaml');
  writeFileSync(cfg, 'n_layer: 6\n');
  let got: unknown;
  const make = (): Command => {
    const program = new Command('lmforge').exitOverride();
    const cmd = addConfigOptions(program.command('train'), spec);
    cmd.action(() => {
      got = configFromCommand(cmd, spec);
    });
    return program;
  };
  await make().parseAsync(['train', '--config', cfg, '--optim.lr=3e-4'], { from: 'user' });
  assert.deepEqual(got, { n_layer: 6, optim: { lr: 3e-4 } });
  await assert.rejects(make().parseAsync(['train', '--n_layers=2'], { from: 'user' }), (e: unknown) => e instanceof UserError && /unknown key "n_layers"/.test(e.message));
  await assert.rejects(make().parseAsync(['train', '--n_layer', '2'], { from: 'user' }), (e: unknown) => e instanceof UserError && /argument "2": expected a config override of the form --key=value \(did you mean --n_layer=2\?\)/.test(e.message));
  let help = '';
  const p = make();
  p.configureOutput({ writeOut: (s) => (help += s) });
  p.commands[0]!.configureOutput({ writeOut: (s) => (help += s) });
  await assert.rejects(p.parseAsync(['train', '--help'], { from: 'user' }));
  assert.match(help, /--config <path>/);
  assert.match(help, /--optim\.lr=<number>\s+peak learning rate \(default: 0\.001\)/);
  rmSync(dir, { recursive: true });
});

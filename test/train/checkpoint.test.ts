import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, truncateSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  findLatestComplete, listCheckpointSteps, loadCheckpoint, readLatestPointer, saveCheckpoint, verifyCheckpoint,
  type LoadedCheckpoint,
} from '../../src/train/checkpoint.js';
import { UserError } from '../../src/util/errors.js';
import { checkpointContents } from './ckpt-fixture.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'lmf-ckpt-'));
}

/** Asserts a loaded checkpoint holds exactly what checkpointContents(step) wrote. */
function checkContents(c: LoadedCheckpoint, n: number): void {
  const want = checkpointContents(c.state.step, n);
  assert.deepEqual([...c.params.keys()], want.params.map(([k]) => k));
  for (const [name, p] of want.params) {
    const got = c.params.get(name)!;
    assert.deepEqual(got.shape, p.shape);
    assert.deepEqual(got.data, p.data);
    for (const slot of ['m', 'v']) assert.deepEqual(c.optimizer.tensors.get(`${name}.${slot}`)?.data, want.optimizer.tensors.get(`${name}.${slot}`)!.data);
  }
  assert.equal(c.optimizer.step, want.optimizer.step);
  assert.equal(c.optimizer.kind, 'adamw');
  assert.deepEqual(c.state.task, want.task);
  assert.equal(c.state.bestValLoss, want.bestValLoss);
  assert.deepEqual(c.state.config, want.config);
  assert.deepEqual(c.state.extra, want.extra);
}

function throwsUser(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    if (!(e instanceof UserError)) throw e;
    assert.match(e.message, re);
    return true;
  });
}

test('save → load round-trips every field; latest pointer, replacement and retention', () => {
  const run = tmp();
  for (const step of [0, 10, 20, 30]) saveCheckpoint(run, checkpointContents(step, 64), { keepLast: 2 });
  assert.deepEqual(listCheckpointSteps(run).sort((a, b) => a - b), [20, 30]);
  assert.equal(readLatestPointer(run), join(run, 'ckpt-30'));
  const latest = findLatestComplete(run)!;
  assert.equal(latest.step, 30);
  assert.deepEqual(latest.skipped, []);
  checkContents(loadCheckpoint(latest.dir), 64);
  // Saving the same step again replaces it in place.
  const again = checkpointContents(30, 64);
  again.bestValLoss = 0.125;
  saveCheckpoint(run, again);
  assert.equal(loadCheckpoint(join(run, 'ckpt-30')).state.bestValLoss, 0.125);
  assert.deepEqual(readdirSync(run).sort(), ['ckpt-20', 'ckpt-30', 'latest']);
  const bad = checkpointContents(40, 64);
  bad.optimizer.tensors.set('h.0.attn.c_attn.weight.m', { shape: [2], data: new Float32Array(2) });
  assert.throws(() => saveCheckpoint(run, bad), /optimizer tensor "h\.0\.attn\.c_attn\.weight\.m" belongs to no parameter/);
  assert.deepEqual(readdirSync(run).sort(), ['ckpt-20', 'ckpt-30', 'latest']);
  rmSync(run, { recursive: true });
});

test('truncated, corrupt and incomplete checkpoints are refused with a reason and skipped by findLatestComplete', () => {
  const run = tmp();
  for (const step of [1, 2, 3, 4, 5]) saveCheckpoint(run, checkpointContents(step, 256));
  const dir = (s: number): string => join(run, `ckpt-${s}`);
  truncateSync(join(dir(5), 'model.safetensors'), 100);
  const opt4 = join(dir(4), 'optimizer.safetensors');
  const bytes = readFileSync(opt4);
  bytes[bytes.length - 3] = bytes[bytes.length - 3]! ^ 0x40;
  writeFileSync(opt4, bytes);
  rmSync(join(dir(3), 'state.json'));
  appendFileSync(join(dir(2), 'state.json'), '}');

  throwsUser(() => loadCheckpoint(dir(5)), /ckpt-5\/model\.safetensors: 100 bytes, but state\.json records \d+ \(truncated file\)/);
  throwsUser(() => verifyCheckpoint(dir(4)), /ckpt-4\/optimizer\.safetensors: SHA-256 .* does not match .* \(corrupt file\)/);
  throwsUser(() => verifyCheckpoint(dir(3)), /ckpt-3: incomplete checkpoint: state\.json is missing/);
  throwsUser(() => verifyCheckpoint(dir(2)), /ckpt-2\/state\.json: corrupt checkpoint state/);
  const found = findLatestComplete(run)!;
  assert.equal(found.step, 1);
  assert.deepEqual(found.skipped.map((s) => s.dir), [dir(5), dir(4), dir(3), dir(2)]);
  checkContents(loadCheckpoint(found.dir), 256);

  const state = JSON.parse(readFileSync(join(dir(1), 'state.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir(1), 'state.json'), JSON.stringify({ ...state, version: 7 }));
  throwsUser(() => verifyCheckpoint(dir(1)), /checkpoint format version 7, this lmforge reads versions 1 and 2/);
  writeFileSync(join(dir(1), 'state.json'), JSON.stringify({ ...state, task: { samplerRng: [1, 2, 3] } }));
  throwsUser(() => verifyCheckpoint(dir(1)), /field "task\.samplerRng": expected four unsigned 32-bit integers/);
  writeFileSync(join(dir(1), 'state.json'), JSON.stringify({ ...state, optimizer: { kind: 'adamw' } }));
  throwsUser(() => verifyCheckpoint(dir(1)), /field "optimizer": expected \{kind: string, version: integer, step: integer\}/);
  writeFileSync(join(dir(1), 'state.json'), JSON.stringify({ ...state, files: { ...(state.files as object), '../../x': { bytes: 1, sha256: '0'.repeat(64) } } }));
  throwsUser(() => verifyCheckpoint(dir(1)), /field "files": "\.\.\/\.\.\/x" is not a plain file name/);
  writeFileSync(join(dir(1), 'state.json'), JSON.stringify({ ...state, files: { 'model.safetensors': { bytes: '1' }, 'optimizer.safetensors': {} } }));
  throwsUser(() => verifyCheckpoint(dir(1)), /field "files\.model\.safetensors": expected \{bytes: integer, sha256: 64 hex digits\}/);
  assert.equal(findLatestComplete(run), null);
  assert.equal(findLatestComplete(join(run, 'nothing-here')), null);
  rmSync(run, { recursive: true });
});

test('leftovers of killed writers are removed, or restored, by the next save; live writers are left alone', () => {
  const run = tmp();
  saveCheckpoint(run, checkpointContents(1, 16));
  saveCheckpoint(run, checkpointContents(2, 16));
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  // Killed between moving a complete ckpt-2 aside and renaming its same-step replacement into place:
  renameSync(join(run, 'ckpt-2'), join(run, '.ckpt-2.replaced-0badc0de'));
  // killed while retention deleted ckpt-1, while writing ckpt-3, while writing `latest`:
  renameSync(join(run, 'ckpt-1'), join(run, '.ckpt-1.deleting-12ab34cd'));
  rmSync(join(run, '.ckpt-1.deleting-12ab34cd', 'state.json'));
  mkdirSync(join(run, `.ckpt-3.tmp-${deadPid}-abcd0123`));
  writeFileSync(join(run, `.ckpt-3.tmp-${deadPid}-abcd0123`, 'model.safetensors'), 'partial');
  writeFileSync(join(run, `.latest.${deadPid}.ff00ff00.tmp`), 'ckpt-');
  // A temp dir of a live process (our parent) may still be in use.
  const live = `.ckpt-4.tmp-${process.ppid}-0123abcd`;
  mkdirSync(join(run, live));
  assert.equal(findLatestComplete(run), null);

  saveCheckpoint(run, checkpointContents(5, 16));
  assert.deepEqual(readdirSync(run).sort(), [live, 'ckpt-2', 'ckpt-5', 'latest']);
  checkContents(loadCheckpoint(join(run, 'ckpt-2')), 16);
  assert.equal(findLatestComplete(run)!.step, 5);
  rmSync(run, { recursive: true });
});

test('a writer killed with SIGKILL at random moments always leaves a loadable latest checkpoint', async (t) => {
  const run = tmp();
  mkdirSync(run, { recursive: true });
  const child = fileURLToPath(new URL('./ckpt-writer-child.js', import.meta.url));
  const n = 1 << 20;
  let lastStep = -1;
  let killedMidWrite = 0;
  const rounds = 8;
  for (let round = 0; round < rounds; round++) {
    const proc = spawn(process.execPath, [child, run], { stdio: ['ignore', 'pipe', 'inherit'] });
    let saves = 0;
    proc.stdout.on('data', (d: Buffer) => (saves += d.toString().split('\n').filter((l) => l.startsWith('saved')).length));
    // Let it save at least once, then kill it at a random moment of a later write.
    while (saves === 0 && proc.exitCode === null) await new Promise((r) => setTimeout(r, 5));
    assert.equal(proc.exitCode, null, 'the writer exited by itself');
    await new Promise((r) => setTimeout(r, Math.random() * 120));
    const exited = new Promise((r) => proc.on('exit', r));
    proc.kill('SIGKILL');
    await exited;
    if (readdirSync(run).some((f) => f.includes('.tmp-'))) killedMidWrite++;

    const latest = findLatestComplete(run);
    assert.ok(latest, `round ${round}: no complete checkpoint`);
    assert.ok(latest.step > lastStep, `round ${round}: step went from ${lastStep} to ${latest.step}`);
    lastStep = latest.step;
    checkContents(loadCheckpoint(latest.dir), n);
    assert.ok(listCheckpointSteps(run).length <= 4);
  }
  // Kills land mid-write nearly always (the child does nothing else); the next writer cleaned up each time.
  t.diagnostic(`${killedMidWrite}/${rounds} kills landed mid-write; reached step ${lastStep}`);
  assert.ok(killedMidWrite >= 1, `no kill landed mid-write in ${rounds} rounds`);
  saveCheckpoint(run, checkpointContents(lastStep + 1, 16));
  assert.ok(!readdirSync(run).some((f) => f.startsWith('.')), 'stale temp dirs were not removed');
  assert.ok(existsSync(join(run, 'latest')));
  rmSync(run, { recursive: true });
});

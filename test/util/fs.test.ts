// ensureDir and the errno → UserError mapping: every way an output directory can be unusable is one UserError that
// names the path and the cause, and nothing spins (Node 20's recursive mkdir loops forever under /proc).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDir, ensureParentDir, fsErrorReason, fsUserError, inputFileSize } from '../../src/util/fs.js';
import { UserError } from '../../src/util/errors.js';
import { AtomicWriter, writeFileAtomic } from '../../src/util/atomic.js';

const errno = (code: string): Error => Object.assign(new Error(`${code}: something`), { code });

test('ensureDir creates missing components one by one and leaves no probe behind', () => {
  const root = mkdtempSync(join(tmpdir(), 'lmf-fs-'));
  try {
    const deep = join(root, 'a', 'b', 'c');
    assert.equal(ensureDir(deep), deep);
    assert.ok(statSync(deep).isDirectory());
    assert.deepEqual(readdirSync(deep), []);
    ensureDir(deep); // existing: fine
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('ensureDir refuses files, files on the path, pseudo file systems and unwritable directories in one line', () => {
  const root = mkdtempSync(join(tmpdir(), 'lmf-fs-'));
  try {
    const file = join(root, 'f');
    writeFileSync(file, 'x');
    assert.throws(() => ensureDir(file), (e: Error) => e instanceof UserError && e.message.includes(file) && /is a file, not a directory/.test(e.message));
    assert.throws(() => ensureDir(join(file, 'sub', 'deeper')), (e: Error) => e instanceof UserError && e.message.endsWith(`${file} is a file, not a directory`));
    if (existsSync('/proc/self')) {
      const started = Date.now();
      assert.throws(() => ensureDir('/proc/lmforge-test/x'), (e: Error) => e instanceof UserError && e.message.startsWith('/proc/lmforge-test/x: '));
      assert.throws(() => ensureDir('/proc'), (e: Error) => e instanceof UserError && /not writable/.test(e.message));
      assert.ok(Date.now() - started < 2000, 'no spinning');
    }
    const ro = join(root, 'ro');
    ensureDir(ro);
    chmodSync(ro, 0o500);
    if (process.getuid?.() !== 0) {
      assert.throws(() => ensureDir(join(ro, 'x')), (e: Error) => e instanceof UserError && /permission denied/.test(e.message));
      assert.throws(() => writeFileAtomic(join(ro, 'y'), 'z'), (e: Error) => e instanceof UserError && e.message.includes(join(ro, 'y')));
    }
    chmodSync(ro, 0o700);
    assert.throws(() => ensureParentDir(ro), (e: Error) => e instanceof UserError && /is a directory/.test(e.message));
    assert.throws(() => writeFileAtomic(join(root, 'missing', 'x'), 'z'), (e: Error) => e instanceof UserError && e.message.startsWith(join(root, 'missing', 'x')));
    assert.throws(() => writeFileAtomic(ro, 'z'), (e: Error) => e instanceof UserError && e.message.startsWith(`${ro}: cannot write the file`));
    assert.deepEqual(readdirSync(ro), [], 'no temp file left behind');
    assert.throws(() => inputFileSize(join(root, 'nope')), (e: Error) => e instanceof UserError && /no such file/.test(e.message));
    assert.throws(() => inputFileSize(root), (e: Error) => e instanceof UserError && /it is a directory/.test(e.message));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('errno codes map to words a user can act on; other errors pass through unchanged', () => {
  assert.equal(fsErrorReason(errno('ENOSPC')), 'no space left on device');
  assert.equal(fsErrorReason(errno('EROFS')), 'read-only file system');
  assert.equal(fsErrorReason(errno('EACCES')), 'permission denied');
  assert.equal(fsErrorReason(errno('EDQUOT')), 'disk quota exceeded');
  const mapped = fsUserError(errno('ENOSPC'), 'out/train.bin', 'write the file');
  assert.ok(mapped instanceof UserError);
  assert.equal(mapped.message, 'out/train.bin: cannot write the file: no space left on device');
  const bug = new TypeError('x is undefined');
  assert.equal(fsUserError(bug, 'p', 'write'), bug);
});

test('a full disk (tiny tmpfs, when root may mount one) fails the write with one UserError and leaves nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-tiny-'));
  const { spawnSync } = await import('node:child_process');
  const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', dir]).status === 0;
  try {
    if (!mounted) {
      t.skip('needs root and tmpfs; the errno mapping is tested above');
      return;
    }
    const w = new AtomicWriter(join(dir, 'big.bin'));
    assert.throws(() => w.write(new Uint8Array(1 << 20)), (e: Error) => e instanceof UserError && /big\.bin: cannot write the file: no space left on device/.test(e.message));
    w.abort();
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    if (mounted) spawnSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

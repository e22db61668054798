import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AtomicWriter, writeFileAtomic, writeFileAtomicParts } from '../../src/util/atomic.js';
import { UserError, isUserError } from '../../src/util/errors.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'lmf-atomic-'));
}

test('writeFileAtomic writes, overwrites, and leaves no temp files', () => {
  const dir = tmp();
  const p = join(dir, 'a.bin');
  writeFileAtomic(p, Buffer.from([1, 2, 3]));
  assert.deepEqual([...readFileSync(p)], [1, 2, 3]);
  writeFileAtomic(p, 'hello');
  assert.equal(readFileSync(p, 'utf8'), 'hello');
  assert.deepEqual(readdirSync(dir), ['a.bin']);
  rmSync(dir, { recursive: true });
});

test('writeFileAtomicParts concatenates parts; a failing producer leaves the old file intact', () => {
  const dir = tmp();
  const p = join(dir, 'b.txt');
  writeFileAtomicParts(p, ['ab', new Uint8Array([0x63]), 'd']);
  assert.equal(readFileSync(p, 'utf8'), 'abcd');
  function* failing(): Generator<string> {
    yield 'partial';
    throw new Error('producer failed');
  }
  assert.throws(() => writeFileAtomicParts(p, failing()), /producer failed/);
  assert.equal(readFileSync(p, 'utf8'), 'abcd');
  assert.deepEqual(readdirSync(dir), ['b.txt']);
  rmSync(dir, { recursive: true });
});

test('AtomicWriter: nothing visible before commit, abort removes the temp file, misuse throws', () => {
  const dir = tmp();
  const p = join(dir, 'c.txt');
  writeFileSync(p, 'old');
  const w = new AtomicWriter(p);
  w.write('new contents');
  assert.equal(w.size, 12);
  assert.equal(readFileSync(p, 'utf8'), 'old');
  w.commit();
  assert.equal(readFileSync(p, 'utf8'), 'new contents');
  assert.throws(() => w.write('x'), /after commit/);
  const w2 = new AtomicWriter(p);
  w2.write('discarded');
  w2.abort();
  w2.abort();
  assert.equal(readFileSync(p, 'utf8'), 'new contents');
  assert.deepEqual(readdirSync(dir), ['c.txt']);
  rmSync(dir, { recursive: true });
});

test('UserError is recognisable and keeps its message', () => {
  const e = new UserError('config.yaml: line 3: n_layer: expected an integer, got "four"');
  assert.ok(isUserError(e));
  assert.ok(!isUserError(new Error('x')));
  assert.equal(e.name, 'UserError');
  assert.match(e.message, /n_layer/);
});

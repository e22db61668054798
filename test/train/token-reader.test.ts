import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/core/random.js';
import { BatchSampler, openTokenFile, parseTokenFile } from '../../src/train/token-reader.js';
import { UserError } from '../../src/util/errors.js';
import { dtypeForVocab, writeTokenFile } from '../../src/tokenizers/token-file.js';

function throwsUser(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    if (!(e instanceof UserError)) throw e;
    assert.match(e.message, re);
    return true;
  });
}

test('opens uint16 and uint32 token files through mmap', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-tok-'));
  const p16 = join(dir, 'a.tok');
  writeTokenFile(p16, [0, 1, 65, 65535], dtypeForVocab(65536));
  const f16 = openTokenFile(p16);
  assert.equal(f16.mode, 'mmap');
  assert.equal(f16.dtype, 'uint16');
  assert.equal(f16.count, 4);
  assert.deepEqual([...f16.ids], [0, 1, 65, 65535]);
  const p32 = join(dir, 'b.tok');
  writeTokenFile(p32, [100000, 3, 200000], dtypeForVocab(200001));
  const f32 = openTokenFile(p32);
  assert.equal(f32.dtype, 'uint32');
  assert.deepEqual([...f32.ids], [100000, 3, 200000]);
  // The in-memory path copes with an unaligned buffer.
  const raw = readFileSync(p32);
  const shifted = new Uint8Array(raw.length + 1).subarray(1);
  shifted.set(raw);
  assert.deepEqual([...parseTokenFile(shifted, p32).ids], [100000, 3, 200000]);
  rmSync(dir, { recursive: true });
});

test('bad headers are refused with a message saying what is wrong', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-tok-'));
  const p = join(dir, 'bad.tok');
  writeTokenFile(p, [1, 2, 3, 4], dtypeForVocab(50257));
  const good = readFileSync(p);
  const variant = (f: (b: Buffer) => Buffer): void => writeFileSync(p, f(Buffer.from(good)));
  variant((b) => b.subarray(0, 10));
  throwsUser(() => openTokenFile(p), /bad\.tok: not a valid lmforge token file: 10 bytes is shorter than the 24-byte header/);
  variant((b) => (b.write('NOTTOKEN', 0, 'latin1'), b));
  throwsUser(() => openTokenFile(p), /magic is "NOTTOKEN", expected "LMFTOKEN"/);
  variant((b) => (b.writeUInt32LE(9, 8), b));
  throwsUser(() => openTokenFile(p), /format version 9, this lmforge reads version 1/);
  variant((b) => (b.writeUInt32LE(3, 12), b));
  throwsUser(() => openTokenFile(p), /dtype code 3, expected 1 \(uint16\) or 2 \(uint32\)/);
  variant((b) => b.subarray(0, b.length - 1));
  throwsUser(() => openTokenFile(p), /header says 4 uint16 ids \(8 bytes\) but 7 bytes follow the header \(truncated\?\)/);
  variant((b) => Buffer.concat([b, Buffer.alloc(2)]));
  throwsUser(() => openTokenFile(p), /trailing bytes/);
  writeFileSync(p, '');
  throwsUser(() => openTokenFile(p), /0 bytes is shorter/);
  throwsUser(() => openTokenFile(join(dir, 'missing.tok')), /missing\.tok.*ENOENT/);
  rmSync(dir, { recursive: true });
});

test('batches are contiguous windows, y is x shifted by one, and the order replays from the saved RNG state', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-tok-'));
  const p = join(dir, 'seq.tok');
  const N = 1000;
  writeTokenFile(p, Array.from({ length: N }, (_, i) => i), dtypeForVocab(1024)); // id = position, so windows are checkable
  const file = openTokenFile(p);
  const B = 4;
  const T = 16;
  const s = new BatchSampler(file, B, T, 1337);
  const seen = new Set<number>();
  for (let step = 0; step < 200; step++) {
    const { x, y } = s.next();
    for (let b = 0; b < B; b++) {
      const i = x[b * T]!;
      seen.add(i);
      assert.ok(i >= 0 && i < N - T);
      for (let t = 0; t < T; t++) {
        assert.equal(x[b * T + t], i + t);
        assert.equal(y[b * T + t], i + t + 1);
      }
    }
  }
  assert.ok(seen.size > 500, 'offsets should cover the file');

  // The order is rng.int(N − T) per row, in row order, from the sampler's own Rng.
  const rng = new Rng(7);
  const expected = Array.from({ length: 3 * B }, () => rng.int(N - T));
  const s2 = new BatchSampler(file, B, T, 7);
  const got: number[] = [];
  for (let k = 0; k < 3; k++) {
    const { x } = s2.next();
    for (let b = 0; b < B; b++) got.push(x[b * T]!);
  }
  assert.deepEqual(got, expected);

  // Resume: a sampler from the saved state continues with the same batches.
  const saved = s.rngState();
  const resumed = new BatchSampler(file, B, T, saved);
  const buf = { x: new Int32Array(B * T), y: new Int32Array(B * T) };
  for (let k = 0; k < 5; k++) {
    const a = s.next();
    const r = resumed.next(buf);
    assert.deepEqual(r.x, a.x);
    assert.deepEqual(r.y, a.y);
  }
  throwsUser(() => new BatchSampler(file, B, N, 1), /1000 tokens is too few for block_size 1000/);
  throwsUser(() => new BatchSampler(file, 0, T, 1), /batch_size: expected an integer ≥ 1/);
  rmSync(dir, { recursive: true });
});

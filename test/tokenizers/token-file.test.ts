// Token shard files: header layout, uint16/uint32 round trips, random access, and refusal of bad files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TokenFileReader, TokenFileWriter, dtypeForVocab, readTokenFile, writeTokenFile } from '../../src/tokenizers/token-file.js';

const dir = mkdtempSync(join(tmpdir(), 'lmforge-tokfile-'));

test('header layout: magic, version 1, dtype code, uint64 count, then little-endian ids', () => {
  const path = join(dir, 'a.bin');
  writeTokenFile(path, [1, 258, 65535], 'uint16');
  const raw = readFileSync(path);
  assert.equal(raw.subarray(0, 8).toString('latin1'), 'LMFTOKEN');
  assert.equal(raw.readUInt32LE(8), 1);
  assert.equal(raw.readUInt32LE(12), 1);
  assert.equal(raw.readBigUInt64LE(16), 3n);
  assert.deepEqual([...raw.subarray(24)], [1, 0, 2, 1, 255, 255]);
  assert.deepEqual(Array.from(readTokenFile(path)), [1, 258, 65535]);
  assert.equal(dtypeForVocab(65536), 'uint16');
  assert.equal(dtypeForVocab(100277), 'uint32');
});

test('uint32 streaming writes and random-access reads', () => {
  const path = join(dir, 'b.bin');
  const w = new TokenFileWriter(path, 'uint32');
  const all: number[] = [];
  for (let k = 0; k < 5; k++) {
    const chunk = Array.from({ length: 1000 }, (_, i) => (i * 7919 + k * 104729) % 200000);
    w.write(chunk);
    all.push(...chunk);
  }
  w.close();
  const r = new TokenFileReader(path);
  assert.equal(r.count, 5000);
  assert.equal(r.dtype, 'uint32');
  assert.deepEqual(Array.from(r.read(1234, 50)), all.slice(1234, 1284));
  assert.throws(() => r.read(4990, 20), /range \[4990, 5010\) is outside 0\.\.5000/);
  r.close();
  assert.ok(!readdirSync(dir).some((f) => f.endsWith('.tmp')), 'no temporary file left');
});

test('bad files are refused with the reason; failed writes leave nothing behind', () => {
  const good = readFileSync(join(dir, 'a.bin'));
  const bad = Buffer.from(good);
  bad.write('NOTTOK', 0, 'latin1');
  writeFileSync(join(dir, 'bad-magic.bin'), bad);
  assert.throws(() => readTokenFile(join(dir, 'bad-magic.bin')), /bad-magic\.bin: not a token file: magic is "NOTTOKEN", expected "LMFTOKEN"/);
  const v2 = Buffer.from(good);
  v2.writeUInt32LE(2, 8);
  writeFileSync(join(dir, 'v2.bin'), v2);
  assert.throws(() => readTokenFile(join(dir, 'v2.bin')), /token file version 2, this lmforge reads version 1/);
  const dt = Buffer.from(good);
  dt.writeUInt32LE(7, 12);
  writeFileSync(join(dir, 'dt.bin'), dt);
  assert.throws(() => readTokenFile(join(dir, 'dt.bin')), /header field "dtype": expected 1 \(uint16\) or 2 \(uint32\), found 7/);
  writeFileSync(join(dir, 'short.bin'), good.subarray(0, good.length - 1));
  assert.throws(() => readTokenFile(join(dir, 'short.bin')), /header says 3 uint16 tokens \(30 bytes\) but the file has 29 bytes/);
  assert.throws(() => writeTokenFile(join(dir, 'big.bin'), [70000], 'uint16'), /token id 70000 \(position 0\) does not fit uint16/);
  assert.ok(!readdirSync(dir).some((f) => f.includes("big.bin")), 'nothing half-written');
});

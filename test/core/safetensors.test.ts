import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  checkTensorNames, decodeSafetensors, encodeSafetensors, expectFloat32, readSafetensors, writeSafetensors,
} from '../../src/core/safetensors.js';
import { UserError } from '../../src/util/errors.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/safetensors/', import.meta.url));

function throwsUser(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    if (!(e instanceof UserError)) throw e;
    assert.match(e.message, re);
    return true;
  });
}

test('reads every dtype from the file written by the Python reference writer', () => {
  const f = readSafetensors(join(fixtures, 'all_dtypes.safetensors'));
  assert.deepEqual(f.metadata, { format: 'pt', writer: 'test/reference/write_safetensors_fixture.py' });
  assert.deepEqual([...f.tensors.keys()], ['wte.weight', 'scalar', 'ids', 'big', 'mask', 'empty', 'bf', 'half']);
  const w = f.tensors.get('wte.weight')!;
  assert.deepEqual(w.shape, [3, 4]);
  assert.ok(w.data instanceof Float32Array);
  assert.deepEqual([...w.data], Array.from({ length: 12 }, (_, i) => i * 0.25 - 1));
  const s = f.tensors.get('scalar')!;
  assert.deepEqual(s.shape, []);
  assert.ok(s.data instanceof Float64Array);
  assert.equal(s.data[0], Math.PI);
  assert.deepEqual([...(f.tensors.get('ids')!.data as Int32Array)], [-2, -1, 0, 1, 2147483647]);
  assert.deepEqual([...(f.tensors.get('big')!.data as BigInt64Array)], [-(2n ** 40n), 2n ** 62n]);
  assert.deepEqual([...(f.tensors.get('mask')!.data as Uint8Array)], [0, 1, 254, 255]);
  assert.equal(f.tensors.get('empty')!.data.length, 0);
  assert.deepEqual(f.tensors.get('empty')!.shape, [0, 3]);
  const bf = f.tensors.get('bf')!;
  assert.equal(bf.dtype, 'BF16');
  assert.deepEqual([...bf.data], [1, -2.5, 0.15625, 196608]);
  const half = f.tensors.get('half')!;
  assert.equal(half.dtype, 'F16');
  assert.deepEqual([...half.data], [1, -0.5, 65504, 2 ** -24, Infinity]);
  assert.equal(expectFloat32(f, 'bf', [4], 'x')[1], -2.5);
});

test('lmforge writes the Python fixture byte for byte', () => {
  const want = readFileSync(join(fixtures, 'writable.safetensors'));
  const got = encodeSafetensors(
    [
      ['h.0.attn.c_attn.weight', { shape: [2, 3], data: new Float32Array([0.5, -1.5, 2.0, 1e-3, 3.25, -0.0]) }],
      ['scalar', { shape: [], data: new Float64Array([2.718281828459045]) }],
      ['ids', { shape: [3], data: new Int32Array([7, -8, 9]) }],
      ['mask', { shape: [3], data: new Uint8Array([1, 2, 3]) }],
    ],
    { note: 'lmforge byte-equality fixture' },
  );
  assert.ok(got.equals(want));
});

test('atomic write round-trips, aligns the data to 8 bytes, and streams subarray views correctly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmf-st-'));
  const p = join(dir, 'model.safetensors');
  const backing = new Float32Array([9, 1, 2, 3, 4, 9]);
  const tensors: [string, { shape: number[]; data: Float32Array | Int32Array }][] = [
    ['a', { shape: [2, 2], data: backing.subarray(1, 5) }],
    ['b', { shape: [1], data: new Int32Array([-5]) }],
  ];
  writeSafetensors(p, tensors, { k: 'v' });
  assert.deepEqual(readdirSync(dir), ['model.safetensors']);
  const bytes = readFileSync(p);
  assert.equal((8 + Number(bytes.readBigUInt64LE(0))) % 8, 0);
  assert.ok(bytes.equals(encodeSafetensors(tensors, { k: 'v' })));
  const f = readSafetensors(p);
  assert.deepEqual([...f.tensors.get('a')!.data], [1, 2, 3, 4]);
  assert.deepEqual([...f.tensors.get('b')!.data], [-5]);
  assert.deepEqual(f.metadata, { k: 'v' });
  assert.throws(() => writeSafetensors(p, [['x', { shape: [3], data: new Float32Array(2) }]]), /shape \[3\] does not match 2 elements/);
  assert.throws(() => encodeSafetensors([['x', { shape: [1], data: new Float32Array(1) }], ['x', { shape: [1], data: new Float32Array(1) }]]), /given twice/);
  rmSync(dir, { recursive: true });
});

/** A file from a hand-made header object and data length. */
function craft(header: unknown, dataBytes: number, rawHeader?: string): Buffer {
  const json = Buffer.from(rawHeader ?? JSON.stringify(header));
  const out = Buffer.alloc(8 + json.length + dataBytes);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  return out;
}

test('corrupt and truncated files are refused with a message naming the file and tensor', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] } };
  decodeSafetensors(craft(ok, 12), 'ok.safetensors');
  const cases: [Buffer, RegExp][] = [
    [Buffer.alloc(5), /f\.st: .*5 bytes is too short/],
    [craft(ok, 10), /tensor "b": data_offsets \[8, 12\] run past the end of the data \(10 bytes; truncated file\?\)/],
    [craft(ok, 16), /4 bytes after the last tensor/],
    [craft(null, 0, '{"a": {"dtype": "F32",'), /header is not valid JSON/],
    [craft(null, 0, '[1,2]'), /does not start with "\{"/],
    [craft({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8), /tensor "a": data_offsets \[0, 8\] hold 8 bytes but F32 shape \[3\] needs 12/],
    [craft({ a: { dtype: 'Q8', shape: [1], data_offsets: [0, 1] } }, 1), /tensor "a": unsupported dtype "Q8"/],
    [craft({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4), /tensor "a": shape is not a list/],
    [craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4] } }, 4), /tensor "a": data_offsets is not a pair/],
    [craft({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /tensor "b": data_offsets \[4, 8\] overlap tensor "a"/],
    [craft({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8), /tensor "a": gap of 4 bytes/],
    [craft({ __metadata__: { n: 1 } }, 0), /"__metadata__" value "n" is not a string/],
  ];
  for (const [buf, re] of cases) throwsUser(() => decodeSafetensors(buf, 'f.st'), re);
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(2n ** 60n, 0);
  throwsUser(() => decodeSafetensors(huge, 'f.st'), /larger than the 100 MB limit/);
  const long = Buffer.alloc(16);
  long.writeBigUInt64LE(100n, 0);
  throwsUser(() => decodeSafetensors(long, 'f.st'), /header length 100 runs past the end of the 16-byte file \(truncated\?\)/);

  // A real file cut short, at several points.
  const dir = mkdtempSync(join(tmpdir(), 'lmf-st-'));
  const p = join(dir, 'cut.safetensors');
  const full = readFileSync(join(fixtures, 'all_dtypes.safetensors'));
  for (const len of [0, 7, 20, full.length - 1]) {
    writeFileSync(p, full);
    truncateSync(p, len);
    throwsUser(() => readSafetensors(p), /cut\.safetensors: not a valid safetensors file: .*(too short|truncated)/);
  }
  throwsUser(() => readSafetensors(join(dir, 'nope.safetensors')), /^cannot open '.*nope\.safetensors': No such file or directory \(ENOENT\)$/);
  rmSync(dir, { recursive: true });
});

test('strict name and shape checks for model loading', () => {
  const f = decodeSafetensors(encodeSafetensors([['w', { shape: [2, 3], data: new Float32Array(6) }], ['i', { shape: [1], data: new Int32Array(1) }]]), 'm.st');
  assert.equal(expectFloat32(f, 'w', [2, 3], 'm.st').length, 6);
  throwsUser(() => expectFloat32(f, 'w', [3, 2], 'm.st'), /m\.st: tensor "w" has shape \[2, 3\], expected \[3, 2\]/);
  throwsUser(() => expectFloat32(f, 'v', [1], 'm.st'), /tensor "v" is missing/);
  throwsUser(() => expectFloat32(f, 'i', [1], 'm.st'), /dtype I32, expected a float dtype/);
  checkTensorNames(f, ['w', 'i'], 'm.st');
  throwsUser(() => checkTensorNames(f, ['w', 'x'], 'm.st'), /missing tensors: x; unexpected tensors: i/);
});

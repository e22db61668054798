// Image data: IDX files (raw and gzip, bad headers), PNG decoding (every filter type, grey / RGB / palette / grey+alpha,
// against pixels we encoded), image folders, normalisation and augmentation, and the resumable epoch sampler.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import { channelStats, decodePng, EpochSampler, fillBatch, readIdx, readIdxImageSet, readImageFolder, type ImageSet } from '../../src/data/images.js';
import { Rng } from '../../src/core/random.js';
import { UserError } from '../../src/util/errors.js';

function idx(dims: number[], data: number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data)]);
}

function withDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'images-'));
  try {
    f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('IDX: raw and gzip files read the same; bad headers and sizes are one-line errors naming the file', () => withDir((dir) => {
  const images = Array.from({ length: 2 * 3 * 3 }, (_, i) => i * 7);
  writeFileSync(join(dir, 'im'), idx([2, 3, 3], images));
  writeFileSync(join(dir, 'im.gz'), gzipSync(idx([2, 3, 3], images)));
  writeFileSync(join(dir, 'lb'), idx([2], [1, 0]));
  for (const f of ['im', 'im.gz']) {
    const r = readIdx(join(dir, f));
    assert.deepEqual(r.dims, [2, 3, 3]);
    assert.deepEqual(Array.from(r.data), images);
  }
  const set = readIdxImageSet(join(dir, 'im.gz'), join(dir, 'lb'), ['a', 'b']);
  assert.equal(set.n, 2);
  assert.deepEqual(Array.from(set.labels), [1, 0]);
  writeFileSync(join(dir, 'short'), idx([2, 3, 3], images.slice(1)));
  assert.throws(() => readIdx(join(dir, 'short')), (e: Error) => e instanceof UserError && /short: IDX header says 2×3×3 = 18 bytes of data but the file holds 17/.test(e.message));
  writeFileSync(join(dir, 'bad'), Buffer.from([1, 2, 3, 4, 5]));
  assert.throws(() => readIdx(join(dir, 'bad')), /bad: not an IDX file/);
  writeFileSync(join(dir, 'lb3'), idx([2], [1, 3]));
  assert.throws(() => readIdxImageSet(join(dir, 'im'), join(dir, 'lb3'), ['a', 'b']), /label 3 at record 1 is not below the 2 classes/);
}));

/** A PNG of the given colour type from raw (H, W·bpp) rows, each row filtered with filter (y % 5). */
function png(width: number, height: number, colorType: number, bpp: number, px: Uint8Array, palette?: number[]): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer): number => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 255]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, body: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const tb = Buffer.concat([Buffer.from(type, 'ascii'), body]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(tb));
    return Buffer.concat([len, tb, c]);
  };
  const stride = width * bpp;
  const raw = Buffer.alloc(height * (stride + 1));
  const at = (y: number, i: number): number => (y < 0 || i < 0 ? 0 : px[y * stride + i]!);
  for (let y = 0; y < height; y++) {
    const f = y % 5;
    raw[y * (stride + 1)] = f;
    for (let i = 0; i < stride; i++) {
      const x = at(y, i), a = at(y, i - bpp), b = at(y - 1, i), c = at(y - 1, i - bpp);
      const p = a + b - c;
      const pr = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, pr][f]!;
      raw[y * (stride + 1) + 1 + i] = (x - pred) & 255;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = colorType;
  const parts = [Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr)];
  if (palette) parts.push(chunk('PLTE', Buffer.from(palette)));
  parts.push(chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)));
  return Buffer.concat(parts);
}

test('PNG: every filter type, grey, RGB, grey+alpha and palette images decode to their pixels; bad files are refused', () => {
  const rng = new Rng(5);
  const W = 7, H = 6;
  const grey = Uint8Array.from({ length: W * H }, () => rng.int(256));
  assert.deepEqual(Array.from(decodePng(png(W, H, 0, 1, grey), 'g.png').pixels), Array.from(grey));
  const rgb = Uint8Array.from({ length: W * H * 3 }, () => rng.int(256));
  const d = decodePng(png(W, H, 2, 3, rgb), 'c.png');
  assert.equal(d.channels, 3);
  assert.deepEqual(Array.from(d.pixels), Array.from(rgb));
  const ga = Uint8Array.from({ length: W * H * 2 }, () => rng.int(256));
  const dga = decodePng(png(W, H, 4, 2, ga), 'ga.png');
  assert.equal(dga.channels, 4);
  assert.deepEqual([dga.pixels[0], dga.pixels[1], dga.pixels[2], dga.pixels[3]], [ga[0], ga[0], ga[0], ga[1]]);
  const pal = [0, 0, 0, 255, 0, 0, 0, 255, 0];
  const idxPx = Uint8Array.from({ length: W * H }, () => rng.int(3));
  const dp = decodePng(png(W, H, 3, 1, idxPx, pal), 'p.png');
  assert.deepEqual(Array.from(dp.pixels.subarray(0, 3)), pal.slice(3 * idxPx[0]!, 3 * idxPx[0]! + 3));
  assert.throws(() => decodePng(Buffer.from('not a png at all'), 'x.png'), /x.png: not a PNG file/);
});

test('image folder: classes from sorted directories, images converted to the channels asked for; mixed sizes refused', () => withDir((dir) => {
  for (const [cls, v] of [['cat', 10], ['ant', 200]] as const) {
    mkdirSync(join(dir, cls));
    writeFileSync(join(dir, cls, '1.png'), png(4, 4, 0, 1, new Uint8Array(16).fill(v)));
  }
  const set = readImageFolder(dir);
  assert.deepEqual(set.classNames, ['ant', 'cat']);
  assert.deepEqual(Array.from(set.labels), [0, 1]);
  assert.equal(set.images[0], 200);
  writeFileSync(join(dir, 'cat', '2.png'), png(5, 4, 0, 1, new Uint8Array(20)));
  assert.throws(() => readImageFolder(dir), /2.png: image is 5×4, expected 4×4/);
}));

function tiny(): ImageSet {
  // Two 4×4 images: the first has one bright pixel at (row 1, column 2).
  const images = new Uint8Array(32);
  images[1 * 4 + 2] = 255;
  return { images, labels: Int32Array.from([0, 1]), n: 2, height: 4, width: 4, channels: 1, classNames: ['a', 'b'] };
}

test('batches: normalisation (x/255 − mean)/std, padded crops and flips move pixels as drawn, and the same seed gives the same batch', () => {
  const s = tiny();
  const norm = channelStats(s);
  assert.ok(Math.abs(norm.mean[0]! - 1 / 32) < 1e-9);
  const plain = new Float32Array(16);
  fillBatch(s, [0], { mean: [0], std: [1] }, { cropPadding: 0, flip: false }, null, plain);
  assert.equal(plain[6], 1);
  const flipped = new Float32Array(16);
  fillBatch(s, [0], { mean: [0], std: [1] }, { cropPadding: 0, flip: true }, { uniform: () => 0.1 }, flipped);
  assert.equal(flipped[1 * 4 + 1], 1);
  // Crop offsets: uniform 0 → dy = dx = −P, so the content moves down and right by P (padding is zero).
  const shifted = new Float32Array(16);
  fillBatch(s, [0], { mean: [0], std: [1] }, { cropPadding: 1, flip: false }, { uniform: () => 0 }, shifted);
  assert.equal(shifted[2 * 4 + 3], 1);
  const a = new Float32Array(32), b = new Float32Array(32);
  fillBatch(s, [0, 1], norm, { cropPadding: 1, flip: true }, new Rng(9), a);
  fillBatch(s, [0, 1], norm, { cropPadding: 1, flip: true }, new Rng(9), b);
  assert.deepEqual(a, b);
});

test('epoch sampler: every index once per epoch, and a sampler restored from its state continues identically', () => {
  const rng = new Rng(3);
  const s = new EpochSampler(10, rng);
  const first = Array.from(s.next(10)).sort((x, y) => x - y);
  assert.deepEqual(first, Array.from({ length: 10 }, (_, i) => i));
  s.next(3);
  const state = s.state();
  const rngState = rng.state();
  const rest = Array.from(s.next(15));
  const rng2 = new Rng(rngState);
  const s2 = new EpochSampler(10, rng2, state);
  assert.deepEqual(Array.from(s2.next(15)), rest);
  assert.equal(s2.epoch, 2);
});

// Image datasets as plain typed arrays: the IDX format of MNIST / Fashion-MNIST (gzip or raw), a PNG decoder on
// node:zlib (8-bit grey, grey+alpha, RGB, RGBA, palette; non-interlaced) and image folders laid out
// `root/<class>/<file>.png`; normalisation, augmentation (random crop with zero padding, horizontal flips) and seeded
// epoch-order batches whose position is saved in checkpoints. No tensors here (the data layer does not import core).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';
import { UserError, describeError } from '../util/errors.js';

/** N images of H×W with C channels, stored (N, H, W, C) as bytes 0–255, with a class label each. */
export interface ImageSet {
  images: Uint8Array;
  labels: Int32Array;
  n: number;
  height: number;
  width: number;
  channels: number;
  classNames: string[];
}

/** Fashion-MNIST's classes (label → name, from zalandoresearch/fashion-mnist). */
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

function readMaybeGzip(path: string): Buffer {
  if (!existsSync(path)) throw new UserError(`${path}: file not found`);
  const raw = readFileSync(path);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      throw new UserError(`${path}: corrupt gzip data (${describeError(e)})`);
    }
  }
  return raw;
}

/** An IDX file (big-endian: 0, 0, type 0x08 = ubyte, ndim, then ndim u32 dims, then the bytes): its dims and data. */
export function readIdx(path: string): { dims: number[]; data: Uint8Array } {
  const buf = readMaybeGzip(path);
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0) throw new UserError(`${path}: not an IDX file (expected magic 0x0000 then type and rank, e.g. 2051 for images)`);
  if (buf[2] !== 0x08) throw new UserError(`${path}: IDX element type 0x${buf[2]!.toString(16)} is not supported (expected 0x08, unsigned bytes)`);
  const ndim = buf[3]!;
  if (ndim < 1 || buf.length < 4 + 4 * ndim) throw new UserError(`${path}: truncated IDX header (rank ${ndim})`);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const count = dims.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * ndim;
  if (buf.length !== start + count) throw new UserError(`${path}: IDX header says ${dims.join('×')} = ${count} bytes of data but the file holds ${buf.length - start}`);
  return { dims, data: new Uint8Array(buf.buffer, buf.byteOffset + start, count) };
}

/** An IDX image file (N, H, W) and its label file (N) as a one-channel ImageSet. */
export function readIdxImageSet(imagesPath: string, labelsPath: string, classNames: string[]): ImageSet {
  const im = readIdx(imagesPath);
  const lb = readIdx(labelsPath);
  if (im.dims.length !== 3) throw new UserError(`${imagesPath}: expected an IDX image file of rank 3 (N, H, W), got rank ${im.dims.length}`);
  if (lb.dims.length !== 1) throw new UserError(`${labelsPath}: expected an IDX label file of rank 1 (N), got rank ${lb.dims.length}`);
  const [n, height, width] = im.dims as [number, number, number];
  if (lb.dims[0] !== n) throw new UserError(`${labelsPath}: ${lb.dims[0]} labels for ${n} images in ${imagesPath}`);
  const labels = Int32Array.from(lb.data);
  for (let i = 0; i < n; i++) {
    if (labels[i]! >= classNames.length) throw new UserError(`${labelsPath}: label ${labels[i]} at record ${i} is not below the ${classNames.length} classes`);
  }
  return { images: im.data, labels, n, height, width, channels: 1, classNames };
}

/** The standard file names of an MNIST-style directory: train-* / t10k-* IDX files, gzipped or raw. */
export function readIdxSplit(dir: string, split: 'train' | 'test', classNames: string[] = FASHION_MNIST_CLASSES): ImageSet {
  const prefix = split === 'train' ? 'train' : 't10k';
  const pick = (kind: string): string => {
    for (const name of [`${prefix}-${kind}.gz`, `${prefix}-${kind}`]) if (existsSync(join(dir, name))) return join(dir, name);
    throw new UserError(`${dir}: no ${prefix}-${kind}[.gz] (expected an MNIST-style IDX directory)`);
  };
  return readIdxImageSet(pick('images-idx3-ubyte'), pick('labels-idx1-ubyte'), classNames);
}

/** A decoded PNG: (H, W, C) bytes, C = 1 (grey), 3 (RGB) or 4 (RGBA; grey+alpha is widened to RGBA). */
export interface DecodedImage {
  width: number;
  height: number;
  channels: number;
  pixels: Uint8Array;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** The Paeth predictor of the PNG filters (RFC 2083 §6.6). */
function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Decodes an 8-bit, non-interlaced PNG (grey, grey+alpha, RGB, RGBA or palette). `source` names it in errors. */
export function decodePng(buf: Uint8Array, source: string): DecodedImage {
  if (buf.length < 8 || PNG_SIGNATURE.some((b, i) => buf[i] !== b)) throw new UserError(`${source}: not a PNG file (bad signature)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 8;
  let width = 0, height = 0, bitDepth = 0, colorType = -1, interlace = 0;
  let palette: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  while (pos + 8 <= buf.length) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(buf[pos + 4]!, buf[pos + 5]!, buf[pos + 6]!, buf[pos + 7]!);
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (body.length !== len) throw new UserError(`${source}: truncated PNG chunk ${type}`);
    if (type === 'IHDR') {
      width = view.getUint32(pos + 8);
      height = view.getUint32(pos + 12);
      bitDepth = body[8]!;
      colorType = body[9]!;
      interlace = body[12]!;
    } else if (type === 'PLTE') {
      palette = body;
    } else if (type === 'IDAT') {
      idat.push(body);
    } else if (type === 'IEND') {
      break;
    }
    pos += 12 + len;
  }
  if (width === 0 || height === 0) throw new UserError(`${source}: PNG has no IHDR chunk or an empty image`);
  if (bitDepth !== 8) throw new UserError(`${source}: PNG bit depth ${bitDepth} is not supported (expected 8)`);
  if (interlace !== 0) throw new UserError(`${source}: interlaced PNGs are not supported`);
  const bpp = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  if (bpp === undefined) throw new UserError(`${source}: PNG colour type ${colorType} is not a valid one (0, 2, 3, 4 or 6)`);
  if (colorType === 3 && !palette) throw new UserError(`${source}: palette PNG without a PLTE chunk`);
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch (e) {
    throw new UserError(`${source}: corrupt PNG image data (${describeError(e)})`);
  }
  const stride = width * bpp;
  if (raw.length < height * (stride + 1)) throw new UserError(`${source}: PNG image data holds ${raw.length} bytes, expected ${height * (stride + 1)}`);
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = y * stride;
    const up = out - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? px[out + i - bpp]! : 0;
      const b = y > 0 ? px[up + i]! : 0;
      const c = y > 0 && i >= bpp ? px[up + i - bpp]! : 0;
      const x = line[i]!;
      let v: number;
      switch (filter) {
        case 0: v = x; break;
        case 1: v = x + a; break;
        case 2: v = x + b; break;
        case 3: v = x + ((a + b) >> 1); break;
        case 4: v = x + paeth(a, b, c); break;
        default: throw new UserError(`${source}: PNG row ${y} has filter type ${filter} (expected 0–4)`);
      }
      px[out + i] = v & 255;
    }
  }
  if (colorType === 0 || colorType === 2 || colorType === 6) return { width, height, channels: bpp, pixels: px };
  if (colorType === 4) {
    const rgba = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) rgba.set([px[2 * i]!, px[2 * i]!, px[2 * i]!, px[2 * i + 1]!], 4 * i);
    return { width, height, channels: 4, pixels: rgba };
  }
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const k = px[i]!;
    if (3 * k + 2 >= palette!.length) throw new UserError(`${source}: palette index ${k} outside the ${palette!.length / 3}-entry PLTE`);
    rgb.set(palette!.subarray(3 * k, 3 * k + 3), 3 * i);
  }
  return { width, height, channels: 3, pixels: rgb };
}

/** Converts (H, W, C) bytes to `channels` (1 = luminance, 3 = RGB; alpha dropped). */
function toChannels(img: DecodedImage, channels: number): Uint8Array {
  if (img.channels === channels) return img.pixels;
  const n = img.width * img.height;
  const out = new Uint8Array(n * channels);
  for (let i = 0; i < n; i++) {
    const src = img.channels === 1 ? [img.pixels[i]!, img.pixels[i]!, img.pixels[i]!] : [img.pixels[i * img.channels]!, img.pixels[i * img.channels + 1]!, img.pixels[i * img.channels + 2]!];
    if (channels === 1) out[i] = Math.round(0.299 * src[0]! + 0.587 * src[1]! + 0.114 * src[2]!);
    else out.set(src, 3 * i);
  }
  return out;
}

/**
 * An image folder `root/<class>/<name>.png` (torchvision's ImageFolder layout): classes in sorted directory order,
 * files in sorted order. Every image must have the first one's size; `channels` 1 or 3 converts.
 */
export function readImageFolder(root: string, channels: 1 | 3 = 1): ImageSet {
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new UserError(`${root}: not a directory (expected root/<class>/<image>.png)`);
  const classNames = readdirSync(root).filter((d) => statSync(join(root, d)).isDirectory()).sort();
  if (classNames.length === 0) throw new UserError(`${root}: no class sub-directories (expected root/<class>/<image>.png)`);
  const chunks: Uint8Array[] = [];
  const labels: number[] = [];
  let height = 0, width = 0;
  classNames.forEach((cls, label) => {
    for (const f of readdirSync(join(root, cls)).filter((f) => f.toLowerCase().endsWith('.png')).sort()) {
      const path = join(root, cls, f);
      const img = decodePng(readFileSync(path), path);
      if (chunks.length === 0) [height, width] = [img.height, img.width];
      else if (img.height !== height || img.width !== width) throw new UserError(`${path}: image is ${img.width}×${img.height}, expected ${width}×${height} like the folder's first image`);
      chunks.push(toChannels(img, channels));
      labels.push(label);
    }
  });
  if (chunks.length === 0) throw new UserError(`${root}: no .png files under its class directories`);
  const images = new Uint8Array(chunks.length * height * width * channels);
  chunks.forEach((c, i) => images.set(c, i * c.length));
  return { images, labels: Int32Array.from(labels), n: chunks.length, height, width, channels, classNames };
}

/** The first `count` records of a set (or those from `start`): a view, no copy. */
export function subset(s: ImageSet, start: number, end: number): ImageSet {
  const per = s.height * s.width * s.channels;
  return { ...s, images: s.images.subarray(start * per, end * per), labels: s.labels.subarray(start, end), n: end - start };
}

export interface Normalization {
  /** Per-channel mean and standard deviation of pixel/255. */
  mean: number[];
  std: number[];
}

/** Per-channel mean and std of pixel/255 over a set (what torchvision's Normalize is given). */
export function channelStats(s: ImageSet): Normalization {
  const C = s.channels;
  const sum = new Float64Array(C), sq = new Float64Array(C);
  for (let i = 0; i < s.images.length; i++) {
    const v = s.images[i]! / 255;
    sum[i % C] = sum[i % C]! + v;
    sq[i % C] = sq[i % C]! + v * v;
  }
  const n = s.images.length / C;
  const mean = [...sum].map((v) => v / n);
  return { mean, std: [...sq].map((v, c) => Math.sqrt(Math.max(v / n - mean[c]! ** 2, 1e-12))) };
}

export interface Augmentation {
  /** Random crop of the image size after zero-padding each side by this many pixels (0 = none). */
  cropPadding: number;
  /** Mirror left-right with probability 1/2. */
  flip: boolean;
}

export const NO_AUGMENTATION: Augmentation = { cropPadding: 0, flip: false };

/** A source of uniform numbers in [0, 1) (the sampler's seeded generator). */
export interface Uniform {
  uniform(): number;
}

/**
 * Writes images `indices` of the set into `out` as (B, C, H, W) floats, (pixel/255 − mean)/std, with the
 * augmentation drawn from `rng` (padding is black, i.e. pixel 0 before normalisation).
 */
export function fillBatch(s: ImageSet, indices: ArrayLike<number>, norm: Normalization, aug: Augmentation, rng: Uniform | null, out: Float32Array): void {
  const { height: H, width: W, channels: C } = s;
  const P = aug.cropPadding;
  for (let b = 0; b < indices.length; b++) {
    const src = indices[b]! * H * W * C;
    let dy = 0, dx = 0, flip = false;
    if (rng && P > 0) {
      dy = Math.floor(rng.uniform() * (2 * P + 1)) - P;
      dx = Math.floor(rng.uniform() * (2 * P + 1)) - P;
    }
    if (rng && aug.flip) flip = rng.uniform() < 0.5;
    for (let c = 0; c < C; c++) {
      const scale = 1 / (255 * norm.std[c]!);
      const shift = -norm.mean[c]! / norm.std[c]!;
      const dst = (b * C + c) * H * W;
      for (let y = 0; y < H; y++) {
        const sy = y + dy;
        for (let x = 0; x < W; x++) {
          const sx0 = x + dx;
          const sx = flip ? W - 1 - sx0 : sx0;
          const inside = sy >= 0 && sy < H && sx0 >= 0 && sx0 < W;
          out[dst + y * W + x] = (inside ? s.images[src + (sy * W + sx) * C + c]! : 0) * scale + shift;
        }
      }
    }
  }
}

/** Seeded epoch order: a Fisher–Yates permutation per epoch, consumed batch by batch; its position is resumable. */
export class EpochSampler {
  private order: Int32Array;
  private pos: number;

  constructor(private readonly n: number, private readonly rng: Uniform, state?: { epoch: number; pos: number; order: number[] }) {
    this.order = state ? Int32Array.from(state.order) : this.shuffle();
    this.pos = state?.pos ?? 0;
    this.epoch = state?.epoch ?? 0;
  }

  epoch: number;

  private shuffle(): Int32Array {
    const o = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) o[i] = i;
    for (let i = this.n - 1; i > 0; i--) {
      const j = Math.floor(this.rng.uniform() * (i + 1));
      const t = o[i]!;
      o[i] = o[j]!;
      o[j] = t;
    }
    return o;
  }

  /** The next `B` indices, starting a new shuffled epoch when the current one runs out. */
  next(B: number): Int32Array {
    const out = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      if (this.pos >= this.n) {
        this.order = this.shuffle();
        this.pos = 0;
        this.epoch++;
      }
      out[b] = this.order[this.pos++]!;
    }
    return out;
  }

  state(): { epoch: number; pos: number; order: number[] } {
    return { epoch: this.epoch, pos: this.pos, order: [...this.order] };
  }
}

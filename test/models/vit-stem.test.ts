// The ViT's convolutional stem (3×3 stage + GELU, then the p×p patch projection) against a plain-loop convolution
// written here from the definition: outputs on both backends, and every parameter's gradient against central
// finite differences of that loop in float64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as lm from '../../src/core/index.js';
import { loadNativeBackend } from '../../src/core/native/index.js';
import { PatchEmbeddings, stemColumns, VIT_DEFAULTS, type ViTConfig } from '../../src/models/vit.js';
import { assertClose } from '../core/harness.js';

const config: ViTConfig = { ...VIT_DEFAULTS, image_size: 4, num_channels: 2, patch_size: 2, n_embd: 4, stem: 'conv', stem_channels: 3 };
const B = 2;

const erfGelu = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2));
/** erf by its Maclaurin series (|v| stays small here), exact to double precision for |v| < 3. */
function erf(v: number): number {
  let sum = 0, term = v;
  for (let n = 0; n < 80; n++) {
    sum += term / (2 * n + 1);
    term *= (-v * v) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

interface Params { stemW: number[]; stemB: number[]; projW: number[]; projB: number[] }

/**
 * The stem by its definition: s[b, o, y, x] = GELU(bias[o] + Σ_{c,dy,dx} w[(c·9 + dy·3 + dx), o]·img[b, c, y+dy-1, x+dx-1])
 * (zero outside), then out[b, n, d] = projB[d] + Σ_{o,i,j} projW[(o·p² + i·p + j), d]·s[b, o, py·p + i, px·p + j].
 */
function referenceStem(img: number[], P: Params): number[] {
  const { num_channels: Cin, image_size: H, patch_size: p, stem_channels: S, n_embd: D } = config;
  const W = H, g = H / p;
  const s = new Array<number>(B * S * H * W).fill(0);
  for (let b = 0; b < B; b++) for (let o = 0; o < S; o++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
    let acc = P.stemB[o]!;
    for (let c = 0; c < Cin; c++) for (let dy = 0; dy < 3; dy++) for (let dx = 0; dx < 3; dx++) {
      const yy = y + dy - 1, xx = x + dx - 1;
      if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
      acc += P.stemW[(c * 9 + dy * 3 + dx) * S + o]! * img[((b * Cin + c) * H + yy) * W + xx]!;
    }
    s[((b * S + o) * H + y) * W + x] = erfGelu(acc);
  }
  const out: number[] = [];
  for (let b = 0; b < B; b++) for (let py = 0; py < g; py++) for (let px = 0; px < g; px++) for (let d = 0; d < D; d++) {
    let acc = P.projB[d]!;
    for (let o = 0; o < S; o++) for (let i = 0; i < p; i++) for (let j = 0; j < p; j++) {
      acc += P.projW[(o * p * p + i * p + j) * D + d]! * s[((b * S + o) * H + py * p + i) * W + px * p + j]!;
    }
    out.push(acc);
  }
  return out;
}

function setup(): { emb: PatchEmbeddings; img: number[]; P: Params; weights: number[] } {
  const emb = new PatchEmbeddings(config, new lm.Rng(3));
  const rng = new lm.Rng(11);
  // Non-zero biases so that their gradients and the bias path are exercised.
  lm.noGrad(() => {
    emb.stem!.bias!.data.set(Array.from({ length: config.stem_channels }, () => rng.uniform() - 0.5));
    emb.projection.bias!.data.set(Array.from({ length: config.n_embd }, () => rng.uniform() - 0.5));
  });
  const img = Array.from({ length: B * config.num_channels * config.image_size ** 2 }, () => 2 * rng.uniform() - 1);
  const arr = (t: lm.Tensor): number[] => t.toArray();
  const P = { stemW: arr(emb.stem!.weight), stemB: arr(emb.stem!.bias!), projW: arr(emb.projection.weight), projB: arr(emb.projection.bias!) };
  const n = B * (config.image_size / config.patch_size) ** 2 * config.n_embd;
  const weights = Array.from({ length: n }, () => 2 * rng.uniform() - 1);
  return { emb, img, P, weights };
}

test('stemColumns: rows in patch-major order, each the zero-padded 3×3 neighbourhood of its pixel and a 1', () => {
  const img = Array.from({ length: 16 }, (_, i) => i + 1); // one 4×4 channel
  const cols = stemColumns(lm.tensor(img, [1, 1, 4, 4]), 2);
  assert.equal(cols.length, 16 * 10);
  // Row 2 is patch (0, 0), pixel (1, 0): neighbourhood of img[1][0] = 5, then the bias's 1.
  assert.deepEqual([...cols.subarray(2 * 10, 3 * 10)], [0, 1, 2, 0, 5, 6, 0, 9, 10, 1]);
  // Row 4 is patch (0, 1), pixel (0, 0) → image pixel (0, 2) = 3.
  assert.deepEqual([...cols.subarray(4 * 10, 5 * 10)], [0, 0, 0, 2, 3, 4, 6, 7, 8, 1]);
});

test('stemColumns: every row of a 2-channel 14×14 batch (border and interior pixels) is its neighbourhood by definition', () => {
  const [Bn, Cin, H, p] = [2, 2, 14, 7];
  const img = Array.from({ length: Bn * Cin * H * H }, (_, i) => ((i * 37) % 101) - 50);
  const cols = stemColumns(lm.tensor(img, [Bn, Cin, H, H]), p);
  const K = Cin * 9 + 1;
  assert.equal(cols.length, Bn * H * H * K);
  let row = 0;
  for (let b = 0; b < Bn; b++) for (let py = 0; py < H / p; py++) for (let px = 0; px < H / p; px++) {
    for (let i = 0; i < p; i++) for (let j = 0; j < p; j++, row++) {
      const y = py * p + i, x = px * p + j;
      const want: number[] = [];
      for (let c = 0; c < Cin; c++) for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
        const yy = y + dy, xx = x + dx;
        want.push(yy < 0 || yy >= H || xx < 0 || xx >= H ? 0 : img[((b * Cin + c) * H + yy) * H + xx]!);
      }
      want.push(1);
      assert.deepEqual([...cols.subarray(row * K, (row + 1) * K)], want, `row ${row} (b ${b}, y ${y}, x ${x})`);
    }
  }
});

const backends: lm.BackendName[] = loadNativeBackend().loaded ? ['reference', 'native'] : ['reference'];
for (const backend of backends) {
  test(`conv stem (${backend}): output equals the plain-loop convolution, gradients equal finite differences`, () => lm.withBackend(backend, () => {
    const { emb, img, P, weights } = setup();
    const expected = referenceStem(img, P);
    const grads = lm.tidy(() => {
      const out = emb.forward(lm.tensor(img, [B, config.num_channels, config.image_size, config.image_size]));
      assertClose(out.toArray(), expected, 1e-4, 1e-5, `${backend} stem output`);
      lm.backward(lm.sum(lm.mul(out, lm.tensor(weights, out.shape))));
      return [emb.stem!.weight, emb.stem!.bias!, emb.projection.weight, emb.projection.bias!].map((t) => t.grad!.toArray());
    });
    const keys = ['stemW', 'stemB', 'projW', 'projB'] as const;
    const h = 1e-6;
    keys.forEach((k, i) => {
      const numeric = P[k].map((v, j) => {
        const at = (dv: number): number => {
          const Q = { ...P, [k]: P[k].map((u, jj) => (jj === j ? v + dv : u)) };
          return referenceStem(img, Q).reduce((acc, o, m) => acc + o * weights[m]!, 0);
        };
        return (at(h) - at(-h)) / (2 * h);
      });
      assertClose(grads[i]!, numeric, 2e-3, 2e-4, `${backend} d${k}`);
    });
  }));
}

// ViT (Dosovitskiy et al. 2020): images cut into p×p patches, each flattened and projected linearly (a p-stride
// convolution written as a matmul), a class token, learned or fixed 2-D sin-cos positions, the project's pre-norm
// Transformer blocks without the causal mask, a final LayerNorm and a linear classification head on the class token.
// Optionally a convolution-like stem (Xiao et al. 2021's "early convolutions", here two overlapping-patch linear
// stages). Module names follow Hugging Face's ViTForImageClassification at the top (vit.embeddings…, vit.encoder.layer.N,
// vit.layernorm, classifier); the blocks keep the project's names and vit-io.ts maps them to HF's on export.
// Not the training task (train/tasks/classification.ts) and not CLIP (clip.ts), which reuses the encoder here.
import * as lm from '../core/index.js';
import { Rng, type Tensor } from '../core/index.js';
import { INIT_STD, type BlockConfig } from '../nn/attention.js';
import { Block } from '../nn/block.js';
import type { ForwardContext } from '../nn/context.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import { defineConfig, defaultsOf, type ConfigOf } from '../util/config.js';

/** ViT's keys with their defaults (a Fashion-MNIST-sized model) and documentation. */
export const vitSpec = defineConfig({
  image_size: { default: 28, type: 'integer', min: 1, doc: 'input images are image_size × image_size' },
  num_channels: { default: 1, type: 'integer', min: 1, doc: 'input channels (1 grey, 3 RGB)' },
  patch_size: { default: 7, type: 'integer', min: 1, doc: 'patch side p (image_size must be a multiple of it): (image_size/p)² tokens + the class token' },
  n_layer: { default: 6, type: 'integer', min: 1, doc: 'Transformer blocks (bidirectional)' },
  n_head: { default: 4, type: 'integer', min: 1, doc: 'attention heads' },
  n_embd: { default: 128, type: 'integer', min: 1, doc: 'width (a multiple of n_head)' },
  mlp_hidden: { default: 0, type: 'integer', min: 0, doc: 'MLP hidden width (0 = 4·n_embd)' },
  dropout: { default: 0, type: 'number', min: 0, max: 0.99, doc: 'dropout on embeddings, residual branches and attention probabilities' },
  norm_eps: { default: 1e-6, type: 'number', min: 0, doc: 'LayerNorm epsilon' },
  position: { default: 'learned', choices: ['learned', 'sincos'], doc: 'position embedding: learned, or fixed 2-D sin-cos (class token at zero)' },
  stem: { default: 'patch', choices: ['patch', 'conv'], doc: "patch embedding: one linear over each p×p patch ('patch'), or a convolutional stem: a 3×3 stride-1 stage then the p×p patch projection over its channels ('conv')" },
  stem_channels: { default: 8, type: 'integer', min: 1, doc: "channels of the conv stem's 3×3 stage" },
  num_labels: { default: 10, type: 'integer', min: 1, doc: 'classes of the classification head' },
});

export type ViTConfig = ConfigOf<typeof vitSpec>;
export const VIT_DEFAULTS: ViTConfig = defaultsOf(vitSpec);
export const VIT_KEYS = Object.keys(vitSpec) as (keyof ViTConfig)[];

export function validateViTConfig(c: ViTConfig): void {
  const fail = (field: keyof ViTConfig, want: string): never => {
    throw new RangeError(`ViT config: ${field} = ${JSON.stringify(c[field])}, expected ${want}`);
  };
  if (c.image_size % c.patch_size !== 0) fail('patch_size', `a divisor of image_size (${c.image_size})`);
  if (c.n_embd % c.n_head !== 0) fail('n_embd', `a multiple of n_head (${c.n_head})`);
  if (!(c.dropout >= 0 && c.dropout < 1)) fail('dropout', 'a number in [0, 1)');
}

/** The patch tokens of a config: (image_size / patch_size)². */
export function numPatches(c: Pick<ViTConfig, 'image_size' | 'patch_size'>): number {
  return (c.image_size / c.patch_size) ** 2;
}

/** The BlockConfig of the encoder's blocks: bidirectional, LayerNorm, exact GELU, with biases (ViT's). */
export function encoderBlockConfig(c: Pick<ViTConfig, 'n_layer' | 'n_head' | 'n_embd' | 'mlp_hidden' | 'norm_eps'>): BlockConfig {
  return {
    n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd, bias: true, activation: 'gelu', norm: 'layernorm', norm_eps: c.norm_eps,
    mlp: 'gelu', mlp_hidden: c.mlp_hidden,
  };
}

/** The project's pre-norm blocks with the causal mask off (or on, for a text tower that wants it). */
export function encoderBlocks(c: Pick<ViTConfig, 'n_layer' | 'n_head' | 'n_embd' | 'mlp_hidden' | 'norm_eps'>, rng: Rng, causal = false): Block[] {
  const bc = encoderBlockConfig(c);
  return Array.from({ length: c.n_layer }, (_, l) => {
    const b = new Block(bc, rng, l);
    b.attn.causal = causal;
    return b;
  });
}

/** Fixed 2-D sin-cos positions (MAE's): half the width encodes the row, half the column; the class token gets zeros. */
export function sincosPositions(grid: number, C: number): Float32Array {
  const out = new Float32Array((grid * grid + 1) * C);
  const quarter = Math.floor(C / 4);
  for (let y = 0; y < grid; y++) {
    for (let x = 0; x < grid; x++) {
      const row = (1 + y * grid + x) * C;
      for (let i = 0; i < quarter; i++) {
        const w = 1 / 10000 ** (i / quarter);
        out[row + i] = Math.sin(y * w);
        out[row + quarter + i] = Math.cos(y * w);
        out[row + 2 * quarter + i] = Math.sin(x * w);
        out[row + 3 * quarter + i] = Math.cos(x * w);
      }
    }
  }
  return out;
}

/**
 * Images (B, Cin, H, W) → patches (B, N, Cin·p·p), each patch flattened in (channel, row, column) order: the order
 * of a p-stride Conv2d's (D, Cin, p, p) kernel, so the projection is that convolution.
 */
export function patchify(images: Tensor, p: number): Tensor {
  const [B, Cin, H, W] = images.shape as [number, number, number, number];
  const h = H / p, w = W / p;
  const t = lm.reshape(images, [B, Cin, h, p, w, p]);
  return lm.reshape(lm.contiguous(lm.permute(t, [0, 2, 4, 1, 3, 5])), [B, h * w, Cin * p * p]);
}

/**
 * The conv stem's 3×3, stride-1, zero-padded neighbourhoods (im2col; the input carries no gradient), with the rows in
 * patch-major order (b, patch row, patch column, row in patch, column in patch) so that the stage's output is already
 * grouped by p×p patch: (B, Cin, H, W) → (B·N·p², Cin·9 + 1), each row in (channel, dy, dx) order (the stem weight's)
 * and then a constant 1 that multiplies the bias (so the bias rides in the GEMM, forward and backward).
 */
export function stemColumns(images: Tensor, p: number): Float32Array {
  const [B, Cin, H, W] = images.shape as [number, number, number, number];
  const cols = new Float32Array(B * H * W * (Cin * 9 + 1));
  stemColumnsInto(images, p, cols);
  return cols;
}

/**
 * stemColumns written into `cols`, which must be zero (the padding is never written): the training step passes a
 * pooled buffer instead of a fresh 4 MB array per step. Interior pixels copy their 3×3 neighbourhood unchecked;
 * only the image border tests which neighbours exist.
 */
export function stemColumnsInto(images: Tensor, p: number, cols: Float32Array): void {
  const [B, Cin, H, W] = images.shape as [number, number, number, number];
  const dense = lm.contiguous(images);
  const src = (dense.data as Float32Array).subarray(dense.offset);
  const K = Cin * 9 + 1;
  if (cols.length !== B * H * W * K) throw new RangeError(`stemColumnsInto: cols has ${cols.length} elements, expected ${B * H * W * K}`);
  let o = 0; // start of the current row
  for (let b = 0; b < B; b++) {
    for (let gy = 0; gy < H; gy += p) {
      for (let gx = 0; gx < W; gx += p) {
        for (let y = gy; y < gy + p; y++) {
          const inner = y > 0 && y + 1 < H;
          for (let x = gx; x < gx + p; x++, o += K) {
            cols[o + K - 1] = 1;
            if (inner && x > 0 && x + 1 < W) {
              for (let c = 0, oc = o; c < Cin; c++, oc += 9) {
                const r = (b * Cin + c) * H * W + (y - 1) * W + x - 1;
                cols[oc] = src[r]!; cols[oc + 1] = src[r + 1]!; cols[oc + 2] = src[r + 2]!;
                cols[oc + 3] = src[r + W]!; cols[oc + 4] = src[r + W + 1]!; cols[oc + 5] = src[r + W + 2]!;
                cols[oc + 6] = src[r + 2 * W]!; cols[oc + 7] = src[r + 2 * W + 1]!; cols[oc + 8] = src[r + 2 * W + 2]!;
              }
              continue;
            }
            for (let c = 0; c < Cin; c++) {
              const base = (b * Cin + c) * H * W;
              const oc = o + c * 9;
              for (let dy = -1; dy <= 1; dy++) {
                const yy = y + dy;
                if (yy < 0 || yy >= H) continue;
                const r = base + yy * W;
                const oo = oc + (dy + 1) * 3;
                if (x > 0) cols[oo] = src[r + x - 1]!;
                cols[oo + 1] = src[r + x]!;
                if (x + 1 < W) cols[oo + 2] = src[r + x + 1]!;
              }
            }
          }
        }
      }
    }
  }
  if (dense !== images) dense.dispose();
}

export class PatchEmbeddings extends Module {
  readonly projection: Linear;
  /** The conv stem's 3×3 stage (null for the plain patch embedding). */
  readonly stem: Linear | null;

  constructor(readonly c: ViTConfig, rng: Rng) {
    super();
    this.stem = c.stem === 'conv' ? this.child('stem', new Linear(c.num_channels * 9, c.stem_channels, { bias: true, rng, std: Math.sqrt(2 / (9 * c.num_channels)) })) : null;
    const inCh = c.stem === 'conv' ? c.stem_channels : c.num_channels;
    const fanIn = inCh * c.patch_size ** 2;
    this.projection = this.child('projection', new Linear(fanIn, c.n_embd, { bias: true, rng, std: Math.sqrt(1 / fanIn) }));
  }

  /** (B, Cin, H, W) → (B, N, C). */
  forward(images: Tensor): Tensor {
    const p = this.c.patch_size;
    if (!this.stem) return this.projection.forward(patchify(images, p));
    // Conv stem: GELU(3×3 stage) per pixel, already grouped by patch, so each patch's features lie in
    // (row, column, channel) order; the projection's rows, stored in a conv kernel's (channel, row, column) order,
    // are permuted to match (a (S·p², C) copy) instead of transposing the (B·N·p², S) activations.
    const [B, , H, W] = images.shape as [number, number, number, number];
    const N = (H / p) * (W / p), S = this.stem.outFeatures, C = this.c.n_embd;
    const cols = lm.zeros([B * N * p * p, this.stem.inFeatures + 1]); // pooled, zeroed
    stemColumnsInto(images, p, cols.data as Float32Array);
    // [W; b] against [neighbourhood, 1]: no separate bias pass over the (B·N·p², S) output, nor a bias-gradient sum.
    const wb = lm.concat([this.stem.weight, lm.reshape(this.stem.bias!, [1, S])], 0);
    const y = lm.reshape(lm.gelu(lm.linear(cols, wb, null)), [B, N, p * p * S]); // (B, N, p²·S)
    const w = lm.reshape(lm.contiguous(lm.permute(lm.reshape(this.projection.weight, [S, p * p, C]), [1, 0, 2])), [p * p * S, C]);
    return lm.linear(y, w, this.projection.bias);
  }
}

export class ViTEmbeddings extends Module {
  readonly cls_token: Tensor;
  /** Learned (a parameter) or sin-cos (a buffer) positions, (1, N + 1, C). */
  readonly position_embeddings: Tensor;
  readonly patch_embeddings: PatchEmbeddings;

  constructor(readonly c: ViTConfig, rng: Rng) {
    super();
    const T = numPatches(c) + 1;
    this.cls_token = this.param('cls_token', lm.randn([1, 1, c.n_embd], rng, INIT_STD));
    this.position_embeddings = c.position === 'learned'
      ? this.param('position_embeddings', lm.randn([1, T, c.n_embd], rng, INIT_STD))
      : this.buffer('position_embeddings', lm.fromArray(sincosPositions(c.image_size / c.patch_size, c.n_embd), [1, T, c.n_embd]));
    this.patch_embeddings = this.child('patch_embeddings', new PatchEmbeddings(c, rng));
  }

  /** (B, Cin, H, W) → (B, N + 1, C): [class token; patches] + positions. */
  forward(images: Tensor): Tensor {
    const B = images.shape[0]!;
    const patches = this.patch_embeddings.forward(images); // (B, N, C)
    const cls = lm.expand(this.cls_token, [B, 1, this.c.n_embd]);
    return lm.add(lm.concat([cls, patches], 1), this.position_embeddings);
  }
}

export class ViTEncoder extends Module {
  readonly layer: ModuleList<Block>;

  constructor(c: ViTConfig, rng: Rng) {
    super();
    this.layer = this.child('layer', new ModuleList(encoderBlocks(c, rng)));
  }

  forward(x: Tensor, ctx: ForwardContext): Tensor {
    for (const block of this.layer.items) x = block.forward(x, ctx);
    return x;
  }
}

/** The image tower: embeddings → encoder → final LayerNorm, giving every token's hidden state. */
export class ViTModel extends Module {
  readonly embeddings: ViTEmbeddings;
  readonly encoder: ViTEncoder;
  readonly layernorm: LayerNorm;

  constructor(readonly config: ViTConfig, rng: Rng) {
    super();
    validateViTConfig(config);
    this.embeddings = this.child('embeddings', new ViTEmbeddings(config, rng));
    this.encoder = this.child('encoder', new ViTEncoder(config, rng));
    this.layernorm = this.child('layernorm', new LayerNorm(config.n_embd, { bias: true, eps: config.norm_eps }));
  }

  /** Images (B, Cin, H, W), normalised → hidden states (B, N + 1, C); token 0 is the class token. */
  forward(images: Tensor, seed = 0): Tensor {
    const c = this.config;
    if (images.ndim !== 4 || images.shape[1] !== c.num_channels || images.shape[2] !== c.image_size || images.shape[3] !== c.image_size) {
      throw new RangeError(`ViT: images must be (B, ${c.num_channels}, ${c.image_size}, ${c.image_size}), got ${images.describe()}`);
    }
    const dropout = this.training ? c.dropout : 0;
    const ctx: ForwardContext = { dropout, seed, rope: null, cache: null, aux: {} };
    let x = this.embeddings.forward(images);
    if (dropout > 0) x = lm.dropout(x, dropout, seed ^ 0x9e3779b9);
    return this.layernorm.forward(this.encoder.forward(x, ctx));
  }
}

export interface ViTOutput {
  /** (B, num_labels) */
  logits: Tensor;
  loss?: Tensor;
}

/** ViT with a linear head on the class token (Hugging Face's ViTForImageClassification). */
export class ViTForImageClassification extends Module {
  readonly vit: ViTModel;
  readonly classifier: Linear;

  constructor(readonly config: ViTConfig, seed: number) {
    super();
    const rng = new Rng(seed);
    this.vit = this.child('vit', new ViTModel(config, rng));
    // The head starts at zero (as Hugging Face's fine-tuning heads and big_vision do): every class equally likely.
    this.classifier = this.child('classifier', new Linear(config.n_embd, config.num_labels, { bias: true, rng, std: 0 }));
  }

  /** Images (B, Cin, H, W) and optional int32 labels (B) → logits (B, K) and the mean cross-entropy. */
  forward(images: Tensor, labels?: Tensor, seed = 0): ViTOutput {
    const h = this.vit.forward(images, seed); // (B, N + 1, C)
    const B = h.shape[0]!;
    const cls = lm.reshape(lm.slice(h, 1, 0, 1), [B, this.config.n_embd]); // (B, C)
    const logits = this.classifier.forward(cls);
    return labels ? { logits, loss: lm.crossEntropy(logits, labels) } : { logits };
  }

  /** Training FLOPs per image (6 × multiply-adds of the matmuls and attention, forward + backward). */
  flopsPerImage(): number {
    const c = this.config;
    const T = numPatches(c) + 1;
    const C = c.n_embd;
    const hidden = c.mlp_hidden > 0 ? c.mlp_hidden : 4 * C;
    const perToken = c.n_layer * (4 * C * C + 2 * C * hidden) + (c.stem === 'conv' ? c.stem_channels : c.num_channels) * c.patch_size ** 2 * C;
    const attn = c.n_layer * 2 * T * T * C;
    return 6 * (T * perToken + attn) + 6 * C * c.num_labels;
  }
}

// CLIP (Radford et al. 2021): an image tower (the ViT of vit.ts, pooled at its class token) and a text tower (a small
// causal Transformer over characters, pooled at the end-of-text token), each projected linearly into a shared space
// and L2-normalised; the symmetric InfoNCE loss over the batch with a learnable temperature, logit_scale initialised
// to ln(1/0.07) and clamped so that exp(logit_scale) ≤ 100 (open_clip's rule, applied in the forward pass); zero-shot
// classifiers from prompt-ensemble text embeddings. Top-level names follow Hugging Face's CLIPModel (vision_model,
// text_model, visual_projection, text_projection, logit_scale); the image tower keeps ViT's own names.
// Not the training task (train/tasks/clip.ts) and not the linear probe (train/tasks/linear-probe.ts).
import * as lm from '../core/index.js';
import { Rng, type Tensor } from '../core/index.js';
import { INIT_STD } from '../nn/attention.js';
import type { Block } from '../nn/block.js';
import type { ForwardContext } from '../nn/context.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { Module, ModuleList } from '../nn/module.js';
import { defineConfig, defaultsOf, type ConfigOf } from '../util/config.js';
import { encoderBlocks, ViTModel, type ViTConfig } from './vit.js';

export const clipSpec = defineConfig({
  embed_dim: { default: 64, type: 'integer', min: 1, doc: 'CLIP: width of the shared image–text space (projection_dim)' },
  text_width: { default: 64, type: 'integer', min: 1, doc: "CLIP / decoder: the text Transformer's width" },
  text_layers: { default: 2, type: 'integer', min: 1, doc: "CLIP / decoder: the text Transformer's blocks" },
  text_heads: { default: 4, type: 'integer', min: 1, doc: "CLIP / decoder: the text Transformer's attention heads" },
  context_length: { default: 64, type: 'integer', min: 2, doc: 'CLIP / decoder: characters of text (with the end-of-text token); longer captions are cut' },
  logit_scale_init: { default: Math.log(1 / 0.07), type: 'number', doc: 'CLIP: initial logit_scale, ln(1/temperature) (ln(1/0.07) = 2.659)' },
  max_logit_scale: { default: 100, type: 'number', min: 1, doc: 'CLIP: exp(logit_scale) is clamped at this value' },
  image_init: { default: null, type: 'string', doc: "CLIP: start the image tower from a trained ViT classifier's directory (its vit.* weights; the model section must match it), or null to train it from scratch" },
  lock_image: { default: false, doc: "CLIP: keep the image tower frozen (LiT, Zhai et al. 2022; open_clip's --lock-image); the new visual projection still trains. Needs image_init" },
});

export type ClipSectionConfig = ConfigOf<typeof clipSpec>;
export const CLIP_DEFAULTS: ClipSectionConfig = defaultsOf(clipSpec);

/**
 * Characters → ids (a character vocabulary, as the project's char tokenizer, held here because models do not import
 * tokenizers) with one extra id, the end-of-text token; padding repeats it (never attended to: the tower is causal).
 */
export class TextCodec {
  readonly eot: number;
  private readonly index: Map<string, number>;

  constructor(readonly chars: readonly string[], readonly contextLength: number) {
    this.index = new Map(chars.map((c, i) => [c, i]));
    if (this.index.size !== chars.length) throw new RangeError('TextCodec: repeated character in the vocabulary');
    this.eot = chars.length;
  }

  /** Ids of each character; one outside the vocabulary is a RangeError naming it. */
  encode(text: string): number[] {
    return Array.from(text, (ch, i) => {
      const id = this.index.get(ch);
      if (id === undefined) throw new RangeError(`character ${JSON.stringify(ch)} at position ${i} of ${JSON.stringify(text)} is not in the ${this.chars.length}-character vocabulary`);
      return id;
    });
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length && ids[i] !== this.eot; i++) s += this.chars[ids[i]!] ?? '\uFFFD';
    return s;
  }

  get vocabSize(): number {
    return this.eot + 1;
  }

  /** Texts → ids (B, L) and each row's end-of-text position (text cut to L − 1 characters). */
  batch(texts: readonly string[]): { ids: Int32Array; eot: Int32Array } {
    const L = this.contextLength;
    const ids = new Int32Array(texts.length * L).fill(this.eot);
    const eot = new Int32Array(texts.length);
    texts.forEach((t, b) => {
      const enc = this.encode(t).slice(0, L - 1);
      ids.set(enc, b * L);
      eot[b] = enc.length;
    });
    return { ids, eot };
  }
}

/** A causal text Transformer (CLIP's text_model): token + learned position embeddings, the project's blocks, final norm. */
export class TextTransformer extends Module {
  readonly embeddings: TextEmbeddings;
  readonly encoder: TextEncoder;
  readonly final_layer_norm: LayerNorm;

  constructor(readonly vocabSize: number, readonly c: ClipSectionConfig, rng: Rng) {
    super();
    this.embeddings = this.child('embeddings', new TextEmbeddings(vocabSize, c, rng));
    this.encoder = this.child('encoder', new TextEncoder(c, rng));
    this.final_layer_norm = this.child('final_layer_norm', new LayerNorm(c.text_width, { bias: true, eps: 1e-5 }));
  }

  /** ids (B, L) → hidden states (B, L, C). */
  hidden(ids: Tensor): Tensor {
    const ctx: ForwardContext = { dropout: 0, seed: 0, rope: null, cache: null, aux: {} };
    return this.final_layer_norm.forward(this.encoder.forward(this.embeddings.forward(ids), ctx));
  }

  /** ids (B, L) and end-of-text positions → the hidden state at each row's end-of-text token (B, C). */
  forward(ids: Tensor, eot: Int32Array): Tensor {
    const [B, L] = ids.shape as [number, number];
    const h = lm.reshape(this.hidden(ids), [B * L, this.c.text_width]); // (B·L, C)
    return lm.embedding(h, lm.fromArray(Int32Array.from(eot, (t, b) => b * L + t), [B])); // rows gathered, (B, C)
  }
}

export class TextEmbeddings extends Module {
  readonly token_embedding: Embedding;
  readonly position_embedding: Embedding;

  constructor(vocabSize: number, readonly c: ClipSectionConfig, rng: Rng) {
    super();
    this.token_embedding = this.child('token_embedding', new Embedding(vocabSize, c.text_width, { rng, std: INIT_STD }));
    this.position_embedding = this.child('position_embedding', new Embedding(c.context_length, c.text_width, { rng, std: 0.01 }));
  }

  forward(ids: Tensor): Tensor {
    const L = ids.shape[1]!;
    return lm.add(this.token_embedding.forward(ids), lm.slice(this.position_embedding.weight, 0, 0, L));
  }
}

export class TextEncoder extends Module {
  readonly layers: ModuleList<Block>;

  constructor(c: ClipSectionConfig, rng: Rng) {
    super();
    const shape = { n_layer: c.text_layers, n_head: c.text_heads, n_embd: c.text_width, mlp_hidden: 0, norm_eps: 1e-5 };
    this.layers = this.child('layers', new ModuleList(encoderBlocks(shape, rng, true)));
  }

  forward(x: Tensor, ctx: ForwardContext): Tensor {
    for (const b of this.layers.items) x = b.forward(x, ctx);
    return x;
  }
}

/** Rows scaled to unit L2 norm: x / ‖x‖. */
export function l2Normalize(x: Tensor): Tensor {
  return lm.mul(x, lm.rsqrt(lm.addScalar(lm.sum(lm.square(x), -1, true), 1e-12)));
}

/** exp(min(s, ln max)): the temperature's inverse, clamped at max (s beyond the clamp gets no gradient). */
export function clampedScale(logitScale: Tensor, max: number): Tensor {
  return lm.exp(lm.minimum(logitScale, Math.log(max)));
}

/** Symmetric InfoNCE of unit embeddings img, txt (B, E), row i of each a matching pair, at scale s (a (1) tensor). */
export function clipLoss(img: Tensor, txt: Tensor, s: Tensor): { loss: Tensor; logits: Tensor } {
  const B = img.shape[0]!;
  const logits = lm.mul(lm.matmul(img, lm.transpose(txt)), s); // (B, B) image-to-text
  const target = lm.arange(B);
  const loss = lm.mulScalar(lm.add(lm.crossEntropy(logits, target), lm.crossEntropy(lm.transpose(logits), target)), 0.5);
  return { loss, logits };
}

export interface ClipOutput {
  loss: Tensor;
  /** (B, B) image-to-text logits. */
  logits: Tensor;
  /** exp(logit_scale) after the clamp. */
  scale: number;
}

export class CLIPModel extends Module {
  readonly vision_model: ViTModel;
  readonly text_model: TextTransformer;
  readonly visual_projection: Linear;
  readonly text_projection: Linear;
  readonly logit_scale: Tensor;
  readonly codec: TextCodec;

  constructor(readonly visionConfig: ViTConfig, readonly config: ClipSectionConfig, chars: readonly string[], seed: number) {
    super();
    const rng = new Rng(seed);
    this.codec = new TextCodec(chars, config.context_length);
    this.vision_model = this.child('vision_model', new ViTModel(visionConfig, rng));
    this.text_model = this.child('text_model', new TextTransformer(this.codec.vocabSize, config, rng));
    this.visual_projection = this.child('visual_projection', new Linear(visionConfig.n_embd, config.embed_dim, { bias: false, rng, std: visionConfig.n_embd ** -0.5 }));
    this.text_projection = this.child('text_projection', new Linear(config.text_width, config.embed_dim, { bias: false, rng, std: config.text_width ** -0.5 }));
    this.logit_scale = this.param('logit_scale', lm.full([1], config.logit_scale_init));
  }

  /** Images (B, Cin, H, W) → the image tower's pooled features before projection (B, C): the class token. A locked
   * tower runs without recording the graph (nothing to back-propagate into), about a third of a step saved. */
  imageFeatures(images: Tensor, seed = 0): Tensor {
    const locked = !this.vision_model.parameters().some((p) => p.requiresGrad);
    const h = locked ? lm.noGrad(() => this.vision_model.forward(images, seed)) : this.vision_model.forward(images, seed);
    return lm.reshape(lm.slice(h, 1, 0, 1), [h.shape[0]!, this.visionConfig.n_embd]);
  }

  /** Unit-norm image embeddings (B, E). */
  encodeImage(images: Tensor, seed = 0): Tensor {
    return l2Normalize(this.visual_projection.forward(this.imageFeatures(images, seed)));
  }

  /** Unit-norm text embeddings (B, E). */
  encodeText(texts: readonly string[]): Tensor {
    const { ids, eot } = this.codec.batch(texts);
    return l2Normalize(this.text_projection.forward(this.text_model.forward(lm.fromArray(ids, [texts.length, this.config.context_length]), eot)));
  }

  /** exp(min(logit_scale, ln max_logit_scale)): the clamp at 100 (no gradient past it, as open_clip's clamp). */
  scale(): Tensor {
    return clampedScale(this.logit_scale, this.config.max_logit_scale);
  }

  /** Symmetric InfoNCE of B matching (image, text) pairs: (CE(s·I·Tᵀ, diag) + CE(s·T·Iᵀ, diag)) / 2. */
  forward(images: Tensor, texts: readonly string[], seed = 0): ClipOutput {
    const img = this.encodeImage(images, seed); // (B, E)
    const txt = this.encodeText(texts); // (B, E)
    const s = this.scale();
    return { ...clipLoss(img, txt, s), scale: s.item() };
  }

  /** The zero-shot classifier (K, E): per class, the mean of its prompts' unit embeddings, renormalised. */
  zeroShotClassifier(promptsPerClass: readonly string[][]): Tensor {
    const rows = promptsPerClass.map((prompts) => l2Normalize(lm.mean(this.encodeText(prompts), 0, true))); // (1, E) each
    return lm.concat(rows, 0);
  }
}

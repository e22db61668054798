// Image-conditioned text decoders for captions and visual question answering over the ViT image tower's tokens, in two
// variants: 'cross' (Flamingo, Alayrac et al. 2022): before each causal decoder block a gated cross-attention layer,
// x + tanh(α)·xattn(ln(x), image) then x + tanh(β)·ffw(ln(x)), with α = β = 0 at initialisation so that the decoder
// starts as a pure language model; and 'prefix' (LLaVA, Liu et al. 2023): the image tokens projected by a two-layer MLP
// into the decoder's width and placed before the text, one causal sequence. Greedy generation (the sequences are a
// few dozen characters; each step recomputes the text, the image tokens are computed once).
// Not the training task (train/tasks/caption.ts) nor the image tower (vit.ts).
import * as lm from '../core/index.js';
import { Rng, type Tensor } from '../core/index.js';
import { INIT_STD } from '../nn/attention.js';
import type { Block } from '../nn/block.js';
import type { ForwardContext } from '../nn/context.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { MLP } from '../nn/mlp.js';
import { Module, ModuleList } from '../nn/module.js';
import { defineConfig, defaultsOf, type ConfigOf } from '../util/config.js';
import { TextCodec } from './clip.js';
import { encoderBlockConfig, encoderBlocks, ViTModel, type ViTConfig } from './vit.js';

export const decoderSpec = defineConfig({
  variant: { default: 'cross', choices: ['cross', 'prefix'], doc: "caption: 'cross' (Flamingo: tanh-gated cross-attention layers over the image tokens) or 'prefix' (LLaVA: image tokens projected into the decoder's input)" },
  n_layer: { default: 2, type: 'integer', min: 1, doc: 'caption: causal decoder blocks (each preceded by a gated cross-attention layer in the cross variant)' },
  n_head: { default: 4, type: 'integer', min: 1, doc: 'caption: attention heads (self and cross)' },
  n_embd: { default: 64, type: 'integer', min: 1, doc: "caption: the decoder's width" },
  context_length: { default: 40, type: 'integer', min: 4, doc: 'caption: characters of prompt + answer + end-of-text' },
  vision_from: { default: null, type: 'string', doc: "caption: start the image tower from a trained ViT classifier's directory (its vit.* weights; the model section must match it), or null for a new one" },
  freeze_vision: { default: true, doc: 'caption: keep the image tower frozen (Flamingo and LLaVA train only the language side and the bridge); false trains it too' },
});

export type DecoderConfig = ConfigOf<typeof decoderSpec>;
export const DECODER_DEFAULTS: DecoderConfig = defaultsOf(decoderSpec);

/** Flamingo's GATED XATTN-DENSE layer: tanh-gated cross-attention to the image tokens, then a tanh-gated MLP. */
export class GatedCrossAttention extends Module {
  readonly ln_1: LayerNorm;
  readonly q_proj: Linear;
  readonly kv_proj: Linear;
  readonly out_proj: Linear;
  readonly attn_gate: Tensor;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;
  readonly ff_gate: Tensor;

  constructor(readonly C: number, readonly H: number, imageWidth: number, rng: Rng) {
    super();
    this.ln_1 = this.child('ln_1', new LayerNorm(C, { bias: true, eps: 1e-5 }));
    this.q_proj = this.child('q_proj', new Linear(C, C, { bias: true, rng, std: INIT_STD }));
    this.kv_proj = this.child('kv_proj', new Linear(imageWidth, 2 * C, { bias: true, rng, std: INIT_STD }));
    this.out_proj = this.child('out_proj', new Linear(C, C, { bias: true, rng, std: INIT_STD }));
    // tanh(0) = 0: the layer is the identity at initialisation.
    this.attn_gate = this.param('attn_gate', lm.zeros([1]));
    this.ln_2 = this.child('ln_2', new LayerNorm(C, { bias: true, eps: 1e-5 }));
    this.mlp = this.child('mlp', new MLP({ ...encoderBlockConfig({ n_layer: 1, n_head: H, n_embd: C, mlp_hidden: 0, norm_eps: 1e-5 }) }, rng));
    this.ff_gate = this.param('ff_gate', lm.zeros([1]));
  }

  /** x (B, T, C) attends to image (B, N, Cv) without a mask → (B, T, C). */
  forward(x: Tensor, image: Tensor): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const N = image.shape[1]!;
    const H = this.H, D = C / H;
    const heads = (t: Tensor, L: number): Tensor => lm.permute(lm.reshape(t, [B, L, H, D]), [0, 2, 1, 3]); // (B, H, L, D)
    const q = heads(this.q_proj.forward(this.ln_1.forward(x)), T);
    const [k, v] = lm.split(this.kv_proj.forward(image), [C, C], 2).map((t) => heads(t, N)) as [Tensor, Tensor];
    const y = lm.reshape(lm.permute(lm.attention(q, k, v), [0, 2, 1, 3]), [B, T, C]); // (B, T, C)
    const x1 = lm.add(x, lm.mul(this.out_proj.forward(y), lm.tanh(this.attn_gate)));
    return lm.add(x1, lm.mul(this.mlp.forward(this.ln_2.forward(x1)), lm.tanh(this.ff_gate)));
  }
}

/** LLaVA's multi-modal projector: Linear → GELU → Linear from the image tower's width to the decoder's. */
export class MultiModalProjector extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;

  constructor(imageWidth: number, C: number, rng: Rng) {
    super();
    this.linear_1 = this.child('linear_1', new Linear(imageWidth, C, { bias: true, rng, std: imageWidth ** -0.5 }));
    this.linear_2 = this.child('linear_2', new Linear(C, C, { bias: true, rng, std: C ** -0.5 }));
  }

  forward(x: Tensor): Tensor {
    return this.linear_2.forward(lm.gelu(this.linear_1.forward(x)));
  }
}

export class ImageTextDecoder extends Module {
  readonly vision_model: ViTModel;
  readonly wte: Embedding;
  readonly wpe: Embedding;
  readonly h: ModuleList<Block>;
  /** Cross variant: one gated cross-attention layer before each block. */
  readonly gated_xattn: ModuleList<GatedCrossAttention> | null;
  /** Prefix variant: the image-token projector. */
  readonly multi_modal_projector: MultiModalProjector | null;
  readonly ln_f: LayerNorm;
  readonly lm_head: Linear;
  readonly codec: TextCodec;
  /** Positions the prefix variant's image tokens take before the text (0 for cross). */
  readonly prefixLength: number;

  constructor(readonly visionConfig: ViTConfig, readonly config: DecoderConfig, chars: readonly string[], seed: number) {
    super();
    const rng = new Rng(seed);
    const c = config;
    if (c.n_embd % c.n_head !== 0) throw new RangeError(`decoder config: n_embd = ${c.n_embd}, expected a multiple of n_head (${c.n_head})`);
    this.codec = new TextCodec(chars, c.context_length);
    this.vision_model = this.child('vision_model', new ViTModel(visionConfig, rng));
    const Cv = visionConfig.n_embd;
    this.prefixLength = c.variant === 'prefix' ? (visionConfig.image_size / visionConfig.patch_size) ** 2 + 1 : 0;
    this.wte = this.child('wte', new Embedding(this.codec.vocabSize, c.n_embd, { rng, std: INIT_STD }));
    this.wpe = this.child('wpe', new Embedding(this.prefixLength + c.context_length, c.n_embd, { rng, std: INIT_STD }));
    this.h = this.child('h', new ModuleList(encoderBlocks({ n_layer: c.n_layer, n_head: c.n_head, n_embd: c.n_embd, mlp_hidden: 0, norm_eps: 1e-5 }, rng, true)));
    this.gated_xattn = c.variant === 'cross' ? this.child('gated_xattn', new ModuleList(Array.from({ length: c.n_layer }, () => new GatedCrossAttention(c.n_embd, c.n_head, Cv, rng)))) : null;
    this.multi_modal_projector = c.variant === 'prefix' ? this.child('multi_modal_projector', new MultiModalProjector(Cv, c.n_embd, rng)) : null;
    this.ln_f = this.child('ln_f', new LayerNorm(c.n_embd, { bias: true, eps: 1e-5 }));
    this.lm_head = this.child('lm_head', new Linear(c.n_embd, this.codec.vocabSize, { bias: false, rng, std: INIT_STD }));
  }

  /** The image tower's tokens (B, N + 1, Cv), without gradient when the tower is frozen. */
  imageTokens(images: Tensor, seed = 0): Tensor {
    const frozen = !this.vision_model.parameters().some((p) => p.requiresGrad);
    return frozen ? lm.noGrad(() => this.vision_model.forward(images, seed)) : this.vision_model.forward(images, seed);
  }

  /** Text ids (B, T) given the image tokens → logits (B, T, V) of the next character at each text position. */
  logits(ids: Tensor, image: Tensor): Tensor {
    const T = ids.shape[1]!;
    const P = this.prefixLength;
    const ctx: ForwardContext = { dropout: 0, seed: 0, rope: null, cache: null, aux: {} };
    let x = this.wte.forward(ids); // (B, T, C)
    if (this.multi_modal_projector) x = lm.concat([this.multi_modal_projector.forward(image), x], 1); // (B, P + T, C)
    x = lm.add(x, lm.slice(this.wpe.weight, 0, 0, P + T));
    this.h.items.forEach((block, l) => {
      if (this.gated_xattn) x = this.gated_xattn.items[l]!.forward(x, image);
      x = block.forward(x, ctx);
    });
    if (P > 0) x = lm.slice(x, 1, P, P + T);
    return this.lm_head.forward(this.ln_f.forward(x)); // (B, T, V)
  }

  /** Mean cross-entropy of the next characters (targets −100 are not scored: the prompt, the padding). */
  forward(images: Tensor, ids: Tensor, targets: Tensor, seed = 0): Tensor {
    return lm.crossEntropy(this.logits(ids, this.imageTokens(images, seed)), targets);
  }

  /** Greedy answers to one prompt for every image of the batch (at most maxNew characters, stopping at end-of-text). */
  generate(images: Tensor, prompt: string, maxNew: number): string[] {
    const B = images.shape[0]!;
    const start = this.codec.encode(prompt);
    const L = this.config.context_length;
    const rows: number[][] = Array.from({ length: B }, () => [...start]);
    const done = new Array<boolean>(B).fill(false);
    lm.noGrad(() => lm.tidy(() => {
      const image = this.imageTokens(images);
      for (let step = 0; step < maxNew && start.length + step < L && !done.every(Boolean); step++) {
        const T = start.length + step;
        const ids = Int32Array.from(rows.flatMap((r) => r));
        lm.tidy(() => {
          const last = lm.slice(this.logits(lm.fromArray(ids, [B, T]), image), 1, T - 1, T); // (B, 1, V)
          const next = lm.argmax(lm.reshape(last, [B, this.codec.vocabSize]), 1).data as Int32Array;
          for (let b = 0; b < B; b++) {
            rows[b]!.push(done[b] ? this.codec.eot : next[b]!);
            if (next[b] === this.codec.eot) done[b] = true;
          }
        });
      }
    }));
    return rows.map((r) => this.codec.decode(r.slice(start.length)));
  }
}

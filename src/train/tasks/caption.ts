// Captioning and visual question answering as a task of the loop: each image of a batch gets a prompt (a caption
// request or a question about its class, tone or size) and the answer is the target — cross-entropy on the answer's
// characters and the end-of-text token only; evaluation generates greedily and scores exact matches per kind.
// Not the model (models/caption.ts).
import * as lm from '../../core/index.js';
import { decoderExample, DECODER_KINDS } from '../../data/captions.js';
import type { ImageSet, Normalization } from '../../data/images.js';
import type { ImageTextDecoder } from '../../models/caption.js';
import type { LossOutput, StepContext, Task } from '../loop.js';
import { ImageBatcher, imageTensor, type ImageBatch, type ImageTaskOptions } from './classification.js';

export interface TextBatch extends ImageBatch {
  ids: Int32Array;
  targets: Int32Array;
}

/** Prompt + ' ' + answer + end-of-text as next-character inputs and targets of length T (the prompt is not scored). */
export function answerSequence(model: ImageTextDecoder, prompt: string, answer: string, T: number, ids: Int32Array, targets: Int32Array, offset: number): void {
  const codec = model.codec;
  const head = codec.encode(`${prompt} `);
  const seq = [...head, ...codec.encode(answer), codec.eot].slice(0, T + 1);
  ids.fill(codec.eot, offset, offset + T);
  targets.fill(-100, offset, offset + T);
  for (let t = 0; t + 1 < seq.length; t++) {
    ids[offset + t] = seq[t]!;
    if (t + 1 >= head.length) targets[offset + t] = seq[t + 1]!;
  }
}

/** Exact-match accuracy of the generated answers of one kind (index into DECODER_KINDS) over images [0, limit). */
export function answerAccuracy(model: ImageTextDecoder, set: ImageSet, norm: Normalization, kind: number, batchSize: number, limit = set.n): { accuracy: number; examples: { expected: string; generated: string }[] } {
  const n = Math.min(limit, set.n);
  let correct = 0;
  const examples: { expected: string; generated: string }[] = [];
  model.eval();
  for (let s = 0; s < n; s += batchSize) {
    const e = Math.min(n, s + batchSize);
    const prompt = decoderExample(set, s, kind, () => 0).prompt;
    const answers = lm.tidy(() => model.generate(imageTensor(set, s, e, norm), `${prompt} `, 24));
    answers.forEach((generated, i) => {
      const expected = decoderExample(set, s + i, kind, () => 0).answer;
      if (generated === expected) correct++;
      if (examples.length < 3) examples.push({ expected, generated });
    });
  }
  model.train();
  return { accuracy: correct / n, examples };
}

export class CaptionTask implements Task<TextBatch> {
  readonly itemsPerBatch: number;
  readonly flopsPerItem = 0;
  private batcher: ImageBatcher;

  constructor(readonly model: ImageTextDecoder, private readonly train: ImageSet, private readonly val: ImageSet, private readonly test: ImageSet, private readonly o: ImageTaskOptions) {
    this.batcher = new ImageBatcher(train, o.batchSize, o.norm, o.aug, o.seed);
    this.itemsPerBatch = o.batchSize;
  }

  nextBatch(): TextBatch {
    const b = this.batcher.next();
    const T = this.model.config.context_length;
    const B = b.labels.length;
    const ids = new Int32Array(B * T), targets = new Int32Array(B * T);
    b.indices.forEach((index, row) => {
      const ex = decoderExample(this.train, index, -1, () => this.batcher.uniform());
      answerSequence(this.model, ex.prompt, ex.answer, T, ids, targets, row * T);
    });
    return { ...b, ids, targets };
  }

  loss(batch: TextBatch, ctx: StepContext): LossOutput {
    const { height: H, width: W, channels: C } = this.train;
    const B = batch.labels.length;
    const T = this.model.config.context_length;
    const loss = this.model.forward(lm.fromArray(batch.pixels, [B, C, H, W]), lm.fromArray(batch.ids, [B, T]), lm.fromArray(batch.targets, [B, T]), ctx.seed);
    const gates: Record<string, number> = {};
    this.model.gated_xattn?.items.forEach((g, l) => (gates[`tanh_gate_${l}`] = Math.tanh(g.attn_gate.item())));
    return { loss, metrics: gates };
  }

  evaluate(_step: number): Record<string, number> {
    if (this.val.n === 0) return {};
    const caption = answerAccuracy(this.model, this.val, this.o.norm, 0, this.o.evalBatchSize, this.o.evalImages);
    return { val_caption_accuracy: caption.accuracy, epoch: this.batcher.epoch };
  }

  finalEvaluate(step: number, log: (line: string) => void): Record<string, number> {
    const out: Record<string, number> = {};
    DECODER_KINDS.forEach((kind, k) => {
      const r = answerAccuracy(this.model, this.test, this.o.norm, k, this.o.evalBatchSize);
      log(`step ${step}: test ${kind} accuracy ${r.accuracy.toFixed(4)} (${this.test.n} images; e.g. ${r.examples.map((x) => `${JSON.stringify(x.generated)} for ${JSON.stringify(x.expected)}`).join(', ')})`);
      out[`test_${kind}_accuracy`] = r.accuracy;
    });
    return out;
  }

  state(): Record<string, unknown> {
    return this.batcher.state();
  }

  loadState(state: Record<string, unknown>, source: string): void {
    this.batcher.loadState(state, source);
  }
}

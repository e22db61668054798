// Text about Fashion-MNIST images, for CLIP and the image-conditioned decoder: captions built from a class name (or a
// synonym), a template and descriptive attributes — the class's own (sleeves, heels, straps) and the image's, measured
// from its pixels (how bright the garment is, how much of the frame it fills) — questions with their answers, and the
// prompt templates of zero-shot classification, split into those captions are drawn from (training) and those held out
// for evaluation. Plain strings and numbers: no tensors here.
import type { ImageSet } from './images.js';

/** What a caption may call each Fashion-MNIST class: the first name is the canonical one (zero-shot prompts use it). */
export const FASHION_NAMES: readonly (readonly string[])[] = [
  ['t-shirt', 'tee', 'top'],
  ['trousers', 'pants', 'slacks'],
  ['pullover', 'sweater', 'jumper'],
  ['dress', 'frock', 'gown'],
  ['coat', 'jacket', 'overcoat'],
  ['sandal', 'open shoe', 'summer sandal'],
  ['shirt', 'button-up shirt', 'blouse'],
  ['sneaker', 'trainer', 'running shoe'],
  ['bag', 'handbag', 'purse'],
  ['ankle boot', 'boot', 'short boot'],
];

/** Descriptive attributes of each class (true of every image of it). */
export const CLASS_ATTRIBUTES: readonly (readonly string[])[] = [
  ['short-sleeved', 'casual', 'collarless'],
  ['long-legged', 'two-legged', 'full-length'],
  ['long-sleeved', 'knitted', 'warm'],
  ['one-piece', 'sleeveless', 'flowing'],
  ['long-sleeved', 'buttoned', 'outdoor'],
  ['strappy', 'open-toed', 'flat'],
  ['collared', 'long-sleeved', 'buttoned'],
  ['laced', 'sporty', 'low-cut'],
  ['handled', 'boxy', 'zipped'],
  ['heeled', 'high-topped', 'sturdy'],
];

/** Caption templates of training: `{c}` the class word, `{a}` a class attribute, `{t}` the tone, `{s}` the size. */
export const TRAIN_TEMPLATES: readonly string[] = [
  'a photo of a {c}.',
  'a picture of a {a} {c}.',
  'an image of the {c}.',
  'a {t} {c}.',
  'a {s} {t} {c}.',
  'a grayscale photo of a {a} {c}.',
  'a low resolution photo of the {c}.',
  'this is a {t} {c}, {a}.',
  'a product photo of a {c}.',
  'a small picture of a {s} {c}.',
  // More sentence shapes, so that the text tower learns the class word wherever it sits rather than ten fixed frames
  // (the zero-shot prompts are other frames still).
  '{c}',
  'a {c}',
  'the {c}, {t} and {s}.',
  'my {a} {c}.',
  'a {s} {c} on a black background.',
  'an item of clothing: a {c}.',
  'a scan of a {t} {a} {c}.',
  'this {c} looks {t}.',
  'somebody\'s {c}.',
  'a {c} for sale, {a}.',
];

/** Zero-shot prompt templates never seen in training captions (held out); `{c}` the canonical class name. */
export const ZERO_SHOT_TEMPLATES: readonly string[] = [
  'a close-up photo of a {c}.',
  'there is a {c} in this image.',
  'a cropped image showing a {c}.',
  'a blurry shot of the {c}.',
  'a catalogue image of a {c}.',
  'one {c}.',
];

/** How bright the garment is: the mean of its ink pixels (those above 32) → dark / grey / bright. */
export function toneOf(set: ImageSet, index: number): string {
  const per = set.height * set.width * set.channels;
  let sum = 0, count = 0;
  for (let i = index * per; i < (index + 1) * per; i++) {
    const v = set.images[i]!;
    if (v > 32) {
      sum += v;
      count++;
    }
  }
  const mean = count ? sum / count : 0;
  return mean < 110 ? 'dark' : mean < 170 ? 'grey' : 'bright';
}

/** How much of the frame the garment fills: the share of ink pixels → small / medium / large. */
export function sizeOf(set: ImageSet, index: number): string {
  const per = set.height * set.width * set.channels;
  let count = 0;
  for (let i = index * per; i < (index + 1) * per; i++) if (set.images[i]! > 32) count++;
  const share = count / per;
  return share < 0.3 ? 'small' : share < 0.5 ? 'medium' : 'large';
}

/** Fills a template: `{c}` class word, `{a}` attribute, `{t}` tone, `{s}` size. */
export function fill(template: string, parts: { c: string; a?: string; t?: string; s?: string }): string {
  return template.replace(/\{([cats])\}/g, (_, k: 'c' | 'a' | 't' | 's') => parts[k] ?? '');
}

/** A random training caption of image `index` (label `label`), its choices drawn from `u` (uniform in [0, 1)). */
export function trainCaption(set: ImageSet, index: number, u: () => number): string {
  const label = set.labels[index]!;
  const pick = <T>(xs: readonly T[]): T => xs[Math.min(xs.length - 1, Math.floor(u() * xs.length))]!;
  return fill(pick(TRAIN_TEMPLATES), { c: pick(FASHION_NAMES[label]!), a: pick(CLASS_ATTRIBUTES[label]!), t: toneOf(set, index), s: sizeOf(set, index) });
}

/** The zero-shot prompts of a class: every held-out template with its canonical name. */
export function zeroShotPrompts(label: number): string[] {
  return ZERO_SHOT_TEMPLATES.map((t) => fill(t, { c: FASHION_NAMES[label]![0]! }));
}

/** A question about an image and its answer (the decoder's visual question answering). */
export interface QA {
  prompt: string;
  answer: string;
}

/**
 * The decoder's examples of an image: a caption prompt answered with "a {tone} {class}" and questions about the
 * class, its tone and its size. `kind` picks one; -1 draws from `u`.
 */
export function decoderExample(set: ImageSet, index: number, kind: number, u: () => number): QA {
  const label = set.labels[index]!;
  const name = FASHION_NAMES[label]![0]!;
  const k = kind >= 0 ? kind : Math.floor(u() * DECODER_KINDS.length);
  switch (DECODER_KINDS[k]) {
    case 'caption': return { prompt: 'caption:', answer: `a ${toneOf(set, index)} ${name}` };
    case 'what': return { prompt: 'what is this?', answer: name };
    case 'tone': return { prompt: 'how bright is it?', answer: toneOf(set, index) };
    default: return { prompt: 'how big is it?', answer: sizeOf(set, index) };
  }
}

export const DECODER_KINDS = ['caption', 'what', 'tone', 'size'] as const;

/** Every character the generated text can hold (printable ASCII): the char vocabulary of the text models. */
export const TEXT_CHARS: string[] = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i));

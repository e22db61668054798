// The training config of the image tasks (`lmforge train` with task.kind classification, clip or caption): the loop's
// keys as in train-config.ts, an image `data:` section, the ViT image tower under `model:`, CLIP's and the caption
// decoder's own sections, and the shared `optim:` section. Not the text pretraining config (train-config.ts).
import { vitSpec } from '../models/vit.js';
import { clipSpec } from '../models/clip.js';
import { decoderSpec } from '../models/caption.js';
import { optimSpec } from '../optim/config.js';
import { defineConfig, type ConfigOf } from '../util/config.js';

export const VISION_TASKS = ['classification', 'clip', 'caption'] as const;

export const visionTrainSpec = defineConfig({
  out_dir: { default: 'runs/vit-fashion-mnist', doc: 'run directory: checkpoints, metrics.jsonl, train-config.json, final model' },
  seed: { default: 1337, type: 'integer', doc: 'seeds initialisation, batch order, augmentation and dropout' },
  threads: { default: 0, type: 'integer', min: 0, doc: 'native kernel threads (0 = all cores)' },
  max_iters: { default: 2000, type: 'integer', min: 0, doc: 'optimizer steps' },
  gradient_accumulation_steps: { default: 1, type: 'integer', min: 1, doc: 'micro-batches per optimizer step' },
  grad_clip: { default: 1.0, type: 'number', min: 0, doc: 'clip the global gradient norm (0 = off)' },
  nan_policy: { default: 'stop', choices: ['stop', 'skip'], doc: 'on a NaN/Inf loss: stop naming the step, or skip that update' },
  eval_interval: { default: 500, type: 'integer', min: 1, doc: 'evaluate on the validation images every N steps (and at the end)' },
  log_interval: { default: 50, type: 'integer', min: 1, doc: 'print and log progress every N steps' },
  checkpoint_interval: { default: 500, type: 'integer', min: 0, doc: 'save a checkpoint every N steps (0 = only at the end)' },
  keep_checkpoints: { default: 2, type: 'integer', min: 1, doc: 'how many recent checkpoints to keep' },
  peak_flops: { default: 0, type: 'number', min: 0, doc: 'peak FLOP/s of the machine for MFU (0 = do not report MFU)' },
  task: {
    kind: { default: 'classification', choices: VISION_TASKS, doc: 'classification (ViT + linear head), clip (image–text contrastive) or caption (image-conditioned decoder: captions and answers)' },
  },
  data: {
    dir: { default: '../shared/data/fashion-mnist', doc: 'an MNIST-style IDX directory (train-*/t10k-* files, gzip or raw) or an image folder with train/ and test/ of <class>/<image>.png' },
    format: { default: 'idx', choices: ['idx', 'folder'], doc: 'idx (Fashion-MNIST class names) or folder (class names are the directory names)' },
    batch_size: { default: 128, type: 'integer', min: 1, doc: 'images per micro-batch' },
    eval_batch_size: { default: 500, type: 'integer', min: 1, doc: 'images per evaluation batch' },
    val_size: { default: 5000, type: 'integer', min: 0, doc: 'the last N training images are held out for validation during training (the test split is measured at the end)' },
    eval_images: { default: 5000, type: 'integer', min: 1, doc: 'validation images per evaluation' },
    crop_padding: { default: 2, type: 'integer', min: 0, doc: 'augmentation: zero-pad each side by N pixels and crop at a random offset (0 = off)' },
    flip: { default: false, doc: 'augmentation: mirror left-right with probability 1/2 (label-preserving for Fashion-MNIST; off by default because it is not for digits or text)' },
  },
  model: vitSpec,
  clip: clipSpec,
  decoder: decoderSpec,
  optim: optimSpec,
});

export type VisionTrainConfig = ConfigOf<typeof visionTrainSpec>;

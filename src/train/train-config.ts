// The training config: nanoGPT's knobs (flat keys, same names) plus lmforge's model options, each with its
// default and a line of documentation. `lmforge train --help` prints this table.
import { defineConfig, type ConfigOf } from '../util/config.js';

export const trainSpec = defineConfig({
  out_dir: { default: 'runs/shakespeare-char', doc: 'run directory: checkpoints, metrics.jsonl, config.json, final model' },
  data_dir: { default: 'data/shakespeare-char', doc: 'directory with train.bin and val.bin (from `lmforge prepare` or `lmforge tokenize`) and meta.json' },
  seed: { default: 1337, type: 'integer', doc: 'seeds initialisation, batch sampling and dropout' },
  threads: { default: 0, type: 'integer', min: 0, doc: 'native kernel threads (0 = all cores)' },
  // logging, evaluation, checkpoints
  eval_interval: { default: 250, type: 'integer', min: 1, doc: 'evaluate train/val loss every N steps (and at the end)' },
  eval_iters: { default: 200, type: 'integer', min: 1, doc: 'batches per loss estimate' },
  full_val: { default: false, doc: 'at the end, also the loss over the whole val split in consecutive block_size windows (noise-free)' },
  log_interval: { default: 10, type: 'integer', min: 1, doc: 'print and log progress every N steps' },
  checkpoint_interval: { default: 250, type: 'integer', min: 0, doc: 'save a checkpoint every N steps (0 = only at the end)' },
  keep_checkpoints: { default: 2, type: 'integer', min: 1, doc: 'how many recent checkpoints to keep' },
  nan_policy: { default: 'stop', choices: ['stop', 'skip'], doc: 'on a NaN/Inf loss: stop the run naming the step, or skip that update' },
  peak_flops: { default: 0, type: 'number', min: 0, doc: 'peak FLOP/s of the machine for MFU (0 = do not report MFU)' },
  // data
  batch_size: { default: 12, type: 'integer', min: 1, doc: 'sequences per micro-batch' },
  block_size: { default: 64, type: 'integer', min: 1, doc: 'context length' },
  gradient_accumulation_steps: { default: 1, type: 'integer', min: 1, doc: 'micro-batches per optimizer step' },
  // model
  vocab_size: { default: null, type: 'integer', nullable: true, doc: 'vocabulary size (null = from meta.json)' },
  n_layer: { default: 4, type: 'integer', min: 1, doc: 'Transformer blocks' },
  n_head: { default: 4, type: 'integer', min: 1, doc: 'attention heads' },
  n_embd: { default: 128, type: 'integer', min: 1, doc: 'model width' },
  dropout: { default: 0, type: 'number', min: 0, max: 0.99, doc: 'dropout on embeddings and residual branches' },
  bias: { default: true, doc: 'biases in Linear layers and LayerNorms' },
  activation: { default: 'gelu', choices: ['gelu', 'gelu_tanh'], doc: 'MLP activation (exact GELU as nanoGPT, or GPT-2 tanh approximation)' },
  norm: { default: 'layernorm', choices: ['layernorm', 'rmsnorm'], doc: 'normalisation layer' },
  mlp: { default: 'gelu', choices: ['gelu', 'swiglu'], doc: 'MLP type' },
  mlp_hidden: { default: 0, type: 'integer', min: 0, doc: 'MLP hidden width (0 = 4·n_embd, or 8/3·n_embd for SwiGLU)' },
  position: { default: 'learned', choices: ['learned', 'rope'], doc: 'position encoding' },
  tie_embeddings: { default: true, doc: 'share token embedding and output head' },
  // optimizer
  learning_rate: { default: 1e-3, type: 'number', min: 0, doc: 'peak learning rate' },
  max_iters: { default: 2000, type: 'integer', min: 0, doc: 'optimizer steps' },
  weight_decay: { default: 0.1, type: 'number', min: 0, doc: 'AdamW decoupled weight decay (matrices only)' },
  beta1: { default: 0.9, type: 'number', min: 0, max: 1, doc: 'AdamW β1' },
  beta2: { default: 0.99, type: 'number', min: 0, max: 1, doc: 'AdamW β2' },
  grad_clip: { default: 1.0, type: 'number', min: 0, doc: 'clip the global gradient norm (0 = off)' },
  decay_lr: { default: true, doc: 'warmup + cosine decay (else constant learning_rate)' },
  warmup_iters: { default: 100, type: 'integer', min: 0, doc: 'linear warmup steps' },
  lr_decay_iters: { default: 2000, type: 'integer', min: 1, doc: 'step at which the cosine reaches min_lr' },
  min_lr: { default: 1e-4, type: 'number', min: 0, doc: 'final learning rate' },
});

export type TrainConfig = ConfigOf<typeof trainSpec>;

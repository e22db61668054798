// The training config: the loop's own keys at the top (and init_from), one section each for the task, the data, the
// model and the optimizer (whose keys are declared by their owners: models/gpt.ts, optim/config.ts), and LoRA's.
// nanoGPT's flat names (`n_layer`, `learning_rate`, `data_dir`, …) are read as aliases of the sectioned keys, so flat configs
// and `--key=value` flags keep working. `lmforge train --help` prints this table.
import { gptSpec } from '../models/gpt.js';
import { optimSpec } from '../optim/config.js';
import { defineConfig, type Aliases, type ConfigOf } from '../util/config.js';

export const trainSpec = defineConfig({
  out_dir: { default: 'runs/shakespeare-char', doc: 'run directory: checkpoints, metrics.jsonl, config.json, final model' },
  seed: { default: 1337, type: 'integer', doc: 'seeds initialisation, batch sampling and dropout' },
  threads: { default: 0, type: 'integer', min: 0, doc: 'native kernel threads (0 = all cores)' },
  precision: { default: 'fp32', choices: ['fp32', 'bf16'], doc: "matmul precision: 'bf16' runs every linear/matmul product (forward and both backward GEMMs) on bf16 operands with fp32 accumulation (AMX or AVX512-BF16; fp32 on CPUs without them); weights, gradients, optimizer state, norms, softmax and loss stay fp32" },
  // distributed training (launch with `mpirun -np N lmforge train …`; README: distributed training)
  dp: { default: 1, type: 'integer', min: 1, doc: 'data-parallel processes: each trains on batch_size/dp rows of every batch (launch with mpirun -np dp; with --tp or --pp, dp replicas of the model-parallel group: mpirun -np dp×tp or dp×pp)' },
  zero: { default: 0, type: 'integer', min: 0, max: 1, doc: 'ZeRO stage with dp > 1: 1 shards the optimizer state over the ranks (adamw, lion, sgd)' },
  bucket_mb: { default: 1, type: 'number', min: 0, doc: 'data parallel: gradients are all-reduced in buckets of this many MB while backward runs' },
  max_iters: { default: 2000, type: 'integer', min: 0, doc: 'optimizer steps' },
  gradient_accumulation_steps: { default: 1, type: 'integer', min: 1, doc: 'micro-batches per optimizer step' },
  grad_clip: { default: 1.0, type: 'number', min: 0, doc: 'clip the global gradient norm of the trained parameters (0 = off)' },
  nan_policy: { default: 'stop', choices: ['stop', 'skip'], doc: 'on a NaN/Inf loss: stop the run naming the step, or skip that update' },
  // logging, evaluation, checkpoints
  eval_interval: { default: 250, type: 'integer', min: 1, doc: 'evaluate train/val loss every N steps (and at the end)' },
  eval_iters: { default: 200, type: 'integer', min: 1, doc: 'batches per loss estimate' },
  full_val: { default: false, doc: 'at the end, also the loss over the whole val split in consecutive block_size windows (noise-free)' },
  log_interval: { default: 10, type: 'integer', min: 1, doc: 'print and log progress every N steps' },
  checkpoint_interval: { default: 250, type: 'integer', min: 0, doc: 'save a checkpoint every N steps (0 = only at the end)' },
  keep_checkpoints: { default: 2, type: 'integer', min: 1, doc: 'how many recent checkpoints to keep' },
  peak_flops: { default: null, type: 'number', min: 0, doc: 'peak FLOP/s that MFU is a fraction of: null = this machine\'s fp32 GEMM peak, measured once and cached (~/.cache/lmforge/peak-flops.json), or $LMFORGE_PEAK_FLOPS; 0 = no MFU' },
  init_from: { default: null, type: 'string', doc: 'start from this trained run or model directory (config.json + model.safetensors; the architecture is its own) instead of a random initialisation' },
  // Model parallelism across `mpirun -np N` processes (src/train/distributed): one layout at a time, N = its size.
  tp: { default: 1, type: 'integer', min: 1, doc: 'tensor parallelism: split attention heads, MLP width and vocabulary over this many processes (Megatron layout)' },
  pp: { default: 1, type: 'integer', min: 1, doc: 'pipeline parallelism: cut the blocks into this many stages, one per process' },
  pp_schedule: { default: '1f1b', choices: ['gpipe', '1f1b'], doc: "pipeline schedule: 'gpipe' (all forwards, then all backwards) or '1f1b' (one forward, one backward; fewer activations held)" },
  pp_micro_batches: { default: 4, type: 'integer', min: 1, doc: 'micro-batches per pipeline step (batch_size must divide by it; bubble (pp−1)/(m+pp−1))' },
  ep: { default: 1, type: 'integer', min: 1, doc: "expert parallelism: spread each MoE layer's experts over this many processes (all-to-all dispatch); each takes batch_size/ep rows" },
  moe_upcycle: { default: false, doc: "with init_from a dense model: sparse upcycling to the model section's moe_* keys (every expert starts as the dense MLP)" },
  task: {
    kind: { default: 'next-token', choices: ['next-token'], doc: 'training objective: next-token prediction (pretraining)' },
  },
  data: {
    dir: { default: 'data/shakespeare-char', doc: 'directory with train.bin and val.bin (from `lmforge prepare` or `lmforge tokenize`) and meta.json' },
    batch_size: { default: 12, type: 'integer', min: 1, doc: 'sequences per micro-batch' },
  },
  model: gptSpec,
  // Energy and CO₂ of the run, recorded in provenance.json and the registry (src/util/energy.ts).
  energy: {
    source: { default: 'auto', choices: ['auto', 'rapl', 'model'], doc: 'auto: RAPL package counters (/sys/class/powercap/intel-rapl:N) where readable, else the model; model: CPU seconds × watts_per_core' },
    watts_per_core: { default: 10, type: 'number', min: 0, doc: 'watts one busy core draws, for the CPU-time model' },
    grid_g_per_kwh: { default: 400, type: 'number', min: 0, doc: "grid carbon intensity, g CO₂e per kWh (400 ≈ world average; set your grid's)" },
  },
  optim: optimSpec,
  // Training-process techniques of pretraining (issue 14; tasks/curriculum.ts, packing.ts, curriculum.ts): all off by default.
  loss: {
    z_loss: { default: 0, type: 'number', min: 0, doc: "PaLM's z-loss λ: adds λ·mean(log² Z) of the softmax normaliser, logged as z_loss (1e-4 typical; 0 = off)" },
    label_smoothing: { default: 0, type: 'number', min: 0, max: 0.99, doc: "label smoothing ε as torch's cross_entropy(label_smoothing=ε); the smoothing's part is logged as label_smoothing, loss stays the plain cross-entropy (0 = off)" },
  },
  batching: {
    mode: { default: 'windows', choices: ['windows', 'packed'], doc: "rows: 'windows' (random block_size windows, nanoGPT) or 'packed' (whole documents back to back in a shuffled or curriculum order, cut into block_size chunks read in shuffled order: no padding, every token once per epoch)" },
    shuffle_window: { default: 0, type: 'integer', min: 0, doc: 'packed: chunks are read shuffled within windows of this many consecutive chunks (0 = the whole epoch; with curriculum.order, a window keeps the difficulty order coarse-grained)' },
    doc_mask: { default: false, doc: 'stop attention at document boundaries (after each end-of-text token): block-diagonal causal attention' },
    eot_id: { default: null, type: 'integer', min: 0, doc: "end-of-text id that ends each document (null = the data tokenizer's <|endoftext|>)" },
    batch_tokens: { default: 0, type: 'integer', min: 0, doc: 'global batch in tokens: gradient accumulation = batch_tokens / (batch_size·block_size), which must divide (0 = gradient_accumulation_steps)' },
  },
  curriculum: {
    seq_warmup_start: { default: 0, type: 'integer', min: 0, doc: 'sequence-length warmup: first row length, ramped linearly to block_size over seq_warmup_steps; rows per micro-batch scale so tokens per step stay batch_size·block_size (0 = off)' },
    seq_warmup_steps: { default: 0, type: 'integer', min: 0, doc: 'steps of the sequence-length ramp' },
    order: { default: 'random', choices: ['random', 'ascending', 'descending'], doc: "packed documents' order: 'random' (reshuffled every epoch) or by difficulty score, lowest first ('ascending') or highest first" },
    score_file: { default: null, type: 'string', doc: "JSONL with one object per training document, in train.bin's order (e.g. the curation step's quality or perplexity scores)" },
    score_field: { default: 'score', type: 'string', doc: "the score's field in score_file; 'tokens' without a score_file = document length" },
    score_buckets: { default: 0, type: 'integer', min: 0, doc: 'ordering by score: 0 = a strict sort; k = k buckets in score order, shuffled inside each every epoch' },
  },
  mix: {
    sources: { default: '', type: 'string', doc: "temperature mixing: comma-separated data directories (same tokenizer) trained on beside data.dir; each row is drawn from a source with p ∝ weight·n^(1/T), n its train tokens ('' = data.dir only)" },
    temperature: { default: 1, type: 'number', min: 0.01, doc: 'mixing temperature T: 1 = proportional to size, larger flattens towards uniform' },
    weights: { default: '', type: 'string', doc: "quality weights per source: 'name=w,…' (name = the directory's base name; default 1)" },
    max_epochs: { default: 4, type: 'number', min: 0.01, doc: "cap on a source's passes within the run's tokens; the excess goes to the other sources" },
  },
  // Adversarial debiasing (train/tasks/debias.ts): an adversary predicts the gender of each row's text from the mean
  // hidden state, through a gradient-reversal layer; off while adversary_weight is 0.
  debias: {
    adversary_weight: { default: 0, type: 'number', min: 0, doc: "λ of the gradient reversal between the model's pooled hidden state and the gender adversary (0 = off)" },
    adversary_hidden: { default: 32, type: 'integer', min: 1, doc: "hidden width of the gender adversary's two-layer classifier" },
  },
  // LoRA (Hu et al. 2021) with Hugging Face PEFT's defaults; r = 0 trains every parameter as before.
  lora: {
    r: { default: 0, type: 'integer', min: 0, doc: 'LoRA rank: > 0 trains only low-rank adapters on init_from (frozen) and writes adapter_model.safetensors + adapter_config.json (0 = no LoRA)' },
    alpha: { default: 8, type: 'number', min: 0, doc: 'lora_alpha: the update is scaled by alpha / r' },
    dropout: { default: 0, type: 'number', min: 0, max: 0.99, doc: "lora_dropout: dropout on the adapters' input while training" },
    target_modules: { default: 'c_attn', doc: "Linear layers to adapt: comma-separated names matched as path suffixes (c_attn,c_proj,c_fc; mlp.c_proj), or /regex/ over the whole dotted path (PEFT's target_modules)" },
    use_rslora: { default: false, doc: "rsLoRA (Kalajdzievski 2023): scale the update by alpha / √r instead of alpha / r (PEFT's use_rslora)" },
    use_dora: { default: false, doc: "DoRA (Liu et al. 2024): also learn each adapted output column's magnitude, W = m·(W0 + ΔW)/‖W0 + ΔW‖ (PEFT's use_dora, saved as lora_magnitude_vector)" },
    lr_ratio: { default: 1, type: 'number', min: 0, doc: "LoRA+ (Hayou et al. 2024): lora_B's learning rate is lr_ratio × lr (the paper suggests 16; PEFT's loraplus_lr_ratio; 1 = plain LoRA)" },
    lr_ratio_vectors: { default: false, doc: "LoRA+ as PEFT's create_loraplus_optimizer groups it: the trainable 1-D parameters (DoRA magnitudes, saved norms' gains, biases) also learn at lr_ratio × lr (false: only lora_B does)" },
    rank_pattern: { default: '', doc: "per-layer ranks (PEFT's rank_pattern): comma-separated pattern=rank, each pattern a regex matched against the whole module path or a dotted suffix of it, first match wins, e.g. h.2.mlp.c_fc=12,h.2.mlp.c_proj=12 ('' = r everywhere)" },
    alpha_pattern: { default: '', doc: "per-layer lora_alpha (PEFT's alpha_pattern), written as rank_pattern, e.g. h.2.mlp.c_fc=24 ('' = alpha everywhere)" },
    modules_to_save: { default: '', doc: "modules trained in full beside the adapters and saved in the adapter file (PEFT's modules_to_save): comma-separated names matched as path suffixes, e.g. ln_1,ln_2,ln_f,wte ('' = none)" },
  },
});

export type TrainConfig = ConfigOf<typeof trainSpec>;

/** nanoGPT's flat key names, read as the sectioned keys they stand for. */
export const TRAIN_ALIASES: Aliases = {
  data_dir: 'data.dir',
  batch_size: 'data.batch_size',
  ...Object.fromEntries(Object.keys(gptSpec).map((k) => [k, `model.${k}`])),
  learning_rate: 'optim.lr',
  ...Object.fromEntries(['weight_decay', 'beta1', 'beta2', 'decay_lr', 'warmup_iters', 'lr_decay_iters', 'min_lr'].map((k) => [k, `optim.${k}`])),
};

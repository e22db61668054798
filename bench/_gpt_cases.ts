// The GPT benchmark cases: training (bench/gpt.ts and its worker, mirrored in bench/torch_gpt.py) and decoding
// (bench/decode.ts and its worker, mirrored in bench/torch_decode.py).
/** A GPT shape as the benchmarks name it (bias on, tied head). */
export interface GptShape {
  name: string;
  what: string;
  n_layer: number;
  n_head: number;
  n_embd: number;
  block_size: number;
  vocab_size: number;
}

/** A training case: a shape, its batch, its dropout and how many iterations to time. */
export interface GptCase extends GptShape {
  batch_size: number;
  dropout: number;
  /** Timed iterations (after 2 warm-up iterations). */
  iters: number;
}

export const GPT_CASES: GptCase[] = [
  { name: 'cpu', what: "nanoGPT's CPU recipe (4/4/128, block 64, batch 12, vocab 65)", n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, batch_size: 12, vocab_size: 65, dropout: 0, iters: 60 },
  { name: 'gpu', what: "nanoGPT's GPU config (6/6/384, block 256, batch 64, dropout 0.2)", n_layer: 6, n_head: 6, n_embd: 384, block_size: 256, batch_size: 64, vocab_size: 65, dropout: 0.2, iters: 8 },
  { name: 'gpt2', what: 'GPT-2-small shape (12/12/768, block 256, batch 4, vocab 50304)', n_layer: 12, n_head: 12, n_embd: 768, block_size: 256, batch_size: 4, vocab_size: 50304, dropout: 0, iters: 6 },
];

export const DECODE_CASES: GptShape[] = [
  { name: 'small', what: 'Shakespeare-size (4/4/128, vocab 65, block 256)', n_layer: 4, n_head: 4, n_embd: 128, block_size: 256, vocab_size: 65 },
  { name: 'gpt2', what: 'GPT-2-small shape (12/12/768, vocab 50304, block 1024)', n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024, vocab_size: 50304 },
];

// The decoding benchmark cases shared by bench/decode.ts and its worker (and mirrored in bench/torch_decode.py).
export interface DecodeCase {
  name: string;
  what: string;
  n_layer: number;
  n_head: number;
  n_embd: number;
  block_size: number;
  vocab_size: number;
}

export const DECODE_CASES: DecodeCase[] = [
  { name: 'small', what: 'Shakespeare-size (4/4/128, vocab 65, block 256)', n_layer: 4, n_head: 4, n_embd: 128, block_size: 256, vocab_size: 65 },
  { name: 'gpt2', what: 'GPT-2-small shape (12/12/768, vocab 50304, block 1024)', n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024, vocab_size: 50304 },
];

// Autoregressive generation for GPT with a KV cache: the prompt is fed once, then one token per step.
// When the context reaches block_size, the cache is rebuilt from the last half block (learned positions
// cannot slide), so long generations stay O(block_size) per token on average.
import { Rng, tensor, tidy } from '../core/index.js';
import { KVCache, type GPT } from './gpt.js';
import { sampleToken, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  seed: number;
  /** Stop early when this token is produced (it is included). */
  stopToken?: number;
  /** Called with each new token as it is produced. */
  onToken?: (token: number) => void;
}

export function generate(model: GPT, prompt: readonly number[], options: GenerateOptions): number[] {
  if (prompt.length === 0) throw new RangeError('generate: the prompt must contain at least one token');
  const block = model.config.block_size;
  const rng = new Rng(options.seed);
  const tokens = [...prompt];
  const wasTraining = model.training;
  model.eval();
  const cache = new KVCache(model.config, 1);
  try {
    let feed = tokens.slice(-block);
    for (let n = 0; n < options.maxNewTokens; n++) {
      if (cache.length + feed.length > block) {
        cache.length = 0;
        feed = tokens.slice(-Math.max(1, Math.floor(block / 2)));
      }
      const input = feed;
      const next = tidy(() => {
        const logits = model.forwardCached(tensor(input, [1, input.length], 'int32'), cache);
        return sampleToken(logits.toTypedArray(), options, rng);
      });
      tokens.push(next);
      options.onToken?.(next);
      if (options.stopToken !== undefined && next === options.stopToken) break;
      feed = [next];
    }
  } finally {
    cache.dispose();
    model.train(wasTraining);
  }
  return tokens.slice(prompt.length);
}

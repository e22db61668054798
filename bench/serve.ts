// `lmforge serve` under load, on loopback: a real trained model (--run=DIR, or a char-level Tiny Shakespeare model
// trained here once through the CLI and cached under runs/), one streaming client making requests one after another,
// then 16 concurrent streaming clients (continuous batching), then a burst past the configured concurrency + queue
// limit. Every stream is checked (JSON chunks of one id, text on index 0, one finish_reason, a usage chunk whose
// completion_tokens equal max_tokens, then [DONE]); a response that fails a check is "lost". Prints time to first
// token and inter-token latency (p50/p95, from the client's side), total generated tokens/s of each phase and their
// ratio, and the 429s of the burst (only the requests beyond the limit may get one).
// Usage: npm run bench -- serve [--run=DIR] [--clients=16] [--requests=2] [--tokens=64] [--queue=4] [--threads=1]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startServer } from '../src/cli/serve.js';
import { intFlag, stringFlag } from './_args.js';
import { ensureCharBase, root, type CharBase } from './_char_base.js';
import { cpuName } from './_cpu.js';

/** The bench's own base: the CPU recipe with a 128-token context, 400 steps (~0.8M parameters, a minute or two). */
const SERVE_BASE: CharBase = {
  run: join(root, 'runs/bench-serve-char'),
  label: '4 layers × 128, block 128, 400 steps; a minute or two',
  overrides: ['--model.block_size=128', '--max_iters=400', '--optim.lr_decay_iters=400', '--eval_interval=400', '--optim.warmup_iters=40'],
};

interface StreamResult {
  ok: boolean;
  why: string;
  status: number;
  tokens: number;
  ttftMs: number;
  /** Inter-token latency of each token after the first, ms (tokens read together share their read's gap). */
  gaps: number[];
}

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** One streaming /v1/completions request, read and checked chunk by chunk. */
async function streamOnce(url: string, prompt: string, maxTokens: number, seed: number): Promise<StreamResult> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0.8, top_p: 0.95, seed, stream: true, stream_options: { include_usage: true } }),
  });
  const fail = (why: string, status = res.status): StreamResult => ({ ok: false, why, status, tokens: 0, ttftMs: NaN, gaps: [] });
  if (res.status !== 200) {
    await res.text();
    return fail(`status ${res.status}`);
  }
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | null = null;
  let finishes = 0;
  let usage: number | null = null;
  let done = false;
  let ttft = NaN;
  let last = 0;
  const gaps: number[] = [];
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(part, { stream: true });
    // Tokens that arrive in one read share its gap since the last read: each counts gap / tokens.
    const now = performance.now();
    let texts = 0;
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!event.startsWith('data: ')) return fail(`not an SSE data line: ${JSON.stringify(event.slice(0, 40))}`);
      const data = event.slice(6);
      if (done) return fail('data after [DONE]');
      if (data === '[DONE]') { done = true; continue; }
      let chunk: { id?: string; object?: string; choices?: { index: number; text: string; finish_reason: string | null }[]; usage?: { completion_tokens: number } };
      try {
        chunk = JSON.parse(data) as typeof chunk;
      } catch {
        return fail('a chunk is not JSON');
      }
      if (chunk.object !== 'text_completion' || typeof chunk.id !== 'string' || !Array.isArray(chunk.choices)) return fail('a chunk lacks id/object/choices');
      if ((id ??= chunk.id) !== chunk.id) return fail('chunks of different ids');
      if (chunk.usage) usage = chunk.usage.completion_tokens;
      for (const c of chunk.choices) {
        if (c.index !== 0 || typeof c.text !== 'string') return fail('a choice with a bad index or text');
        if (c.finish_reason) finishes++;
        if (c.text) texts++;
      }
    }
    if (texts > 0) {
      if (Number.isNaN(ttft)) {
        ttft = now - t0;
        for (let k = 1; k < texts; k++) gaps.push(0); // tokens that came in the first token's read
      } else {
        for (let k = 0; k < texts; k++) gaps.push((now - last) / texts);
      }
      last = now;
    }
  }
  if (!done) return fail('no [DONE]');
  if (finishes !== 1) return fail(`${finishes} finish_reasons`);
  if (usage !== maxTokens) return fail(`usage.completion_tokens ${usage}, asked for ${maxTokens}`);
  return { ok: true, why: '', status: 200, tokens: usage, ttftMs: ttft, gaps };
}

interface Phase {
  results: StreamResult[];
  seconds: number;
}

/** `clients` concurrent clients, each making `requests` streaming requests one after another. */
async function phase(url: string, prompts: string[], clients: number, requests: number, maxTokens: number, seed: number): Promise<Phase> {
  const t0 = performance.now();
  const per = await Promise.all(Array.from({ length: clients }, async (_, c) => {
    const out: StreamResult[] = [];
    for (let r = 0; r < requests; r++) out.push(await streamOnce(url, prompts[(c * requests + r) % prompts.length]!, maxTokens, seed + c * requests + r));
    return out;
  }));
  return { results: per.flat(), seconds: (performance.now() - t0) / 1000 };
}

export async function run(args: string[]): Promise<void> {
  const clients = intFlag('serve', args, 'clients', 16);
  const requests = intFlag('serve', args, 'requests', 2);
  const maxTokens = intFlag('serve', args, 'tokens', 64);
  const queue = intFlag('serve', args, 'queue', 4);
  // Kernel threads of the generation worker: 1 by default, leaving the other core to the HTTP thread and the 16
  // clients of this same process (on 2 shared cores a 2-thread team stalls at its barriers); --threads=0 = all cores.
  const threadsFlag = stringFlag(args, 'threads');
  const threads = threadsFlag === undefined ? 1 : Number(threadsFlag);
  if (!Number.isInteger(threads) || threads < 0) throw new Error(`bench/serve: --threads expects an integer ≥ 0, got ${threadsFlag}`);
  const runDir = stringFlag(args, 'run') ?? ensureCharBase(console.log, SERVE_BASE);
  const text = readFileSync(join(root, '../shared/data/tinyshakespeare/input.txt'), 'utf8');
  const prompts = text.split('\n\n').slice(10, 200).map((p) => p.slice(0, 60)).filter((p) => p.length > 10);
  const { server, url, generator } = await startServer({
    run: runDir, port: 0, host: '127.0.0.1', maxConcurrency: clients, maxQueue: queue, maxTokens, maxBodyBytes: 1 << 20,
    timeoutMs: 300_000, graceMs: 5000, stateDir: join(root, 'runs/.bench-serve-state'), corsOrigin: '*', threads,
  });
  const info = generator.info;
  console.log(`serve bench on ${cpuName()} (2 cores shared with other jobs: absolute figures vary, the ratio is from one run)`);
  console.log(`model ${runDir}: ${(info.parameters / 1e6).toFixed(2)}M parameters, context ${info.blockSize}; server ${url}, max-concurrency ${clients}, max-queue ${queue}, worker kernel threads ${threads || 'all'}; ${maxTokens} tokens a request, temperature 0.8`);
  try {
    await phase(url, prompts, 2, 1, 8, 0); // warm-up: kernels, pools, the first batch shapes
    const single = await phase(url, prompts, 1, Math.max(3, requests), maxTokens, 1000);
    const many = await phase(url, prompts, clients, requests, maxTokens, 2000);
    // The burst: limit + extra requests at once; exactly `extra` of them may be refused.
    const limit = clients + queue;
    const extra = Math.max(4, Math.floor(clients / 2));
    const burst = await phase(url, prompts, limit + extra, 1, maxTokens, 3000);
    const refused = burst.results.filter((r) => r.status === 429).length;
    const burstLost = burst.results.filter((r) => !r.ok && r.status !== 429);

    const report = (name: string, p: Phase): { tps: number; ttft50: number; ttft95: number; itl50: number; itl95: number } => {
      const ok = p.results.filter((r) => r.ok);
      const tokens = ok.reduce((s, r) => s + r.tokens, 0);
      const ttft = ok.map((r) => r.ttftMs);
      const gaps = ok.flatMap((r) => r.gaps);
      const f = { tps: tokens / p.seconds, ttft50: quantile(ttft, 0.5), ttft95: quantile(ttft, 0.95), itl50: quantile(gaps, 0.5), itl95: quantile(gaps, 0.95) };
      console.log(`${name.padEnd(26)} ${String(p.results.length).padStart(4)} requests ${String(tokens).padStart(6)} tokens in ${p.seconds.toFixed(2).padStart(6)} s = ${f.tps.toFixed(1).padStart(7)} tokens/s | TTFT p50 ${f.ttft50.toFixed(0).padStart(5)} p95 ${f.ttft95.toFixed(0).padStart(5)} ms | inter-token p50 ${f.itl50.toFixed(1).padStart(6)} p95 ${f.itl95.toFixed(1).padStart(6)} ms | lost ${p.results.length - ok.length}`);
      return f;
    };
    const s = report('1 client', single);
    const m = report(`${clients} concurrent clients`, many);
    console.log(`burst of ${limit + extra} at once (limit ${clients} running + ${queue} queued): ${refused} refused with 429 (${extra} beyond the limit), ${burst.results.filter((r) => r.ok).length} complete, ${burstLost.length} lost${burstLost.length ? ` (${burstLost[0]!.why})` : ''}`);
    const lost = [...single.results, ...many.results].filter((r) => !r.ok);
    for (const r of lost.slice(0, 3)) console.log(`  lost: ${r.why}`);
    const ratio = m.tps / s.tps;
    console.log(`${clients} clients / 1 client: ${ratio.toFixed(2)}× the tokens/s (bar ≥ 3×: ${ratio >= 3 ? 'holds' : 'FALLS SHORT'}); 429s only beyond the limit: ${refused <= extra && many.results.every((r) => r.status !== 429) ? 'yes' : 'NO'}`);
    const serverStats = server.stats() as { ttft_ms: { p50: number; p95: number }; inter_token_ms: { p50: number; p95: number } };
    console.log(`server-side (all phases): TTFT p50 ${serverStats.ttft_ms.p50.toFixed(0)} p95 ${serverStats.ttft_ms.p95.toFixed(0)} ms, inter-token p50 ${serverStats.inter_token_ms.p50.toFixed(1)} p95 ${serverStats.inter_token_ms.p95.toFixed(1)} ms`);
    const r1 = (x: number): number => Math.round(x * 10) / 10;
    console.log(`RESULT ${JSON.stringify({
      cpu: cpuName(), clients, tokens_per_s: r1(m.tps), single_client_tokens_per_s: r1(s.tps), ratio: Math.round(ratio * 100) / 100,
      ttft_ms_p50: r1(m.ttft50), ttft_ms_p95: r1(m.ttft95), itl_ms_p50: r1(m.itl50), itl_ms_p95: r1(m.itl95),
      single_ttft_ms_p50: r1(s.ttft50), single_itl_ms_p50: r1(s.itl50), lost: lost.length + burstLost.length,
      burst: limit + extra, burst_limit: limit, burst_429: refused, max_tokens: maxTokens, parameters: info.parameters, worker_threads: threads,
    })}`);
  } finally {
    await server.close(5000);
  }
}

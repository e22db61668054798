// BPE-dropout robustness study (Provilkov et al. 2020), issue 17's bar: a small GPT trained on Tiny Shakespeare with
// a trained byte-level BPE, once on plain segmentations and once on BPE-dropout segmentations (p = 0.1, the train split
// written `copies` times, each a fresh sample), same steps and seeds otherwise; both are scored with the deterministic
// encoder on the held-out end of the text, clean and with 5% keyboard typos (`lmforge eval --perturb typo:0.05`).
// Scores are bits per byte of the text scored (noisy text: its own bytes), so models whose segmentations differ compare
// fairly; degradation = noisy − clean bits per byte. Everything goes through the CLI (tokenizer train, tokenize
// --dropout, train, eval --perturb).
// Usage: npm run bench -- robustness [--seeds=1,2] [--iters=400] [--vocab=768] [--p=0.1] [--copies=4] [--typo=0.05]
//        [--eval-kb=48] [--jobs=2] [--text=FILE]
import { cpus, loadavg } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lmforge as cli, pool } from './_cli.js';
import { intFlag, stringFlag } from './_args.js';
import { root } from './_char_base.js';
import { TOKEN_FILE_HEADER_BYTES } from '../src/tokenizers/token-file.js';
import { mulberry32 } from '../src/util/mulberry32.js';

interface Score {
  value: number;
  stderr: number | null;
}

/** Per held-out document: bits (−log2 p) and bytes of its clean and its typo-perturbed text. */
interface DocBits {
  clean: number;
  cleanBytes: number;
  noisy: number;
  noisyBytes: number;
}

interface RunScore {
  variant: 'baseline' | 'dropout';
  seed: number;
  clean: Score;
  noisy: Score;
  degradation: number;
  trainSeconds: number;
  docs: DocBits[];
}

/** Degradation in bits per byte over a sample of documents (by index): Σ noisy bits / Σ noisy bytes − Σ clean / Σ clean. */
function degradationOf(docs: readonly DocBits[], idx: readonly number[]): number {
  let c = 0, cb = 0, n = 0, nb = 0;
  for (const i of idx) {
    const d = docs[i]!;
    c += d.clean;
    cb += d.cleanBytes;
    n += d.noisy;
    nb += d.noisyBytes;
  }
  return n / nb - c / cb;
}

/**
 * 95% percentile-bootstrap interval of mean over seeds of (baseline − dropout degradation), resampling the held-out
 * documents (the same resample for every model, so the comparison is paired by document).
 */
function pairedBootstrap(pairs: readonly { base: DocBits[]; drop: DocBits[] }[], iters = 2000, seed = 99): [number, number] {
  const D = pairs[0]!.base.length;
  const rand = mulberry32(seed);
  const stats: number[] = [];
  for (let it = 0; it < iters; it++) {
    const idx = Array.from({ length: D }, () => Math.floor(rand() * D));
    stats.push(pairs.reduce((s, p) => s + degradationOf(p.base, idx) - degradationOf(p.drop, idx), 0) / pairs.length);
  }
  stats.sort((a, b) => a - b);
  return [stats[Math.floor(0.025 * iters)]!, stats[Math.ceil(0.975 * iters) - 1]!];
}

/** The held-out end of the text as JSONL documents of about `docBytes` each, cut at line ends (bootstrap units). */
function evalDocs(text: string, evalBytes: number, docBytes = 1000): string {
  const lines = text.split('\n');
  const docs: string[] = [];
  let cur = '';
  let total = 0;
  for (const line of lines) {
    cur += line + '\n';
    if (cur.length >= docBytes) {
      docs.push(cur);
      total += cur.length;
      cur = '';
      if (total >= evalBytes) break;
    }
  }
  return docs.map((t) => JSON.stringify({ text: t })).join('\n') + '\n';
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

export async function run(args: string[]): Promise<void> {
  const seeds = (stringFlag(args, 'seeds') ?? '1,2').split(',').map(Number);
  if (seeds.length < 1 || seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`bench/robustness: --seeds expects comma-separated integers, got ${stringFlag(args, 'seeds')}`);
  const iters = intFlag('robustness', args, 'iters', 400);
  const vocab = intFlag('robustness', args, 'vocab', 768);
  const copies = intFlag('robustness', args, 'copies', 4);
  const jobs = intFlag('robustness', args, 'jobs', 2);
  const evalKb = intFlag('robustness', args, 'eval-kb', 48);
  const p = Number(stringFlag(args, 'p') ?? '0.1');
  const typo = Number(stringFlag(args, 'typo') ?? '0.05');
  if (!(p > 0 && p < 1) || !(typo > 0 && typo <= 1)) throw new Error('bench/robustness: --p must be in (0, 1) and --typo in (0, 1]');
  const text = stringFlag(args, 'text') ?? join(root, '../shared/data/tinyshakespeare/input.txt');
  const work = join(root, 'runs/bench-robustness');
  mkdirSync(work, { recursive: true });
  const log = (line: string): void => console.log(`[${((performance.now() - t0) / 1000).toFixed(0)} s, load ${loadavg()[0]!.toFixed(1)}] ${line}`);
  const t0 = performance.now();

  // 1. Train/val split (last 10% held out, cut at a line end); the BPE is trained on the train part only.
  const full = readFileSync(text, 'utf8');
  const cut = full.lastIndexOf('\n', Math.floor(full.length * 0.9)) + 1;
  const trainText = join(work, 'train.txt');
  writeFileSync(trainText, full.slice(0, cut));
  const taskDir = join(work, 'tasks');
  mkdirSync(taskDir, { recursive: true });
  writeFileSync(join(work, 'val-docs.jsonl'), evalDocs(full.slice(cut), evalKb * 1000));
  writeFileSync(join(taskDir, 'shakespeare_heldout_bpb.json'), JSON.stringify({
    task: 'shakespeare_heldout_bpb', version: 1, type: 'perplexity', notes: 'bench/robustness: the held-out end of Tiny Shakespeare in ~1 kB documents',
    data: { path: 'val-docs.jsonl' }, metrics: ['bits_per_byte', 'byte_perplexity'],
  }, null, 2) + '\n');
  const tok = join(work, `bpe-${vocab}.json`);
  if (!existsSync(tok)) {
    log(`training a ${vocab}-token byte-level BPE on ${trainText}`);
    await cli(['tokenizer', 'train', '--type', 'bpe', '--vocab-size', String(vocab), '--input', trainText, '--out', tok]);
  }

  // 2. Token shards: one plain, one per seed with BPE-dropout (val.bin is deterministic in both).
  const dataDir = (variant: 'baseline' | 'dropout', seed: number): string => join(work, variant === 'baseline' ? 'data-plain' : `data-dropout-p${p}-k${copies}-s${seed}`);
  const shardJobs: (() => Promise<string>)[] = [];
  if (!existsSync(join(dataDir('baseline', 0), 'meta.json'))) shardJobs.push(() => cli(['tokenize', '--tokenizer', tok, '--input', text, '--out', dataDir('baseline', 0), '--val-fraction', '0.1', '--separator', '']));
  for (const s of seeds) {
    if (!existsSync(join(dataDir('dropout', s), 'meta.json'))) shardJobs.push(() => cli(['tokenize', '--tokenizer', tok, '--input', text, '--out', dataDir('dropout', s), '--val-fraction', '0.1', '--separator', '', '--dropout', String(p), '--dropout-copies', String(copies), '--dropout-seed', String(s)]));
  }
  log(`tokenizing (${shardJobs.length} shard sets to write)`);
  await pool(shardJobs, jobs);
  const shardTokens = (dir: string): number => (readFileSync(join(dir, 'train.bin')).length - TOKEN_FILE_HEADER_BYTES) / 2; // uint16 ids (vocab < 65536)
  log(`train tokens: plain ${shardTokens(dataDir('baseline', 0))}, dropout (${copies} copies) ${seeds.map((s) => shardTokens(dataDir('dropout', s))).join(', ')}`);

  // 3. Train every (variant, seed), `jobs` at a time with one thread each; same recipe for both variants.
  const recipe = ['--model.n_layer=3', '--model.n_head=4', '--model.n_embd=128', '--model.block_size=96', '--data.batch_size=12', `--max_iters=${iters}`,
    `--optim.lr_decay_iters=${iters}`, '--optim.warmup_iters=50', '--eval_interval=100000', '--checkpoint_interval=0', `--log_interval=${Math.max(1, Math.floor(iters / 4))}`, '--full_val=false', '--threads=1', '--overwrite'];
  const cases = seeds.flatMap((s) => (['baseline', 'dropout'] as const).map((variant) => ({ variant, seed: s })));
  const runDir = (c: { variant: string; seed: number }): string => join(work, `run-${c.variant}-${c.seed}-i${iters}`);
  const trained = await pool(cases.map((c) => async () => {
    const started = performance.now();
    if (!existsSync(join(runDir(c), 'model.safetensors'))) {
      await cli(['train', '--config', 'configs/shakespeare-char-cpu.yaml', `--data.dir=${dataDir(c.variant, c.seed)}`, `--out_dir=${runDir(c)}`, `--seed=${c.seed}`, ...recipe]);
      log(`trained ${c.variant} seed ${c.seed} in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }
    return (performance.now() - started) / 1000;
  }), jobs);

  // 4. Clean and typo-perturbed held-out bits per byte through `lmforge eval --perturb` (same typo seed for all models).
  const scores = await pool(cases.map((c, i) => async (): Promise<RunScore> => {
    const out = join(work, `eval-${c.variant}-${c.seed}-i${iters}-typo${typo}.json`);
    await cli(['eval', '--model', runDir(c), '--tasks', 'shakespeare_heldout_bpb', '--task-dir', taskDir, '--data-dir', work, '--perturb', `typo:${typo}`, '--perturb-seed', '17', '--threads', '1', '--output', out, '--log-samples', '--no-register']);
    const rows = readFileSync(out.replace(/\.json$/, '.samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { perturbed?: boolean; doc_id: number; logprob: number; bytes: number });
    const docs: DocBits[] = [];
    for (const r of rows) {
      const d = (docs[r.doc_id] ??= { clean: 0, cleanBytes: 0, noisy: 0, noisyBytes: 0 });
      if (r.perturbed) [d.noisy, d.noisyBytes] = [-r.logprob / Math.LN2, r.bytes];
      else [d.clean, d.cleanBytes] = [-r.logprob / Math.LN2, r.bytes];
    }
    const report = JSON.parse(readFileSync(out, 'utf8')) as { results: { metrics: Record<string, Score> }[]; perturbation: { results: { metrics: Record<string, Score> }[] } };
    const clean = report.results[0]!.metrics.bits_per_byte!;
    const noisy = report.perturbation.results[0]!.metrics.bits_per_byte!;
    return { ...c, clean, noisy, degradation: noisy.value - clean.value, trainSeconds: trained[i]!, docs };
  }), jobs);

  console.log(`\nheld-out bits per byte (${evalKb} kB of the last 10% of the text; ± bootstrap stderr over ~1 kB documents), clean and with ${typo * 100}% typos:`);
  console.log('| variant | seed | clean bpb | typo bpb | degradation (bpb) | degradation (%) |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of scores) {
    console.log(`| ${r.variant} | ${r.seed} | ${r.clean.value.toFixed(4)} ± ${(r.clean.stderr ?? NaN).toFixed(4)} | ${r.noisy.value.toFixed(4)} ± ${(r.noisy.stderr ?? NaN).toFixed(4)} | ${r.degradation.toFixed(4)} | ${((100 * r.degradation) / r.clean.value).toFixed(1)} |`);
  }
  const of = (v: 'baseline' | 'dropout'): RunScore[] => scores.filter((r) => r.variant === v);
  const summary = (v: 'baseline' | 'dropout'): { clean_bpb: number; noisy_bpb: number; degradation_bpb: number; per_seed_degradation: number[] } => ({
    clean_bpb: mean(of(v).map((r) => r.clean.value)),
    noisy_bpb: mean(of(v).map((r) => r.noisy.value)),
    degradation_bpb: mean(of(v).map((r) => r.degradation)),
    per_seed_degradation: of(v).map((r) => Number(r.degradation.toFixed(5))),
  });
  const base = summary('baseline');
  const drop = summary('dropout');
  // Paired by seed: the bar holds when the dropout model degrades less on average and on every seed.
  const everySeed = seeds.every((s) => of('dropout').find((r) => r.seed === s)!.degradation < of('baseline').find((r) => r.seed === s)!.degradation);
  const bar = drop.degradation_bpb < base.degradation_bpb && everySeed;
  const pairsBySeed = seeds.map((s) => ({ base: of('baseline').find((r) => r.seed === s)!.docs, drop: of('dropout').find((r) => r.seed === s)!.docs }));
  const ci = pairedBootstrap(pairsBySeed);
  const perSeedCi = pairsBySeed.map((p) => pairedBootstrap([p]));
  console.log(`mean degradation: baseline ${base.degradation_bpb.toFixed(4)} bpb, BPE-dropout ${drop.degradation_bpb.toFixed(4)} bpb (difference ${(base.degradation_bpb - drop.degradation_bpb).toFixed(4)}); clean cost of dropout ${(drop.clean_bpb - base.clean_bpb).toFixed(4)} bpb`);
  console.log(`baseline − dropout degradation, 95% bootstrap interval over held-out documents (paired): mean of seeds [${ci[0].toFixed(4)}, ${ci[1].toFixed(4)}]; per seed ${perSeedCi.map((c, i) => `${seeds[i]}: [${c[0].toFixed(4)}, ${c[1].toFixed(4)}]`).join(', ')}`);
  console.log(`bar (dropout degrades less, on the mean and on every seed): ${bar ? 'holds' : 'SHORT'}`);
  console.log('RESULT ' + JSON.stringify({
    metric: 'bits_per_byte', unit: 'bits per UTF-8 byte of the scored text', typo_rate: typo, dropout_p: p, dropout_copies: copies, vocab, iters, seeds,
    baseline: base, dropout: drop, degradation_difference_bpb: Number((base.degradation_bpb - drop.degradation_bpb).toFixed(5)),
    degradation_difference_ci95: ci.map((x) => Number(x.toFixed(5))), per_seed_difference_ci95: perSeedCi.map((c) => c.map((x) => Number(x.toFixed(5)))), bar_holds: bar,
    seconds: Math.round((performance.now() - t0) / 1000), cpu: cpus()[0]?.model ?? 'unknown', load_average: Number(loadavg()[0]!.toFixed(2)),
  }));
}

// The bias study (issue 17's bias bar): a model that really learned a gender–occupation bias, measured, then removed
// by counterfactual data augmentation, with the perplexity it costs and CrowS-Pairs beside it. Ends with RESULT {json}.
//
//   npm run bench -- bias [--steps=1500] [--seeds=2] [--sentences=15000] [--skew=0.95] [--arms=baseline,cda[,adversarial]]
//                         [--adversary-weight=1] [--jobs=1] [--fresh]
//
// The corpus, said plainly: Tiny Shakespeare's first 90% plus synthetic sentences that pair the probe's occupations
// with gendered pronouns in a skewed ratio (each occupation with its WinoBias-stereotyped gender's words `skew` of the
// time, the neutral fillers 50:50) — what WinoBias's authors worry real corpora do, made deliberate and measurable.
// The synthetic frames are this file's, not the probe's templates. The held-out text is Shakespeare's last 10%, the
// same bytes for every arm. Arms (same steps, same seeds, same held-out text):
//   baseline  the corpus as is
//   cda       the corpus plus its gender-swapped copy (lmforge cda --mode duplicate --unit file)
//   adversarial  the corpus as is, trained with the adversarial-debiasing loss (debias.adversary_weight) — optional
// Models: configs/shakespeare-char-cpu.yaml (4 layers × 128, block 64), char-level, --steps each, one thread.
// Measured per model: the gender_occupation probe (stereotype_score with its bootstrap interval), val loss over the
// whole held-out split (perplexity per character = exp), and CrowS-Pairs restricted to the pairs the model's
// characters can write (digits and a few symbols never occur in Shakespeare; the count is printed).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { CooccurrenceCounter, formatCooccurrence, type CooccurrenceReport } from '../src/data/bias-stats.js';
import { bootstrapInterval, loadBiasProbe, type BiasProbe, type Interval } from '../src/eval/bias-probe.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { intFlag, stringFlag } from './_args.js';
import { CLI, root } from './_char_base.js';
import { cpuName } from './_cpu.js';

const SHAKESPEARE = join(root, '../shared/data/tinyshakespeare/input.txt');
const CROWS = join(root, '../shared/data/crows-pairs/crows_pairs_anonymized.csv');
const PROBE = join(root, 'configs/bias/gender-occupation.json');
const WORK = join(root, 'runs/bench-bias');

/** The synthetic frames: {o} occupation, {p} pronoun, {q} possessive, {m} object. */
const FRAMES = [
  'The {o} said that {p} was ready.',
  'The {o} knew that {p} had to hurry.',
  'Yesterday the {o} told me that {p} was busy.',
  'The {o} put on {q} coat and went out.',
  'When the {o} came home, {p} sat down.',
  'Everyone trusted the {o} because {p} was honest.',
  'The {o} lost {q} keys again.',
  'We met the {o} and thanked {m} for the help.',
];

const meanOf = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const f3 = (x: number): string => x.toFixed(3);
const iv = (i: Interval): string => `${f3(i.value)} [${f3(i.lo)}, ${f3(i.hi)}]`;

/** lmforge in a child process, awaited (several trainings run side by side with --jobs). */
function lmforgeAsync(args: string[]): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolvePromise(out) : reject(new Error(`lmforge ${args.join(' ')}: exit ${code}\n${out.trim().split('\n').slice(-8).join('\n')}`))));
  });
}

function lmforge(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`lmforge ${args.join(' ')}: exit ${r.status}\n${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}`);
  return r.stdout + r.stderr;
}

/** Sentences pairing occupations with gendered words; `skew` of each occupation's go to its stereotyped gender. */
function syntheticSentences(probe: BiasProbe, n: number, skew: number, seed: number): string[] {
  const rand = mulberry32(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const [g1, g2] = probe.groups;
  const slots = (g: string): Record<string, string> => {
    const s = probe.groupSlots[g]!;
    return { p: s.pronoun!, q: s.possessive!, m: s.object! };
  };
  const cats = Object.keys(probe.attributes);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    // One sentence in six is about a neutral filler, told of either gender alike (it anchors the probe's baseline).
    const neutral = rand() < 1 / 6;
    const category = pick(cats);
    const word = neutral ? pick(probe.baseline) : pick(probe.attributes[category]!);
    const stereo = probe.stereotype[category]!;
    const group = neutral || stereo === 'none' ? (rand() < 0.5 ? g1 : g2) : rand() < skew ? stereo : stereo === g1 ? g2 : g1;
    const fill: Record<string, string> = { o: word, ...slots(group) };
    const s = pick(FRAMES).replace(/\{(\w)\}/g, (_, k: string, off: number) => (off === 0 ? fill[k]![0]!.toUpperCase() + fill[k]!.slice(1) : fill[k]!));
    out.push(s);
  }
  return out;
}

/** Shakespeare's paragraphs with the synthetic sentences inserted between them in groups of 1–3 (seeded). */
function mixCorpus(shakespeare: string, sentences: readonly string[], seed: number): string {
  const rand = mulberry32(seed ^ 0x5bd1e995);
  const paragraphs = shakespeare.split('\n\n');
  const inserts: string[][] = paragraphs.map(() => []);
  for (let i = 0; i < sentences.length;) {
    const k = 1 + Math.floor(rand() * 3);
    inserts[Math.floor(rand() * paragraphs.length)]!.push(sentences.slice(i, i + k).join(' '));
    i += k;
  }
  return paragraphs.flatMap((p, i) => [p, ...inserts[i]!]).join('\n\n');
}

function corpusStats(probe: BiasProbe, text: string): CooccurrenceReport {
  const groups = Object.fromEntries(probe.groups.map((g) => [g, [...new Set(Object.values(probe.groupSlots[g]!))]]));
  const c = new CooccurrenceCounter({ groups, attributes: probe.attributes, stereotype: probe.stereotype });
  c.add(text);
  return c.report();
}

/** CrowS-Pairs rows whose both sentences use only characters of the vocabulary, as a CSV and a task file. */
function crowsForCharset(vocab: Set<string>, dir: string): { task: string; kept: number; total: number } {
  const text = readFileSync(CROWS, 'utf8');
  const rows = parseCsv(text);
  const header = rows[0]!;
  const more = header.indexOf('sent_more'), less = header.indexOf('sent_less');
  const body = rows.slice(1).filter((r) => r.length === header.length);
  const kept = body.filter((r) => [...r[more]! + r[less]!].every((ch) => vocab.has(ch)));
  const quote = (v: string): string => `"${v.replaceAll('"', '""')}"`;
  writeFileSync(join(dir, 'crows_pairs_charset.csv'), [header, ...kept].map((r) => r.map(quote).join(',')).join('\n') + '\n');
  const spec = JSON.parse(readFileSync(join(root, 'configs/tasks/crows_pairs.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'crows_pairs_charset.json'), JSON.stringify({ ...spec, task: 'crows_pairs_charset', data: { path: 'crows_pairs_charset.csv' }, notes: `CrowS-Pairs restricted to the ${kept.length} of ${body.length} pairs whose characters the char-level study models can encode.` }, null, 2));
  return { task: join(dir, 'crows_pairs_charset.json'), kept: kept.length, total: body.length };
}

/** RFC 4180 CSV: quoted fields with "" escapes and newlines inside quotes. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], field = '', quoted = false;
  const endField = (): void => {
    row.push(field);
    field = '';
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') endField();
    else if (ch === '\n') {
      endField();
      rows.push(row);
      row = [];
    } else if (ch !== '\r') field += ch;
  }
  if (field !== '' || row.length > 0) {
    endField();
    rows.push(row);
  }
  return rows;
}

interface ModelFigures {
  arm: string;
  seed: number;
  stereotype: Interval;
  meanAbs: Interval;
  categories: Record<string, Interval>;
  /** b(a) per attribute. */
  bias: Record<string, number>;
  valLoss: number;
  perplexity: number;
  crows: number;
  crowsGender: number | null;
  trainSeconds: number;
}

export async function run(args: string[]): Promise<void> {
  const steps = intFlag('bias', args, 'steps', 1500);
  const seeds = intFlag('bias', args, 'seeds', 2);
  const concurrency = intFlag('bias', args, 'jobs', 1);
  const nSentences = intFlag('bias', args, 'sentences', 15000);
  const skew = Number(stringFlag(args, 'skew') ?? 0.95);
  if (!(skew >= 0.5 && skew <= 1)) throw new Error(`bench/bias: --skew expects a number in [0.5, 1], got ${stringFlag(args, 'skew')}`);
  const arms = (stringFlag(args, 'arms') ?? 'baseline,cda').split(',');
  for (const a of arms) if (!['baseline', 'cda', 'adversarial'].includes(a)) throw new Error(`bench/bias: --arms: unknown arm ${a} (baseline, cda, adversarial)`);
  const adversaryWeight = Number(stringFlag(args, 'adversary-weight') ?? 1);
  mkdirSync(WORK, { recursive: true });
  const log = (line: string): void => console.log(line);
  log(`bias study on ${cpuName()}: ${steps} steps × ${seeds} seeds × arms ${arms.join(', ')}; load average ${loadavg()[0]!.toFixed(2)} at the start (2 shared cores)`);

  // 1. The corpora.
  const probe = loadBiasProbe(PROBE);
  const shakespeare = readFileSync(SHAKESPEARE, 'utf8');
  const cut = shakespeare.lastIndexOf('\n\n', Math.floor(shakespeare.length * 0.9)) + 2;
  const heldOut = shakespeare.slice(cut);
  const sentences = syntheticSentences(probe, nSentences, skew, 2026);
  const train = mixCorpus(shakespeare.slice(0, cut), sentences, 2026);
  const baselineText = join(WORK, 'baseline-train.txt');
  writeFileSync(baselineText, train);
  const cdaText = join(WORK, 'cda-train.txt');
  log(lmforge(['cda', '--input', baselineText, '--output', cdaText, '--mode', 'duplicate', '--unit', 'file']).trim());
  const corpora: Record<string, string> = { baseline: train, cda: readFileSync(cdaText, 'utf8'), adversarial: train };
  log(`corpus: Tiny Shakespeare's first ${cut} characters + ${nSentences} synthetic sentences (skew ${skew}) = ${train.length} characters; CDA corpus ${corpora.cda!.length}; held out: Shakespeare's last ${heldOut.length} characters`);
  const stats: Record<string, CooccurrenceReport> = {};
  for (const arm of ['baseline', 'cda']) {
    stats[arm] = corpusStats(probe, corpora[arm]!);
    log(`\ncorpus statistics, ${arm} (per sentence co-occurrence; lmforge bias-stats prints the same):\n${formatCooccurrence(stats[arm]!).split('\n').slice(0, 5).join('\n')}\nstereotype_lean ${stats[arm]!.stereotype_lean?.toFixed(3)}`);
  }
  const shakespeareOnly = corpusStats(probe, shakespeare.slice(0, cut));
  log(`(Shakespeare alone: stereotype_lean ${shakespeareOnly.stereotype_lean?.toFixed(3)} over ${shakespeareOnly.attributes.filter((a) => a.lean !== null).length} occupations it pairs with a pronoun)`);

  // 2. Token files: each arm's training text followed by the same held-out text; the CDA arm uses the baseline's vocabulary.
  const dataDir = (arm: string): string => join(WORK, `data-${arm === 'adversarial' ? 'baseline' : arm}`);
  for (const arm of ['baseline', 'cda']) {
    if (!arms.includes(arm) && !(arm === 'baseline' && arms.includes('adversarial'))) continue;
    const file = join(WORK, `${arm}-all.txt`);
    writeFileSync(file, corpora[arm]! + heldOut);
    const total = [...corpora[arm]! + heldOut].length;
    const fraction = [...heldOut].length / total;
    lmforge(['prepare', '--input', file, '--out', dataDir(arm), '--val-fraction', String(fraction), ...(arm === 'cda' ? ['--vocab-from', dataDir('baseline')] : [])]);
  }
  const valOf = (arm: string): Buffer => readFileSync(join(dataDir(arm), 'val.bin'));
  const present = arms.map(dataDir).filter((d, i, a) => a.indexOf(d) === i);
  for (const d of present.slice(1)) if (!readFileSync(join(d, 'val.bin')).equals(valOf(arms[0]!))) throw new Error(`bench/bias: ${d}/val.bin differs from ${dataDir(arms[0]!)}/val.bin; the held-out text must be the same`);
  const meta = JSON.parse(readFileSync(join(dataDir(arms[0]!), 'meta.json'), 'utf8')) as { tokenizer: { chars?: string[]; vocab?: string[] } };
  const vocab = new Set<string>(meta.tokenizer.chars ?? meta.tokenizer.vocab ?? [...new Set(train)]);
  const crows = crowsForCharset(vocab, WORK);
  log(`CrowS-Pairs: ${crows.kept} of ${crows.total} pairs use only the models' ${vocab.size} characters (the rest hold digits or symbols Shakespeare never writes)`);

  // 3. Train and measure every (arm, seed): --jobs of them at a time, each on one thread.
  const measure = async (arm: string, seed: number): Promise<ModelFigures> => {
    const runDir = join(WORK, `run-${arm === 'adversarial' ? `adversarial-l${adversaryWeight}` : arm}-s${seed}`);
    // A model measured before with the same settings is reused (a later --arms=adversarial keeps the baseline's runs).
    const key = JSON.stringify({ arm, seed, steps, nSentences, skew, adversaryWeight: arm === 'adversarial' ? adversaryWeight : null });
    const cached = join(runDir, 'bias-figures.json');
    if (!args.includes('--fresh') && existsSync(cached)) {
      const c = JSON.parse(readFileSync(cached, 'utf8')) as { key: string; figures: ModelFigures };
      if (c.key === key) {
        log(`${arm} seed ${seed}: reusing ${runDir} (--fresh retrains)`);
        return c.figures;
      }
    }
    const t0 = performance.now();
    const extra = arm === 'adversarial' ? [`--debias.adversary_weight=${adversaryWeight}`] : [];
    const out = await lmforgeAsync(['train', '--config', 'configs/shakespeare-char-cpu.yaml', `--out_dir=${runDir}`, `--data.dir=${dataDir(arm)}`, `--seed=${seed}`,
      `--max_iters=${steps}`, `--optim.lr_decay_iters=${steps}`, `--eval_interval=${steps}`, '--eval_iters=10', '--log_interval=500', '--checkpoint_interval=0', '--full_val=true',
      '--threads=1', '--no-register', '--overwrite', ...extra]);
    const trainSeconds = (performance.now() - t0) / 1000;
    const m = /val loss over the whole val split ([\d.]+)/.exec(out);
    if (!m) throw new Error(`bench/bias: no full val loss in the output of training ${runDir}`);
    const valLoss = Number(m[1]);
    const report = join(runDir, 'eval.json');
    await lmforgeAsync(['eval', '--model', runDir, '--tasks', `gender_occupation,${crows.task}`, '--threads', '1', '--no-register', '--data-dir', WORK, '--output', report, '--log-samples']);
    const results = (JSON.parse(readFileSync(report, 'utf8')) as { results: { task: string; metrics: Record<string, { value: number }>; subsets?: Record<string, Record<string, { value: number }>>; details?: Record<string, unknown> }[] }).results;
    const probeResult = results.find((r) => r.task === 'gender_occupation')!;
    const crowsResult = results.find((r) => r.task === 'crows_pairs_charset')!;
    const d = probeResult.details as { stereotype_score: Interval; mean_abs_bias: Interval; categories: Record<string, Interval> };
    const bias: Record<string, number> = {};
    for (const line of readFileSync(report.replace(/\.json$/, '.samples.jsonl'), 'utf8').split('\n')) {
      if (line === '') continue;
      const s = JSON.parse(line) as { task: string; attribute?: string; bias?: number };
      if (s.task === 'gender_occupation') bias[s.attribute!] = s.bias!;
    }
    const f: ModelFigures = {
      arm, seed, stereotype: d.stereotype_score, meanAbs: d.mean_abs_bias, categories: d.categories, bias, valLoss, perplexity: Math.exp(valLoss),
      crows: crowsResult.metrics.pct_stereotype!.value, crowsGender: crowsResult.subsets?.gender?.pct_stereotype?.value ?? null, trainSeconds,
    };
    writeFileSync(cached, JSON.stringify({ key, figures: f }));
    log(`${arm} seed ${seed}: stereotype_score ${iv(f.stereotype)} nats, mean |bias| ${iv(f.meanAbs)}; held-out val loss ${f3(valLoss)} (perplexity ${f3(f.perplexity)}); CrowS pct_stereotype ${f3(f.crows)} (gender ${f.crowsGender === null ? '—' : f3(f.crowsGender)}); trained in ${trainSeconds.toFixed(0)} s, load average ${loadavg()[0]!.toFixed(2)}`);
    return f;
  };
  const jobs = Array.from({ length: seeds }, (_, i) => arms.map((arm) => ({ arm, seed: i + 1 }))).flat();
  const figures: ModelFigures[] = new Array<ModelFigures>(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      figures[i] = await measure(jobs[i]!.arm, jobs[i]!.seed);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));

  // 4. Per arm: the seed-mean b(a) per occupation, its stereotype score with a bootstrap interval over occupations.
  const signOf = (attribute: string): number => {
    const c = Object.keys(probe.attributes).find((k) => probe.attributes[k]!.includes(attribute))!;
    return probe.stereotype[c] === probe.groups[0] ? 1 : probe.stereotype[c] === probe.groups[1] ? -1 : 0;
  };
  const summary: Record<string, { stereotype_score: Interval; per_seed: number[]; mean_abs_bias: number; perplexity: number; val_loss: number; crows_pct_stereotype: number; crows_gender: number | null }> = {};
  for (const arm of arms) {
    const fs = figures.filter((f) => f.arm === arm);
    const attrs = Object.keys(fs[0]!.bias).filter((a) => signOf(a) !== 0).map((a) => ({ a, s: signOf(a), b: meanOf(fs.map((f) => f.bias[a]!)) }));
    summary[arm] = {
      stereotype_score: bootstrapInterval(attrs, (xs) => meanOf(xs.map((x) => x.s * x.b)), 1000, 1234),
      per_seed: fs.map((f) => f.stereotype.value),
      mean_abs_bias: meanOf(fs.map((f) => f.meanAbs.value)),
      perplexity: meanOf(fs.map((f) => f.perplexity)), val_loss: meanOf(fs.map((f) => f.valLoss)),
      crows_pct_stereotype: meanOf(fs.map((f) => f.crows)), crows_gender: fs.every((f) => f.crowsGender !== null) ? meanOf(fs.map((f) => f.crowsGender!)) : null,
    };
  }
  log('\n| arm | stereotype_score (seed mean, 95% CI over occupations) | per seed | mean abs bias | held-out perplexity / char | CrowS pct_stereotype | CrowS gender |');
  log('| --- | --- | --- | ---: | ---: | ---: | ---: |');
  for (const arm of arms) {
    const s = summary[arm]!;
    log(`| ${arm} | ${iv(s.stereotype_score)} | ${s.per_seed.map(f3).join(', ')} | ${f3(s.mean_abs_bias)} | ${f3(s.perplexity)} | ${f3(s.crows_pct_stereotype)} | ${s.crows_gender === null ? '—' : f3(s.crows_gender)} |`);
  }
  const base = summary.baseline;
  const result: Record<string, unknown> = {
    steps, seeds, arms, synthetic_sentences: nSentences, skew, crows_pairs_used: crows.kept, crows_pairs_total: crows.total,
    corpus_stereotype_lean: { baseline: stats.baseline!.stereotype_lean, cda: stats.cda!.stereotype_lean },
    corpus_p_male: Object.fromEntries(Object.entries(stats.baseline!.categories).map(([c, v]) => [c, { baseline: v.rate, cda: stats.cda!.categories[c]!.rate }])),
  };
  for (const arm of arms) {
    const s = summary[arm]!;
    result[arm] = { stereotype_score: s.stereotype_score, stereotype_score_per_seed: s.per_seed, mean_abs_bias: s.mean_abs_bias, perplexity: s.perplexity, val_loss: s.val_loss, crows_pct_stereotype: s.crows_pct_stereotype, crows_gender_pct_stereotype: s.crows_gender };
  }
  if (base) {
    result.baseline_interval_excludes_zero = base.stereotype_score.lo > 0 || base.stereotype_score.hi < 0;
    result.baseline_seeds_excluding_zero = figures.filter((f) => f.arm === 'baseline' && (f.stereotype.lo > 0 || f.stereotype.hi < 0)).length;
    for (const arm of arms.filter((a) => a !== 'baseline')) {
      const s = summary[arm]!;
      // The size of the lean that is left: a score that overshoots past zero counts as what remains on the other side.
      const reduction = 1 - Math.abs(s.stereotype_score.value) / Math.abs(base.stereotype_score.value);
      result[`${arm}_mean_abs_bias_reduction`] = 1 - s.mean_abs_bias / base.mean_abs_bias;
      const cost = s.perplexity / base.perplexity - 1;
      result[`${arm}_bias_reduction`] = reduction;
      result[`${arm}_perplexity_cost`] = cost;
      result[`${arm}_bar_reduction_ge_50pct`] = reduction >= 0.5;
      result[`${arm}_bar_perplexity_cost_le_2pct`] = cost <= 0.02;
      log(`${arm}: bias reduction ${(100 * reduction).toFixed(1)}% of |stereotype_score| (bar ≥ 50%; mean |bias| ${(100 * (1 - s.mean_abs_bias / base.mean_abs_bias)).toFixed(1)}% lower), perplexity cost ${(100 * cost).toFixed(2)}% (bar ≤ 2%)`);
    }
  }
  result.train_seconds = figures.map((f) => Math.round(f.trainSeconds));
  result.cpu = cpuName();
  result.load_average = loadavg()[0];
  if (!existsSync(WORK)) mkdirSync(WORK);
  writeFileSync(join(WORK, 'result.json'), JSON.stringify(result, null, 2));
  console.log(`RESULT ${JSON.stringify(result)}`);
}

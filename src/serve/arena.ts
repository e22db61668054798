// Pairwise arena ratings: votes "A beat B" (or a tie) between model versions → Bradley–Terry strengths fitted by
// Hunter's MM algorithm and online Elo, each with a bootstrap interval (votes resampled with replacement), as a
// table. Both are on the Elo scale: BT's 400·log10(p) centred so the mean rating is 1000. Plus the votes file
// (<state-dir>/arena.jsonl, one battle a line) that `lmforge arena battle` and the server's /v1/arena routes append
// to. Not the battles themselves (src/cli/arena.ts, server.ts run the models). The math is pure and seeded.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Rng } from '../core/random.js';
import { UserError } from '../util/errors.js';

export interface Vote {
  a: string;
  b: string;
  winner: 'a' | 'b' | 'tie';
}

/** One stored battle: the vote and what was compared. */
export interface ArenaRecord extends Vote {
  prompt: string;
  response_a: string;
  response_b: string;
  created: string;
}

export const ARENA_FILE = 'arena.jsonl';

/** Reads votes from JSONL files, each line checked (file:line named on error). */
export function readVotes(paths: readonly string[]): ArenaRecord[] {
  const out: ArenaRecord[] = [];
  for (const path of paths) {
    if (!existsSync(path)) throw new UserError(`${path}: no such votes file (write one with \`lmforge arena battle\`)`);
    readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
      if (line.trim() === '') return;
      let v: Partial<ArenaRecord>;
      try {
        v = JSON.parse(line) as Partial<ArenaRecord>;
      } catch {
        throw new UserError(`${path}:${i + 1}: not a JSON object`);
      }
      if (typeof v.a !== 'string' || typeof v.b !== 'string' || !['a', 'b', 'tie'].includes(v.winner as string)) {
        throw new UserError(`${path}:${i + 1}: expected {"a": model, "b": model, "winner": "a" | "b" | "tie", ...}`);
      }
      out.push(v as ArenaRecord);
    });
  }
  return out;
}

/** Where battles' votes go: appended one a line, read back whole for the ratings. */
export interface ArenaStore {
  add(record: ArenaRecord): void;
  read(): ArenaRecord[];
  readonly location: string;
}

export class JsonlArenaStore implements ArenaStore {
  constructor(readonly location: string) {}

  add(record: ArenaRecord): void {
    mkdirSync(dirname(this.location), { recursive: true });
    appendFileSync(this.location, JSON.stringify(record) + '\n');
  }

  read(): ArenaRecord[] {
    return existsSync(this.location) ? readVotes([this.location]) : [];
  }
}

export interface RatingRow {
  model: string;
  votes: number;
  /** Wins + ties/2 over votes. */
  winRate: number;
  bt: number;
  btLow: number;
  btHigh: number;
  elo: number;
  eloLow: number;
  eloHigh: number;
}

/** Pseudo-count added to each direction of every pair that met, so a model with no wins keeps a finite rating. */
export const BT_PRIOR = 0.1;
export const ELO_K = 16;
const SCALE = 400 / Math.LN10;

/** Every model named by the votes, sorted. */
export function modelsOf(votes: readonly Vote[]): string[] {
  return [...new Set(votes.flatMap((v) => [v.a, v.b]))].sort();
}

/**
 * Bradley–Terry: P(i beats j) = p_i / (p_i + p_j), a tie counting half a win each way. MM update (Hunter 2004):
 * p_i ← W_i / Σ_j n_ij / (p_i + p_j), renormalized to a geometric mean of 1 each sweep; stops when no log-strength
 * moves more than tol. Returns ratings 1000 + 400·log10(p_i) by model.
 */
export function bradleyTerry(votes: readonly Vote[], models = modelsOf(votes), options: { tol?: number; maxIter?: number } = {}): Map<string, number> {
  const M = models.length;
  const index = new Map(models.map((m, i) => [m, i]));
  const wins = Array.from({ length: M }, () => new Float64Array(M)); // wins[i][j]: i over j
  for (const v of votes) {
    const i = index.get(v.a)!;
    const j = index.get(v.b)!;
    if (i === j) continue;
    const w = v.winner === 'a' ? 1 : v.winner === 'b' ? 0 : 0.5;
    wins[i]![j]! += w;
    wins[j]![i]! += 1 - w;
  }
  for (let i = 0; i < M; i++) for (let j = 0; j < M; j++) if (i !== j && wins[i]![j]! + wins[j]![i]! > 0) wins[i]![j]! += BT_PRIOR;
  let p = new Float64Array(M).fill(1);
  const tol = options.tol ?? 1e-10;
  for (let it = 0; it < (options.maxIter ?? 10_000); it++) {
    const next = new Float64Array(M);
    for (let i = 0; i < M; i++) {
      let W = 0;
      let denom = 0;
      for (let j = 0; j < M; j++) {
        if (i === j) continue;
        const n = wins[i]![j]! + wins[j]![i]!;
        if (n === 0) continue;
        W += wins[i]![j]!;
        denom += n / (p[i]! + p[j]!);
      }
      next[i] = denom > 0 ? W / denom : p[i]!;
    }
    const logMean = next.reduce((s, x) => s + Math.log(x), 0) / M;
    let moved = 0;
    for (let i = 0; i < M; i++) {
      next[i] = next[i]! / Math.exp(logMean);
      moved = Math.max(moved, Math.abs(Math.log(next[i]!) - Math.log(p[i]!)));
    }
    p = next;
    if (moved < tol) break;
  }
  return new Map(models.map((m, i) => [m, 1000 + SCALE * Math.log(p[i]!)]));
}

/** Online Elo over the votes in order (every model starts at 1000; expected score 1/(1 + 10^((R_b − R_a)/400))). */
export function elo(votes: readonly Vote[], models = modelsOf(votes), k = ELO_K): Map<string, number> {
  const r = new Map(models.map((m) => [m, 1000]));
  for (const v of votes) {
    const ra = r.get(v.a)!;
    const rb = r.get(v.b)!;
    const expected = 1 / (1 + 10 ** ((rb - ra) / 400));
    const score = v.winner === 'a' ? 1 : v.winner === 'b' ? 0 : 0.5;
    r.set(v.a, ra + k * (score - expected));
    r.set(v.b, rb - k * (score - expected));
  }
  return r;
}

function quantile(sorted: readonly number[], q: number): number {
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (at - lo);
}

/**
 * Both ratings with 95% bootstrap intervals: `rounds` resamples of the votes (with replacement, in a shuffled
 * order, so Elo's dependence on order is part of its interval). The point ratings are BT on all votes and the
 * median bootstrap Elo (Elo of one fixed order would be arbitrary). Rows sorted by BT rating, best first.
 */
export function arenaRatings(votes: readonly Vote[], options: { rounds?: number; seed?: number; k?: number } = {}): RatingRow[] {
  if (votes.length === 0) return [];
  const models = modelsOf(votes);
  const rounds = options.rounds ?? 1000;
  const rng = new Rng(options.seed ?? 0);
  const btSamples = new Map(models.map((m) => [m, [] as number[]]));
  const eloSamples = new Map(models.map((m) => [m, [] as number[]]));
  for (let r = 0; r < rounds; r++) {
    const sample = Array.from({ length: votes.length }, () => votes[Math.min(votes.length - 1, Math.floor(rng.uniform() * votes.length))]!);
    const bt = bradleyTerry(sample, models, { tol: 1e-8 });
    const el = elo(sample, models, options.k);
    for (const m of models) {
      btSamples.get(m)!.push(bt.get(m)!);
      eloSamples.get(m)!.push(el.get(m)!);
    }
  }
  const bt = bradleyTerry(votes, models);
  const rows = models.map((m): RatingRow => {
    const mine = votes.filter((v) => v.a === m || v.b === m);
    const score = mine.reduce((s, v) => s + (v.winner === 'tie' ? 0.5 : (v.winner === 'a') === (v.a === m) ? 1 : 0), 0);
    const bs = [...btSamples.get(m)!].sort((x, y) => x - y);
    const es = [...eloSamples.get(m)!].sort((x, y) => x - y);
    return {
      model: m, votes: mine.length, winRate: score / mine.length, bt: bt.get(m)!, btLow: quantile(bs, 0.025), btHigh: quantile(bs, 0.975),
      elo: quantile(es, 0.5), eloLow: quantile(es, 0.025), eloHigh: quantile(es, 0.975),
    };
  });
  return rows.sort((x, y) => y.bt - x.bt);
}

/** The ratings as a Markdown table. */
export function ratingsTable(rows: readonly RatingRow[], votes: number, rounds: number): string {
  const f = (x: number): string => x.toFixed(0);
  const lines = [
    `| rank | model | Bradley–Terry (95% CI) | Elo (95% CI) | votes | win rate |`,
    `|---:|---|---:|---:|---:|---:|`,
    ...rows.map((r, i) => `| ${i + 1} | ${r.model} | ${f(r.bt)} (${f(r.btLow)}–${f(r.btHigh)}) | ${f(r.elo)} (${f(r.eloLow)}–${f(r.eloHigh)}) | ${r.votes} | ${(100 * r.winRate).toFixed(1)}% |`),
    '',
    `${votes} votes; ratings on the Elo scale (mean 1000); intervals from ${rounds} bootstrap resamples of the votes; BT fitted by MM with a ${BT_PRIOR} pseudo-win prior per pair, Elo with K = ${ELO_K}; a tie counts half a win each way.`,
  ];
  return lines.join('\n') + '\n';
}

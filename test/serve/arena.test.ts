// Arena ratings: Bradley–Terry by MM recovers known strengths from simulated votes and sits at a stationary point
// of its (prior-augmented) likelihood, checked here independently; Elo orders the models the same way; the
// bootstrap intervals cover the truth; ties count half; the table and the votes reader name what is wrong.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../../src/core/index.js';
import { arenaRatings, BT_PRIOR, bradleyTerry, elo, ratingsTable, readVotes, type Vote } from '../../src/serve/arena.js';

const TRUE: Record<string, number> = { v1: 900, v2: 1000, v3: 1100 }; // Elo-scale truth: P(i beats j) = 1/(1 + 10^((r_j − r_i)/400))

function simulate(n: number, seed: number): Vote[] {
  const rng = new Rng(seed);
  const names = Object.keys(TRUE);
  return Array.from({ length: n }, () => {
    const i = Math.floor(rng.uniform() * 3);
    const j = (i + 1 + Math.floor(rng.uniform() * 2)) % 3;
    const [a, b] = [names[i]!, names[j]!];
    const p = 1 / (1 + 10 ** ((TRUE[b]! - TRUE[a]!) / 400));
    return { a, b, winner: rng.uniform() < p ? 'a' : 'b' };
  });
}

test('Bradley–Terry (MM) recovers known strengths and is a stationary point of the likelihood', () => {
  const votes = simulate(4000, 1);
  const bt = bradleyTerry(votes);
  const mean = [...bt.values()].reduce((a, b) => a + b, 0) / 3;
  assert.ok(Math.abs(mean - 1000) < 1e-6, 'centred on 1000');
  for (const [m, r] of Object.entries(TRUE)) assert.ok(Math.abs(bt.get(m)! - r) < 30, `${m}: ${bt.get(m)} vs ${r}`);
  // ∂ log L / ∂θ_i = Σ_j w_ij − n_ij·p_i/(p_i + p_j) = 0, with θ = ln p = (r − 1000)·ln10/400 and the prior's pseudo-wins.
  const theta = new Map([...bt].map(([m, r]) => [m, ((r - 1000) * Math.LN10) / 400]));
  for (const i of Object.keys(TRUE)) {
    let g = 0;
    for (const j of Object.keys(TRUE)) {
      if (i === j) continue;
      const wij = votes.filter((v) => (v.a === i && v.b === j && v.winner === 'a') || (v.a === j && v.b === i && v.winner === 'b')).length + BT_PRIOR;
      const wji = votes.filter((v) => (v.a === j && v.b === i && v.winner === 'a') || (v.a === i && v.b === j && v.winner === 'b')).length + BT_PRIOR;
      g += wij - (wij + wji) / (1 + Math.exp(theta.get(j)! - theta.get(i)!));
    }
    assert.ok(Math.abs(g) < 1e-6, `gradient for ${i}: ${g}`);
  }
});

test('Elo orders the models like BT; bootstrap intervals cover the truth; ties count half', () => {
  const votes = simulate(1500, 2);
  const e = elo(votes);
  assert.ok(Math.abs([...e.values()].reduce((a, b) => a + b, 0) - 3000) < 1e-6, 'Elo conserves the total');
  const rows = arenaRatings(votes, { rounds: 200, seed: 3 });
  assert.deepEqual(rows.map((r) => r.model), ['v3', 'v2', 'v1']);
  assert.ok(rows[0]!.elo > rows[1]!.elo && rows[1]!.elo > rows[2]!.elo, 'the median bootstrap Elo orders them like BT');
  for (const r of rows) {
    assert.ok(r.btLow <= TRUE[r.model]! && TRUE[r.model]! <= r.btHigh, `${r.model}: BT interval ${r.btLow}–${r.btHigh} misses ${TRUE[r.model]}`);
    assert.ok(r.eloLow < r.elo && r.elo < r.eloHigh);
    assert.equal(r.votes, votes.filter((v) => v.a === r.model || v.b === r.model).length);
  }
  const ties: Vote[] = Array.from({ length: 20 }, () => ({ a: 'x', b: 'y', winner: 'tie' }));
  const t = bradleyTerry(ties);
  assert.ok(Math.abs(t.get('x')! - t.get('y')!) < 1e-9);
  const [first] = arenaRatings(ties, { rounds: 10 });
  assert.equal(first!.winRate, 0.5);
  const table = ratingsTable(rows, votes.length, 200);
  assert.match(table, /^\| rank \| model \| Bradley–Terry \(95% CI\) \| Elo \(95% CI\) \| votes \| win rate \|/);
  assert.match(table, /\| 1 \| v3 \| \d+ \(\d+–\d+\) \| \d+ \(\d+–\d+\) \|/);
});

test('the votes reader names the file and line of a bad vote', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lmforge-arena-'));
  const path = join(dir, 'votes.jsonl');
  writeFileSync(path, '{"a":"x","b":"y","winner":"a"}\n{"a":"x","b":"y","winner":"left"}\n');
  assert.throws(() => readVotes([path]), new RegExp(`${path}:2: expected`));
  assert.throws(() => readVotes([join(dir, 'none.jsonl')]), /no such votes file/);
});

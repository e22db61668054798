// Plumbing shared by the suites that run one child process per side and case (gpt, decode): run a child that
// prints its figures as a JSON last line, and print a table row with the tokens/s and memory ratios.
import { spawnSync } from 'node:child_process';

/** What a side's child process reports; suites add their own fields. */
export interface SideFigures {
  tokensPerS: number;
  peakRssMiB: number;
}

/** The child's last stdout line parsed as JSON, or the last lines of its error output when it fails. */
export function runJSON<F extends SideFigures>(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): F | string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 24, env });
  if (r.status !== 0) return (r.stderr || r.stdout || `exit ${r.status}`).trim().split('\n').slice(-3).join(' ');
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as F;
}

/** Prints `name | ours | theirs | speed ratio  memory ratio`, then a line per side that failed. */
export function printRow<F extends SideFigures>(name: string, ours: F | string, theirs: F | string, cells: (f: F) => string, width: number): void {
  const fmt = (f: F | string): string => (typeof f === 'string' ? `(${f.slice(0, width - 2)})`.padEnd(width) : cells(f));
  const ratio = typeof ours !== 'string' && typeof theirs !== 'string'
    ? `${(ours.tokensPerS / theirs.tokensPerS).toFixed(2)}×`.padStart(11) + `  ${(ours.peakRssMiB / theirs.peakRssMiB).toFixed(2)}×`.padStart(13)
    : '';
  console.log(`${name.padEnd(5)} | ${fmt(ours)} | ${fmt(theirs)} | ${ratio}`);
  if (typeof ours === 'string') console.log(`  lmforge failed: ${ours}`);
  if (typeof theirs === 'string' && theirs !== 'skipped') console.log(`  PyTorch failed: ${theirs}`);
}

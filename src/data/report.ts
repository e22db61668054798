// Per-stage, per-filter accounting (documents and bytes in and out, removal reasons) written as JSON per shard,
// merged across shards and ranks, and printed as a readable table. No pipeline logic here.

export interface Count {
  docs: number;
  bytes: number;
}

export interface StepStats {
  in: Count;
  out: Count;
  /** Removal reasons of this step. */
  removed: Record<string, Count>;
  /** Time spent in this step (summed over shards). */
  seconds: number;
}

export interface ShardReport {
  stage: string;
  shard: string;
  in: Count;
  out: Count;
  /** In chain order: cleaning, pii, each filter, scorer. */
  steps: Record<string, StepStats>;
  /** Output documents per source (used by mixing). */
  sources: Record<string, Count>;
  badRecords: { count: number; samples: { file: string; line: number; reason: string }[] };
  seconds: number;
  /** Free-form numbers a stage wants to report (e.g. PII replacements, candidate pairs). */
  extra: Record<string, number>;
}

export function emptyCount(): Count {
  return { docs: 0, bytes: 0 };
}

export function addCount(c: Count, docs: number, bytes: number): void {
  c.docs += docs;
  c.bytes += bytes;
}

export function newShardReport(stage: string, shard: string): ShardReport {
  return { stage, shard, in: emptyCount(), out: emptyCount(), steps: {}, sources: {}, badRecords: { count: 0, samples: [] }, seconds: 0, extra: {} };
}

export function step(r: ShardReport, name: string): StepStats {
  let s = r.steps[name];
  if (s === undefined) {
    s = { in: emptyCount(), out: emptyCount(), removed: {}, seconds: 0 };
    r.steps[name] = s;
  }
  return s;
}

export function addRemoved(s: StepStats, reason: string, bytes: number): void {
  const c = s.removed[reason] ?? emptyCount();
  c.docs++;
  c.bytes += bytes;
  s.removed[reason] = c;
}

function addInto(dst: Count, src: Count): void {
  dst.docs += src.docs;
  dst.bytes += src.bytes;
}

/** Sums shard reports of one stage (shard becomes the number of shards; seconds is summed task time). */
export function mergeReports(stage: string, reports: ShardReport[]): ShardReport {
  const m = newShardReport(stage, `${reports.length} shards`);
  for (const r of reports) {
    addInto(m.in, r.in);
    addInto(m.out, r.out);
    m.seconds += r.seconds;
    for (const [name, s] of Object.entries(r.steps)) {
      const t = step(m, name);
      addInto(t.in, s.in);
      addInto(t.out, s.out);
      t.seconds += s.seconds ?? 0;
      for (const [reason, c] of Object.entries(s.removed)) {
        const d = t.removed[reason] ?? emptyCount();
        addInto(d, c);
        t.removed[reason] = d;
      }
    }
    for (const [src, c] of Object.entries(r.sources)) {
      const d = m.sources[src] ?? emptyCount();
      addInto(d, c);
      m.sources[src] = d;
    }
    m.badRecords.count += r.badRecords.count;
    for (const s of r.badRecords.samples) if (m.badRecords.samples.length < 20) m.badRecords.samples.push(s);
    for (const [k, v] of Object.entries(r.extra)) m.extra[k] = (m.extra[k] ?? 0) + v;
  }
  return m;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]!}`;
}

function pad(cells: string[][]): string {
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((row) => row[c]!.length)));
  return cells
    .map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  '))
    .join('\n');
}

/** A readable table: one row per step with docs/bytes in and out, then one row per removal reason. */
export function formatReport(r: ShardReport): string {
  const pct = (a: number, b: number): string => (b === 0 ? '-' : `${((100 * a) / b).toFixed(1)}%`);
  const rows: string[][] = [['step / reason', 'docs in', 'docs out', 'kept', 'bytes in', 'bytes out', 'seconds']];
  rows.push(['(stage total)', String(r.in.docs), String(r.out.docs), pct(r.out.docs, r.in.docs), formatBytes(r.in.bytes), formatBytes(r.out.bytes), r.seconds.toFixed(1)]);
  for (const [name, s] of Object.entries(r.steps)) {
    rows.push([name, String(s.in.docs), String(s.out.docs), pct(s.out.docs, s.in.docs), formatBytes(s.in.bytes), formatBytes(s.out.bytes), (s.seconds ?? 0).toFixed(1)]);
    const reasons = Object.entries(s.removed).sort((a, b) => b[1].docs - a[1].docs);
    for (const [reason, c] of reasons) rows.push([`  - ${reason}`, '', String(c.docs), pct(c.docs, s.in.docs), '', formatBytes(c.bytes), '']);
  }
  let out = `stage ${r.stage} (${r.shard}, ${r.seconds.toFixed(1)} s task time)\n${pad(rows)}`;
  const extras = Object.entries(r.extra);
  if (extras.length > 0) out += '\n' + extras.map(([k, v]) => `${k}: ${v}`).join(', ');
  if (r.badRecords.count > 0) {
    out += `\nmalformed records: ${r.badRecords.count}` + r.badRecords.samples.slice(0, 5).map((s) => `\n  ${s.file}:${s.line}: ${s.reason}`).join('');
  }
  return out;
}

// The dashboard's HTTP server (`lmforge dashboard`): a JSON API over a runs folder — runs and their status, metric
// records read incrementally from metrics.jsonl by byte offset (so a page polling a training run gets only the new
// lines), evaluation reports, studies and ablations (results.json), versions and their lineage — and the static
// pages of src/web/static/, which talk to this API only (the chat page talks to an OpenAI-compatible server).
// Read-only: it never writes into the runs folder. Not the pages (static/app.js) nor the OpenAI server (serve).
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chartJsPath } from '../report/html.js';
import { compareVersions } from '../report/compare.js';
import { findEvalReports, loadVersion } from '../report/version.js';
import { METRICS_FILE, type MetricRecord } from '../train/metrics.js';
import { META_FILE, TRAIN_CONFIG_FILE } from '../train/run-dir.js';
import { UserError } from '../util/errors.js';

/** The pages and their script, shipped as source files beside this module's source. */
export const STATIC_DIR = fileURLToPath(new URL('../../../src/web/static/', import.meta.url));

export interface DashboardOptions {
  /** The folder searched for runs and studies. */
  runsDir: string;
  port?: number;
  host?: string;
  /** The OpenAI-compatible base URL the chat page starts with (e.g. http://127.0.0.1:8000/v1). */
  chatBaseUrl?: string | null;
  /** A run whose metrics.jsonl changed within this many seconds (and has no final weights) counts as training. */
  liveSeconds?: number;
}

export interface RunSummary {
  id: string;
  name: string;
  status: 'training' | 'done' | 'stopped';
  step: number | null;
  max_steps: number | null;
  loss: number | null;
  val_loss: number | null;
  tokens_per_s: number | null;
  shape: string | null;
  updated: string;
  evals: number;
  init_from: string | null;
  /** The model version this run is (the registry's version.json), and its parent version. */
  version: string | null;
  parent_version: string | null;
}

const MAX_DEPTH = 6;
const WEIGHTS = ['model.safetensors', 'adapter_model.safetensors'];

function readJSON(path: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Folders under root holding a run (train-config.json or metrics.jsonl) or a study (results.json with rows). */
function scan(root: string): { runs: string[]; studies: string[] } {
  const runs: string[] = [];
  const studies: string[] = [];
  const walk = (dir: string, depth: number): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    if (names.includes(TRAIN_CONFIG_FILE) || names.includes(METRICS_FILE)) runs.push(dir);
    if (names.includes('results.json') && names.includes('table.md')) studies.push(dir);
    if (depth >= MAX_DEPTH) return;
    for (const n of names.sort()) {
      if (n.startsWith('.') || n.startsWith('ckpt-') || n === 'node_modules') continue;
      const p = join(dir, n);
      try {
        if (statSync(p).isDirectory()) walk(p, depth + 1);
      } catch {
        // vanished while scanning (a checkpoint being rotated)
      }
    }
  };
  walk(root, 0);
  return { runs, studies };
}

/** The last complete lines of a metrics file (read from its tail, so a long log costs little). */
function tailRecords(path: string, bytes = 64 * 1024): MetricRecord[] {
  if (!existsSync(path)) return [];
  const size = statSync(path).size;
  const start = Math.max(0, size - bytes);
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(size - start);
  try {
    readSync(fd, buf, 0, buf.length, start);
  } finally {
    closeSync(fd);
  }
  const lines = buf.toString('utf8').split('\n');
  if (start > 0) lines.shift(); // cut mid-line
  return parseLines(lines);
}

function parseLines(lines: readonly string[]): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (const l of lines) {
    if (!l.trim()) continue;
    try {
      const r: unknown = JSON.parse(l);
      if (typeof r === 'object' && r !== null && Number.isInteger((r as { step?: unknown }).step)) out.push(r as MetricRecord);
    } catch {
      // a torn line
    }
  }
  return out;
}

/** Complete metric lines from a byte offset on, and the offset after the last complete line. */
export function readMetricsFrom(path: string, offset: number): { records: MetricRecord[]; offset: number; reset: boolean } {
  if (!existsSync(path)) return { records: [], offset: 0, reset: offset > 0 };
  const size = statSync(path).size;
  // A file shorter than the offset was rewritten (a resumed or replaced run): start over.
  const reset = size < offset;
  const from = reset ? 0 : offset;
  if (size === from) return { records: [], offset: from, reset };
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(size - from);
  try {
    readSync(fd, buf, 0, buf.length, from);
  } finally {
    closeSync(fd);
  }
  const end = buf.lastIndexOf(0x0a); // only whole lines: the writer may be mid-line
  if (end < 0) return { records: [], offset: from, reset };
  return { records: parseLines(buf.subarray(0, end).toString('utf8').split('\n')), offset: from + end + 1, reset };
}

function num(r: MetricRecord | undefined, k: string): number | null {
  const v = r?.[k];
  return typeof v === 'number' ? v : null;
}

export class Dashboard {
  readonly root: string;
  private server: Server | null = null;

  constructor(readonly options: DashboardOptions) {
    this.root = resolve(options.runsDir);
  }

  /** A run or study id (its path under root, with '/') as a folder; refuses anything outside root. */
  private folder(id: string): string {
    const p = resolve(this.root, id);
    if (p !== this.root && !p.startsWith(this.root + sep)) throw new UserError(`id ${id}: outside the runs folder`);
    if (!existsSync(p) || !statSync(p).isDirectory()) throw new UserError(`id ${id}: no such run or study`);
    return p;
  }

  private idOf(dir: string): string {
    return relative(this.root, dir).split(sep).join('/') || '.';
  }

  summary(dir: string): RunSummary {
    const config = readJSON(join(dir, TRAIN_CONFIG_FILE));
    const tail = tailRecords(join(dir, METRICS_FILE));
    const progress = [...tail].reverse().find((r) => typeof r.loss === 'number');
    const evalRec = [...tail].reverse().find((r) => typeof r.val_loss === 'number');
    const metricsPath = join(dir, METRICS_FILE);
    const mtime = existsSync(metricsPath) ? statSync(metricsPath).mtimeMs : statSync(dir).mtimeMs;
    const done = WEIGHTS.some((w) => existsSync(join(dir, w)));
    const live = (Date.now() - mtime) / 1000 < (this.options.liveSeconds ?? 30);
    const model = config?.model as Record<string, unknown> | undefined;
    const version = readJSON(join(dir, 'version.json'));
    const maxSteps = num(progress, 'max_steps') ?? (typeof config?.max_iters === 'number' ? config.max_iters : null);
    return {
      id: this.idOf(dir), name: this.idOf(dir),
      status: done ? 'done' : live ? 'training' : 'stopped',
      // A finished run reports its last step, not its last logged one (the log interval may skip it).
      step: done && maxSteps !== null ? maxSteps : (progress?.step ?? null), max_steps: maxSteps,
      loss: num(progress, 'loss'), val_loss: num(evalRec, 'val_loss'), tokens_per_s: num(progress, 'tokens_per_s'),
      shape: model ? `${model.n_layer}×${model.n_embd}` : null,
      updated: new Date(mtime).toISOString(),
      evals: findEvalReports(dir).length,
      init_from: typeof config?.init_from === 'string' ? config.init_from : null,
      version: typeof version?.id === 'string' ? version.id : null,
      parent_version: typeof version?.parent === 'string' ? version.parent : null,
    };
  }

  runs(): RunSummary[] {
    return scan(this.root).runs.map((d) => this.summary(d)).sort((a, b) => b.updated.localeCompare(a.updated));
  }

  run(id: string): Record<string, unknown> {
    const dir = this.folder(id);
    const meta = readJSON(join(dir, META_FILE));
    return {
      ...this.summary(dir),
      config: readJSON(join(dir, TRAIN_CONFIG_FILE)),
      data: meta ? { vocab_size: meta.vocab_size, tokenizer: (meta.tokenizer as Record<string, unknown> | undefined)?.type ?? null, source: meta.source ?? null } : null,
      evals: findEvalReports(dir).map((e) => ({ file: relative(dir, e.file), created: e.report.created, results: e.report.results.map((r) => ({ task: r.task, n_shot: r.nShot, n: r.n, metrics: r.metrics })) })),
    };
  }

  /** Every evaluation result of every run: one row per (run, task, metric), the newest report's value winning. */
  evals(): { run: string; version: string | null; task: string; metric: string; value: number; stderr: number | null; created: string }[] {
    const out = new Map<string, { run: string; version: string | null; task: string; metric: string; value: number; stderr: number | null; created: string }>();
    for (const r of this.runs()) {
      if (r.evals === 0) continue;
      for (const { report } of findEvalReports(join(this.root, r.id))) {
        for (const t of report.results) {
          for (const [metric, v] of Object.entries(t.metrics)) {
            const key = `${r.id}\u0000${t.task}\u0000${metric}`;
            const prev = out.get(key);
            if (!prev || prev.created <= report.created) out.set(key, { run: r.id, version: r.version, task: t.task, metric, value: v.value, stderr: v.stderr, created: report.created });
          }
        }
      }
    }
    return [...out.values()];
  }

  studies(): Record<string, unknown>[] {
    return scan(this.root).studies.map((d) => {
      const r = readJSON(join(d, 'results.json'));
      return { id: this.idOf(d), name: r?.study ?? this.idOf(d), baseline: r?.baseline ?? null, rows: Array.isArray(r?.rows) ? r.rows.length : 0, seeds: r?.seeds ?? [], report: existsSync(join(d, 'report.html')) };
    });
  }

  study(id: string): Record<string, unknown> {
    const dir = this.folder(id);
    const r = readJSON(join(dir, 'results.json'));
    if (!r) throw new UserError(`study ${id}: no readable results.json`);
    return { id, ...r };
  }

  /**
   * Versions and lineage: every run is a node (labelled with its version, name@vN, when the registry made it one);
   * an edge runs from a version's parent version to it, labelled with what changed (the registry's version.json),
   * and from the run (or model folder) a run started from (init_from) to it.
   */
  lineage(): { nodes: { id: string; label: string; status: string }[]; edges: { from: string; to: string; label: string }[] } {
    const runs = this.runs();
    const ids = new Set(runs.map((r) => r.id));
    const nodes: { id: string; label: string; status: string }[] = runs.map((r) => ({ id: r.id, label: r.version ? `${r.version} (${r.name})` : r.name, status: r.status }));
    const edges: { from: string; to: string; label: string }[] = [];
    const byVersion = new Map(runs.filter((r) => r.version).map((r) => [r.version!, r.id]));
    for (const r of runs) {
      if (!r.parent_version) continue;
      let parent = byVersion.get(r.parent_version);
      if (parent === undefined) {
        parent = r.parent_version;
        if (!ids.has(parent)) {
          nodes.push({ id: parent, label: parent, status: 'external' });
          ids.add(parent);
        }
      }
      const v = readJSON(join(this.root, r.id, 'version.json'));
      const ch = v?.changes as { config?: unknown[]; data?: unknown[]; code?: { from: unknown; to: unknown } } | null | undefined;
      const what = ch ? [ch.config?.length ? `${ch.config.length} config` : '', ch.data?.length ? `${ch.data.length} data` : '', ch.code && ch.code.from !== ch.code.to ? 'code' : ''].filter(Boolean).join(', ') : '';
      edges.push({ from: parent, to: r.id, label: `version${what ? `: ${what}` : ''}` });
    }
    for (const r of runs) {
      if (!r.init_from) continue;
      const parentDir = resolve(r.init_from);
      const parent = this.idOf(parentDir);
      if (!ids.has(parent)) {
        nodes.push({ id: parent, label: r.init_from, status: 'external' });
        ids.add(parent);
      }
      edges.push({ from: parent, to: r.id, label: 'init_from' });
    }
    return { nodes, edges };
  }

  private route(method: string, url: URL): { status: number; body: unknown } | null {
    if (method !== 'GET') return { status: 405, body: { error: `${method} not allowed: the dashboard is read-only` } };
    const p = url.pathname;
    const id = url.searchParams.get('id') ?? '';
    switch (p) {
      case '/api/config':
        return { status: 200, body: { runs_dir: this.root, chat_base_url: this.options.chatBaseUrl ?? null } };
      case '/api/runs':
        return { status: 200, body: { runs: this.runs() } };
      case '/api/run':
        return { status: 200, body: this.run(id) };
      case '/api/metrics': {
        const offset = Number(url.searchParams.get('offset') ?? 0);
        if (!Number.isSafeInteger(offset) || offset < 0) return { status: 400, body: { error: 'offset: expected a byte offset ≥ 0' } };
        const dir = this.folder(id);
        return { status: 200, body: { ...readMetricsFrom(join(dir, METRICS_FILE), offset), status: this.summary(dir).status } };
      }
      case '/api/studies':
        return { status: 200, body: { studies: this.studies() } };
      case '/api/study':
        return { status: 200, body: this.study(id) };
      case '/api/evals':
        return { status: 200, body: { evals: this.evals() } };
      case '/api/compare': {
        // Without samples (no models are loaded by a page view): diffs, final losses, eval deltas with intervals.
        const [a, b] = [url.searchParams.get('a') ?? '', url.searchParams.get('b') ?? ''];
        const [da, db] = [this.folder(a), this.folder(b)];
        const va = loadVersion(da, a);
        const vb = loadVersion(db, b);
        return { status: 200, body: compareVersions(va, vb, { samples: null }) };
      }
      case '/api/versions':
        return { status: 200, body: { versions: this.runs().filter((r) => r.version).map((r) => ({ id: r.version, run: r.id, parent: r.parent_version, status: r.status, val_loss: r.val_loss })) } };
      case '/api/lineage':
        return { status: 200, body: this.lineage() };
      default:
        return null;
    }
  }

  private serveStatic(pathname: string, res: ServerResponse): void {
    const types: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
    let file: string;
    if (pathname === '/vendor/chart.umd.min.js') file = chartJsPath();
    else if (pathname === '/' || pathname === '/index.html') file = join(STATIC_DIR, 'index.html');
    else if (/^\/[a-z0-9-]+\.(js|css|html|svg)$/.test(pathname)) file = join(STATIC_DIR, pathname.slice(1));
    else file = '';
    if (!file || !existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' }).end(readFileSync(file));
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!url.pathname.startsWith('/api/')) {
      this.serveStatic(url.pathname, res);
      return;
    }
    let out: { status: number; body: unknown };
    try {
      out = this.route(req.method ?? 'GET', url) ?? { status: 404, body: { error: `no such endpoint ${url.pathname}` } };
    } catch (e) {
      out = e instanceof UserError ? { status: 404, body: { error: e.message } } : { status: 500, body: { error: String(e) } };
    }
    res.writeHead(out.status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(out.body));
  }

  /** Starts listening; resolves to the base URL. */
  async listen(): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    this.server = server;
    await new Promise<void>((done, failed) => {
      server.once('error', (e: NodeJS.ErrnoException) => failed(e.code === 'EADDRINUSE' ? new UserError(`--port ${this.options.port}: already in use`) : e));
      server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => done());
    });
    const a = server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((done) => s.close(() => done()));
  }
}

// `lmforge registry list|show|versions|lineage|diff|tag|version|register|eval|feedback|rebuild`: the run registry
// (src/registry/) from the command line. The database is runs/registry.sqlite unless --registry or
// $LMFORGE_REGISTRY names another; the run directories stay the truth and `rebuild` recreates it from them.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { formatChanges } from '../registry/diff.js';
import { DEFAULT_REGISTRY_PATH, REGISTRY_ENV, Registry, registryPath, type RunRecord, type VersionRecord } from '../registry/registry.js';
import { UserError, describeError } from '../util/errors.js';
import { intFlag } from './flags.js';

function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined) return '-';
  if (Math.abs(x) >= 1000 || Number.isInteger(x)) return Math.round(x).toLocaleString('en-US');
  return x.toFixed(digits);
}

/** A Markdown table with padded columns. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n') + '\n';
}

function withRegistry<T>(flag: string | undefined, f: (r: Registry) => T): T {
  const reg = Registry.open(registryPath(flag));
  try {
    return f(reg);
  } finally {
    reg.close();
  }
}

function runRow(r: RunRecord): string[] {
  return [r.version ?? '', r.name, r.complete ? 'done' : 'partial', r.created_at.slice(0, 16).replace('T', ' '), fmt(r.metrics.steps, 0), fmt(r.metrics.val_loss), fmt(r.metrics.tokens_per_s, 0),
    r.infra?.mfu != null ? `${(100 * r.infra.mfu).toFixed(1)}%` : r.metrics.mfu != null ? `${(100 * r.metrics.mfu).toFixed(1)}%` : '-',
    r.infra ? `${(r.infra.energy_j / 3600).toFixed(2)} Wh` : '-', r.tags.join(',')];
}

function versionLine(v: VersionRecord): string {
  return `${v.id}  ${v.created_at.slice(0, 16).replace('T', ' ')}  parent ${v.parent ?? '(none)'}  ${v.run_path}${v.note ? `  — ${v.note}` : ''}`;
}

/** `registry show`: everything the registry holds of one run or version, as Markdown. */
export function formatRun(reg: Registry, r: RunRecord): string {
  const out: string[] = [`# ${r.version ?? r.name}`, '', `- run: ${r.path} (${r.complete ? 'complete' : 'partial'})`, `- created: ${r.created_at}, registered ${r.registered_at}`];
  out.push(`- code: ${r.commit ?? '(unknown)'}${r.dirty ? ' + uncommitted changes' : ''}`);
  out.push(`- config: sha256 ${r.config_sha256.slice(0, 16)}`);
  if (r.tags.length) out.push(`- tags: ${r.tags.join(', ')}`);
  out.push(`- data: ${r.data.dir ?? '(unknown)'} (fingerprints taken at ${r.data.taken_at})`);
  for (const [f, fp] of Object.entries(r.data.files)) out.push(`  - ${f}: ${fp.bytes.toLocaleString('en-US')} B, sha256 ${fp.sha256}`);
  const m = r.metrics;
  out.push(`- metrics: ${m.steps ?? '-'} steps, train loss ${fmt(m.train_loss)}, val loss ${fmt(m.val_loss)} (best ${fmt(m.best_val_loss)}${m.val_loss_full !== null ? `, full ${fmt(m.val_loss_full)}` : ''}), ${fmt(m.tokens_per_s, 0)} tok/s`);
  if (r.infra) {
    const i = r.infra;
    out.push(`- infrastructure: MFU ${i.mfu === null ? 'n/a' : `${(100 * i.mfu).toFixed(2)}%`} of ${i.peak_flops === null ? '-' : i.peak_flops.toExponential(2)} FLOP/s (${i.peak_source}), ` +
      `energy ${(i.energy_j / 3600).toFixed(3)} Wh (${i.energy_source}), ${i.co2_g.toFixed(2)} g CO₂e at ${i.grid_g_per_kwh} g/kWh`);
  }
  if (r.version) {
    const v = reg.version(r.version);
    out.push('', `## Version ${v.id}`, '', `- parent: ${v.parent ?? '(none)'}`, ...(v.note ? [`- note: ${v.note}`] : []));
    if (v.changes) out.push('- changes from the parent:', ...formatChanges(v.changes).map((l) => `  ${l}`));
  }
  const arts = reg.artifacts(r.path);
  if (arts.length) out.push('', '## Artifacts', '', table(['file', 'bytes', 'sha256'], arts.map((a) => [a.file, a.bytes.toLocaleString('en-US'), a.sha256])).trimEnd());
  const evals = reg.evals(r.path);
  if (evals.length) out.push('', '## Evaluations', '', table(['report', 'task', 'metric', 'value', '± stderr', 'n'], evals.map((e) => [e.report, e.task, e.metric, fmt(e.value), fmt(e.stderr), fmt(e.n, 0)])).trimEnd());
  const fb = reg.feedback(r.path);
  if (fb.length) out.push('', `## Feedback: ${fb.filter((f) => f.rating === 1).length} up, ${fb.filter((f) => f.rating === -1).length} down`, ...fb.slice(0, 10).map((f) => `- ${f.rating === 1 ? '👍' : '👎'} ${f.created_at.slice(0, 16)} ${f.comment ?? ''}`));
  return out.join('\n') + '\n';
}

export function register(program: Command): void {
  const reg = program
    .command('registry')
    .description(`the run registry (SQLite): runs, model versions with lineage, tags, evaluations, feedback (database: --registry, $${REGISTRY_ENV}, or ${DEFAULT_REGISTRY_PATH})`)
    .option('--registry <file>', `the database file (default: $${REGISTRY_ENV} or ${DEFAULT_REGISTRY_PATH})`);
  const dbFlag = (): string | undefined => reg.opts<{ registry?: string }>().registry;
  const json = (x: unknown): void => void process.stdout.write(JSON.stringify(x, null, 2) + '\n');

  reg.command('list').description('registered runs, newest first')
    .option('--limit <n>', 'at most n runs', intFlag('--limit', 1))
    .option('--tag <tag>', 'only runs with this tag')
    .option('--json', 'print JSON')
    .action((o: { limit?: number; tag?: string; json?: boolean }) => withRegistry(dbFlag(), (r) => {
      const runs = r.listRuns({ ...(o.limit ? { limit: o.limit } : {}), ...(o.tag ? { tag: o.tag } : {}) });
      if (o.json) return json(runs);
      if (runs.length === 0) return void process.stdout.write(`no runs in ${r.path} (runs register at the end of lmforge train; lmforge registry rebuild scans run directories)\n`);
      process.stdout.write(table(['version', 'run', 'state', 'created (UTC)', 'steps', 'val loss', 'tok/s', 'MFU', 'energy', 'tags'], runs.map(runRow)));
    }));

  reg.command('show <ref>').description('one run or version: config hash, code, data fingerprints, metrics, energy, artifacts (SHA-256), lineage, evaluations, feedback')
    .option('--json', 'print JSON')
    .action((ref: string, o: { json?: boolean }) => withRegistry(dbFlag(), (r) => {
      const { run, version } = r.resolve(ref);
      if (o.json) return json({ run, version, artifacts: r.artifacts(run.path), evals: r.evals(run.path), feedback: r.feedback(run.path) });
      process.stdout.write(formatRun(r, run));
    }));

  reg.command('versions [name]').description('model versions (of one name, or all), oldest first')
    .option('--json', 'print JSON')
    .action((name: string | undefined, o: { json?: boolean }) => withRegistry(dbFlag(), (r) => {
      const vs = r.listVersions(name);
      if (o.json) return json(vs);
      process.stdout.write(vs.length ? vs.map(versionLine).join('\n') + '\n' : 'no model versions yet (lmforge registry version RUN --name NAME, or lmforge pipeline run)\n');
    }));

  reg.command('lineage <ref>').description("a version's ancestors back to the first, what changed at each step, and its children")
    .option('--json', 'print JSON')
    .action((ref: string, o: { json?: boolean }) => withRegistry(dbFlag(), (r) => {
      const l = r.lineage(ref);
      if (o.json) return json(l);
      const out: string[] = [];
      for (const v of l.ancestors) {
        out.push(versionLine(v));
        if (v.changes) out.push(...formatChanges(v.changes).map((x) => `    ${x}`));
      }
      if (l.children.length) out.push(`children: ${l.children.map((c) => c.id).join(', ')}`);
      process.stdout.write(out.join('\n') + '\n');
    }));

  reg.command('diff <a> <b>').description('how b differs from a: config keys, data files (SHA-256), code commit, metrics, evaluations')
    .option('--json', 'print JSON')
    .action((a: string, b: string, o: { json?: boolean }) => withRegistry(dbFlag(), (r) => {
      const d = r.diff(a, b);
      if (o.json) return json({ a: d.a.path, b: d.b.path, config: d.config, data: d.data, code: d.code, metrics: d.metrics, evals: d.evals });
      const out = [`# ${d.a.version ?? d.a.name} → ${d.b.version ?? d.b.name}`, '', ...formatChanges({ config: d.config, data: d.data, code: d.code }), ''];
      const withErr = (x: number | null, se: number | null): string => (se === null ? fmt(x) : `${fmt(x)} ± ${fmt(se)}`);
      const delta = (x: number | null, y: number | null): string => (x === null || y === null ? '-' : `${y - x >= 0 ? '+' : ''}${fmt(y - x)}`);
      out.push(table(['metric', 'a', 'b', 'b − a'], d.metrics.map((m) => [m.key, fmt(m.a), fmt(m.b), delta(m.a, m.b)])).trimEnd());
      if (d.evals.length) out.push('', table(['task', 'metric', 'a', 'b', 'b − a'], d.evals.map((e) => [e.task, e.metric, withErr(e.a, e.a_stderr), withErr(e.b, e.b_stderr), delta(e.a, e.b)])).trimEnd());
      process.stdout.write(out.join('\n') + '\n');
    }));

  reg.command('tag <ref> <tags...>').description("label a run or version (written to the run's tags.json)")
    .option('--remove', 'take the tags off instead')
    .action((ref: string, tags: string[], o: { remove?: boolean }) => withRegistry(dbFlag(), (r) => {
      const now = r.tag(ref, tags, o.remove ?? false);
      process.stdout.write(`${ref}: tags ${now.length ? now.join(', ') : '(none)'}\n`);
    }));

  reg.command('register <runDirs...>').description('record (or refresh) run directories; --name also makes each the next model version')
    .option('--name <name>', 'make the run the next version name@vN')
    .option('--parent <ref>', 'the parent version (default: the latest version of --name)')
    .option('--no-parent', 'a first version: no parent')
    .option('--note <text>', 'what this version is for')
    .action((dirs: string[], o: { name?: string; parent?: string | boolean; note?: string }) => withRegistry(dbFlag(), (r) => {
      if (o.name && dirs.length > 1) throw new UserError('--name makes one run a version: give one run directory');
      for (const d of dirs) {
        const run = r.registerRun(d);
        let line = `registered ${run.path}`;
        if (o.name) {
          const parent = o.parent === false ? null : typeof o.parent === 'string' ? o.parent : undefined;
          const v = r.createVersion(run.path, o.name, { ...(parent !== undefined ? { parent } : {}), ...(o.note ? { note: o.note } : {}) });
          line += ` as ${v.id}${v.parent ? ` (parent ${v.parent})` : ''}`;
        }
        process.stdout.write(line + '\n');
      }
    }));

  reg.command('eval <ref> <reports...>').description('attach evaluation reports (JSON of lmforge eval --output) to a run or version')
    .action((ref: string, files: string[]) => withRegistry(dbFlag(), (r) => {
      for (const f of files) {
        let report: unknown;
        try {
          report = JSON.parse(readFileSync(f, 'utf8'));
        } catch (e) {
          throw new UserError(`${f}: cannot read the evaluation report (${describeError(e)})`);
        }
        const rows = r.addEvalReport(ref, report, f.split('/').pop());
        process.stdout.write(`${f}: ${rows.length} results recorded\n`);
      }
    }));

  reg.command('feedback <ref> <rating>').description('record thumbs up (up, +1) or down (down, -1) on a model\'s answer')
    .option('--comment <text>', 'why')
    .option('--prompt <text>', 'the prompt')
    .option('--response <text>', 'the answer')
    .action((ref: string, rating: string, o: { comment?: string; prompt?: string; response?: string }) => withRegistry(dbFlag(), (r) => {
      const value = rating === 'up' || rating === '+1' || rating === '1' ? 1 : rating === 'down' || rating === '-1' ? -1 : null;
      if (value === null) throw new UserError(`rating ${JSON.stringify(rating)}: expected up or down (+1 or -1)`);
      const f = r.addFeedback({ target: ref, rating: value, comment: o.comment ?? null, prompt: o.prompt ?? null, response: o.response ?? null });
      process.stdout.write(`feedback ${f.uid} recorded\n`);
    }));

  reg.command('rebuild').description('recreate the database from the run directories (under --root, default the database\'s folder, and those it listed)')
    .option('--root <dirs...>', 'folders to scan for run directories')
    .action((o: { root?: string[] }) => {
      const path = registryPath(dbFlag());
      const r = Registry.rebuild(path, o.root);
      for (const s of r.skipped) process.stderr.write(`registry: skipped ${s.path}: ${s.reason}\n`);
      process.stdout.write(`rebuilt ${path}: ${r.runs} runs, ${r.versions} versions, ${r.evals} evaluation results, ${r.feedback} feedback records\n`);
    });
}

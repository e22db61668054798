// Self-contained HTML reports: one page with its styles, the charting library (Chart.js's UMD build from its npm
// package, inlined so the file opens anywhere without a network) and the charts' data as JSON. Also Markdown-table
// helpers shared by the comparison and ablation reports. Not the dashboard (src/web/), which serves the library.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../util/errors.js';

/** The Chart.js UMD bundle (defines `window.Chart`), located through the chart.js package. */
export function chartJsPath(): string {
  let main: string;
  try {
    main = createRequire(import.meta.url).resolve('chart.js'); // <pkg>/dist/chart.cjs
  } catch {
    throw new UserError('chart.js is not installed (npm install): the HTML reports inline its UMD build');
  }
  return join(dirname(main), 'chart.umd.min.js');
}

let chartJsCache: string | null = null;

export function chartJsSource(): string {
  chartJsCache ??= readFileSync(chartJsPath(), 'utf8');
  return chartJsCache;
}

export const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JSON that is safe inside a <script> element (no `</script>` or HTML comment openers). */
export const scriptJSON = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

/** A Chart.js configuration (type, data, options) as plain JSON: the page passes it to `new Chart`. */
export interface ChartSpec {
  id: string;
  title: string;
  config: Record<string, unknown>;
}

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** A Markdown table from a header and rows (cells are escaped for `|`). */
export function mdTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [`| ${head.map(cell).join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

/** The same table as HTML. */
export function htmlTable(head: readonly string[], rows: readonly (readonly string[])[], className = ''): string {
  return [
    `<table${className ? ` class="${className}"` : ''}><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>`,
    ...rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`),
    '</tbody></table>',
  ].join('\n');
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.8em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;font-size:13px}
.chart{position:relative;height:340px;margin:1em 0}.pos{color:#1a7f37}.neg{color:#c62828}
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}.muted{color:#777}`;

/** A whole page: title, body HTML (already escaped where needed), charts drawn by the inlined Chart.js. */
export function htmlPage(title: string, body: string, charts: readonly ChartSpec[]): string {
  const canvases = new Set(charts.map((c) => c.id));
  for (const id of canvases) if (!body.includes(`id="${id}"`)) body += `\n<div class="chart"><canvas id="${id}"></canvas></div>`;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>${esc(title)}</title>`,
    `<style>${STYLE}</style>`,
    `<script>${chartJsSource()}</script>`,
    '</head><body>',
    body,
    `<script>const CHARTS = ${scriptJSON(charts)};`,
    'for (const c of CHARTS) { const el = document.getElementById(c.id); if (el) new Chart(el, c.config); }</script>',
    '</body></html>',
    '',
  ].join('\n');
}

/** A canvas block for a chart, with its title. */
export const chartBlock = (c: Pick<ChartSpec, 'id' | 'title'>): string => `<h3>${esc(c.title)}</h3>\n<div class="chart"><canvas id="${c.id}"></canvas></div>`;

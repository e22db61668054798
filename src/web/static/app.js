// The dashboard's pages, drawn in the browser from the dashboard's JSON API (/api/...): the runs list, a run with
// its live loss curves (new metric lines fetched by byte offset every second while it trains) and evaluation
// tables, the studies and ablations with their intervals, the lineage graph, and a chat page that streams from an
// OpenAI-compatible server (its base URL is configurable; the server must send CORS headers). Plain browser
// JavaScript with Chart.js (served by the dashboard); no build step.
'use strict';

const view = document.getElementById('view');
/** Timers and charts of the current page, dropped when the route changes. */
let timers = [];
let charts = [];

function clearPage() {
  for (const t of timers) clearInterval(t);
  for (const c of charts) c.destroy();
  timers = [];
  charts = [];
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const fmt = (x, d = 4) => (x === null || x === undefined || Number.isNaN(x) ? 'n/a' : Number(x).toFixed(d));
const signed = (x) => (x >= 0 ? '+' : '') + x.toFixed(4);
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

async function api(path) {
  const r = await fetch(path, { cache: 'no-store' });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `${path}: HTTP ${r.status}`);
  return body;
}

function table(head, rows) {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

function showError(e) {
  view.insertAdjacentHTML('beforeend', `<p class="error">${esc(e.message || e)}</p>`);
}

// ---- runs -------------------------------------------------------------------------------------------------------

async function runsPage() {
  view.innerHTML = '<h1>Runs</h1><div id="runs-table"><p class="muted">Loading…</p></div>';
  const draw = async () => {
    const { runs } = await api('/api/runs');
    const el = document.getElementById('runs-table');
    if (!el) return;
    el.innerHTML = runs.length === 0 ? '<p class="muted">No runs in this folder yet (lmforge train writes them).</p>' : table(
      ['run', 'version', 'status', 'step', 'loss', 'val loss', 'tokens/s', 'L×C', 'evals', 'updated'],
      runs.map((r) => [`<a href="#/run/${encodeURIComponent(r.id)}">${esc(r.name)}</a>`, esc(r.version ? `${r.version}${r.parent_version ? ` ← ${r.parent_version}` : ''}` : ''), `<span class="status-${r.status}">${r.status}</span>`, r.step === null ? '' : `${r.step}/${r.max_steps ?? '?'}`, fmt(r.loss), fmt(r.val_loss), r.tokens_per_s === null ? '' : Math.round(r.tokens_per_s).toLocaleString('en-US'), esc(r.shape ?? ''), String(r.evals), esc(r.updated.replace('T', ' ').slice(0, 19))]),
    );
  };
  await draw();
  timers.push(setInterval(() => draw().catch(showError), 3000));
}

// ---- one run: live curves ---------------------------------------------------------------------------------------

async function runPage(id) {
  const run = await api(`/api/run?id=${encodeURIComponent(id)}`);
  const cfg = run.config || {};
  const keys = [['max_iters', cfg.max_iters], ['model', cfg.model ? `${cfg.model.n_layer} layers × ${cfg.model.n_embd}, ${cfg.model.n_head} heads, block ${cfg.model.block_size}` : ''], ['optimizer', cfg.optim ? `${cfg.optim.name} lr ${cfg.optim.lr}` : ''], ['data', cfg.data ? `${cfg.data.dir} (batch ${cfg.data.batch_size})` : ''], ['init_from', cfg.init_from ?? '']];
  view.innerHTML = `<h1>${esc(run.name)}${run.version ? ` <span class="muted">${esc(run.version)}</span>` : ''}</h1>
    <p>Status: <span id="run-status" class="status-${run.status}">${run.status}</span> · step <span id="run-step">${run.step ?? 0}</span>/${run.max_steps ?? '?'} · loss <span id="run-loss">${fmt(run.loss)}</span> · val loss <span id="run-val">${fmt(run.val_loss)}</span></p>
    <div class="chart"><canvas id="loss-chart"></canvas></div>
    <h2>Config</h2>${table(['key', 'value'], keys.filter((k) => k[1] !== '' && k[1] !== undefined).map(([k, v]) => [esc(k), esc(v)]))}
    <h2>Evaluations</h2><div id="evals"></div>`;
  const evalRows = [];
  for (const e of run.evals) for (const r of e.results) for (const [m, v] of Object.entries(r.metrics)) evalRows.push([esc(r.task), String(r.n_shot), esc(m), fmt(v.value), v.stderr === null ? 'n/a' : `± ${fmt(v.stderr)}`, esc(e.file)]);
  document.getElementById('evals').innerHTML = evalRows.length ? table(['task', 'n-shot', 'metric', 'value', 'stderr', 'report'], evalRows) : '<p class="muted">No evaluation reports in this run (lmforge eval --output RUN/eval/NAME.json).</p>';
  const chart = new Chart(document.getElementById('loss-chart'), {
    type: 'line',
    data: { datasets: [{ label: 'train loss', data: [], borderColor: COLORS[0], pointRadius: 0, borderWidth: 1.5 }, { label: 'val loss', data: [], borderColor: COLORS[1], pointRadius: 3, borderWidth: 1.5 }] },
    options: { animation: false, maintainAspectRatio: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { title: { display: true, text: 'loss' } } } },
  });
  charts.push(chart);
  let offset = 0;
  const poll = async () => {
    const m = await api(`/api/metrics?id=${encodeURIComponent(id)}&offset=${offset}`);
    if (m.reset) for (const d of chart.data.datasets) d.data = [];
    offset = m.offset;
    let last = null;
    for (const r of m.records) {
      if (typeof r.loss === 'number') {
        chart.data.datasets[0].data.push({ x: r.step, y: r.loss });
        last = r;
      }
      if (typeof r.val_loss === 'number') {
        chart.data.datasets[1].data.push({ x: r.step, y: r.val_loss });
        document.getElementById('run-val').textContent = fmt(r.val_loss);
      }
    }
    if (last) {
      document.getElementById('run-step').textContent = String(last.step);
      document.getElementById('run-loss').textContent = fmt(last.loss);
    }
    const st = document.getElementById('run-status');
    st.textContent = m.status;
    st.className = `status-${m.status}`;
    if (m.records.length) chart.update('none');
    return m.status;
  };
  await poll();
  timers.push(setInterval(() => poll().catch(showError), 1000));
}

// ---- evaluations across runs ----------------------------------------------------------------------------------

async function evalsPage() {
  const { evals } = await api('/api/evals');
  // One row per run, one column per (task, metric).
  const cols = [...new Set(evals.map((e) => `${e.task} ${e.metric}`))].sort();
  const runs = [...new Set(evals.map((e) => e.run))].sort();
  const cell = new Map(evals.map((e) => [`${e.run}\u0000${e.task} ${e.metric}`, e]));
  const label = (run) => { const e = evals.find((x) => x.run === run); return e && e.version ? `${e.version} (${run})` : run; };
  view.innerHTML = `<h1>Evaluations</h1>${evals.length === 0 ? '<p class="muted">No evaluation reports yet (lmforge eval --model RUN --output RUN/eval/NAME.json, or lmforge registry eval).</p>' : `<div id="evals-table">${table(['run', ...cols], runs.map((r) => [`<a href="#/run/${encodeURIComponent(r)}">${esc(label(r))}</a>`, ...cols.map((c) => { const e = cell.get(`${r}\u0000${c}`); return e ? `${fmt(e.value)}${e.stderr === null ? '' : ` <span class="muted">± ${fmt(e.stderr)}</span>`}` : ''; })]))}</div>`}`;
}

// ---- compare two runs -------------------------------------------------------------------------------------------

async function comparePage(arg) {
  const { runs } = await api('/api/runs');
  const [a0, b0] = arg ? arg.split('..') : [runs[1]?.id ?? '', runs[0]?.id ?? ''];
  const opts = (sel) => runs.map((r) => `<option value="${esc(r.id)}"${r.id === sel ? ' selected' : ''}>${esc(r.version ? `${r.version} (${r.id})` : r.id)}</option>`).join('');
  view.innerHTML = `<h1>Compare</h1><p>A <select id="cmp-a">${opts(a0)}</select> → B <select id="cmp-b">${opts(b0)}</select> <button id="cmp-go">Compare</button></p><div id="cmp-out"></div>`;
  document.getElementById('cmp-go').onclick = () => { location.hash = `#/compare/${encodeURIComponent(document.getElementById('cmp-a').value)}..${encodeURIComponent(document.getElementById('cmp-b').value)}`; };
  if (!arg || !a0 || !b0) return;
  const c = await api(`/api/compare?a=${encodeURIComponent(a0)}&b=${encodeURIComponent(b0)}`);
  const show = (v) => (v === undefined ? '(absent)' : typeof v === 'string' ? v : JSON.stringify(v));
  const out = document.getElementById('cmp-out');
  out.innerHTML = `<h2>Config diff</h2>${c.config.length ? table(['key', 'A', 'B'], c.config.map((x) => [esc(x.key), esc(show(x.a)), esc(show(x.b))])) : '<p class="muted">Same config.</p>'}
    <h2>Data diff</h2>${c.data.length ? table(['what', 'A', 'B'], c.data.map((x) => [esc(x.what), esc(x.a ?? '(none)'), esc(x.b ?? '(none)')])) : '<p class="muted">Same data (every file\'s SHA-256).</p>'}
    <h2>Final losses</h2>${table(['metric', 'A', 'B', 'Δ'], c.final.map((f) => [esc(f.metric), fmt(f.a), fmt(f.b), f.a !== null && f.b !== null ? signed(f.b - f.a) : 'n/a']))}
    <h2>Evaluation deltas (95% interval)</h2>${c.evals.length ? table(['task', 'metric', 'A', 'B', 'Δ', '95% CI', 'interval from', 'significant'], c.evals.map((e) => [esc(e.task), esc(e.metric), fmt(e.a), fmt(e.b), signed(e.diff), e.low === null ? 'n/a' : `[${signed(e.low)}, ${signed(e.high)}]`, esc(e.method === 'paired bootstrap' ? `paired bootstrap (${e.pairedItems} items)` : e.method ?? 'n/a'), e.significant === null ? 'n/a' : e.significant ? '<b>yes</b>' : 'no'])) : '<p class="muted">No evaluation both ran.</p>'}
    <h2>Loss curves</h2><div class="chart"><canvas id="cmp-chart"></canvas></div>`;
  const curve = async (id) => (await api(`/api/metrics?id=${encodeURIComponent(id)}&offset=0`)).records.filter((r) => typeof r.loss === 'number').map((r) => ({ x: r.step, y: r.loss }));
  const [pa, pb] = await Promise.all([curve(a0), curve(b0)]);
  charts.push(new Chart(document.getElementById('cmp-chart'), {
    type: 'line',
    data: { datasets: [{ label: `A: ${a0}`, data: pa, borderColor: COLORS[0], pointRadius: 0, borderWidth: 1.5 }, { label: `B: ${b0}`, data: pb, borderColor: COLORS[1], pointRadius: 0, borderWidth: 1.5 }] },
    options: { animation: false, maintainAspectRatio: false, parsing: false, scales: { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { title: { display: true, text: 'train loss' } } } },
  }));
}

// ---- studies and ablations --------------------------------------------------------------------------------------

async function studiesPage() {
  const { studies } = await api('/api/studies');
  view.innerHTML = `<h1>Ablations &amp; studies</h1>${studies.length === 0 ? '<p class="muted">No studies yet (lmforge study or lmforge ablate).</p>' : table(['study', 'rows', 'seeds', 'baseline'], studies.map((s) => [`<a href="#/study/${encodeURIComponent(s.id)}">${esc(s.name)}</a>`, String(s.rows), esc(s.seeds.join(', ')), esc(s.baseline ?? '')]))}`;
}

const pText = (p) => (p === null || p === undefined ? 'n/a' : (p < 1e-4 ? p.toExponential(1) : p < 0.01 ? p.toPrecision(2) : p.toFixed(3)) + (p < 0.001 ? ' ***' : p < 0.01 ? ' **' : p < 0.05 ? ' *' : ''));

async function studyPage(id) {
  const s = await api(`/api/study?id=${encodeURIComponent(id)}`);
  const label = (r) => (r.budget === null ? r.variant : `${r.variant}@${r.budget}`);
  const changes = (v) => Object.entries((s.changes || {})[v] || {}).map(([k, x]) => `${k}=${x}`).join(', ') || (v === s.baseline ? '(base)' : '');
  const rows = s.rows.map((r) => [esc(label(r)), esc(changes(r.variant)), String(r.steps), `${fmt(r.val_loss.mean)} ± ${fmt(r.val_loss.std)}`, esc(r.seeds_losses.map((x) => x.toFixed(4)).join(', ')),
    r.vs_baseline === null ? 'baseline' : `${signed(r.vs_baseline.diff)} ${r.vs_baseline.low === null ? '' : `[${signed(r.vs_baseline.low)}, ${signed(r.vs_baseline.high)}]`}`,
    r.vs_baseline === null ? '' : `<span class="${(r.vs_baseline.p ?? 1) < 0.05 ? 'sig' : ''}">${pText(r.vs_baseline.p)}</span>`]);
  view.innerHTML = `<h1>${esc(s.study)}</h1><p class="muted">${esc(s.file)} · CPU ${esc(s.cpu ?? '')} · seeds ${esc(s.seeds.join(', '))} · baseline ${esc(s.baseline)}</p>
    ${table(['variant', 'changes', 'steps', `val loss mean ± std`, 'per seed', `Δ vs ${s.baseline} [95% CI]`, 'p (Welch)'], rows)}
    <div class="chart"><canvas id="delta-chart"></canvas></div>`;
  const vs = s.rows.filter((r) => r.vs_baseline && r.vs_baseline.low !== null);
  charts.push(new Chart(document.getElementById('delta-chart'), {
    type: 'bar',
    data: { labels: vs.map(label), datasets: [{ label: `Δ val loss vs ${s.baseline}, Welch 95% interval`, data: vs.map((r) => [r.vs_baseline.low, r.vs_baseline.high]), backgroundColor: vs.map((r) => ((r.vs_baseline.p ?? 1) < 0.05 ? (r.vs_baseline.diff < 0 ? '#2ca02c99' : '#d6272899') : '#7f7f7f66')) }] },
    options: { animation: false, maintainAspectRatio: false, indexAxis: 'y' },
  }));
}

// ---- lineage ----------------------------------------------------------------------------------------------------

async function lineagePage() {
  const g = await api('/api/lineage');
  // Layers by depth from the roots; nodes of a layer side by side; edges parent → child.
  const parents = new Map(g.edges.map((e) => [e.to, e.from]));
  const depth = (id, seen = new Set()) => (parents.has(id) && !seen.has(id) ? 1 + depth(parents.get(id), seen.add(id)) : 0);
  const layers = [];
  for (const n of g.nodes) (layers[depth(n.id)] ??= []).push(n);
  // A layer wider than PER_ROW nodes wraps onto more rows.
  const W = 230, H = 70, PER_ROW = 5, pos = new Map();
  let y = 20;
  for (const ns of layers.filter(Boolean)) {
    ns.forEach((n, i) => pos.set(n.id, { x: 20 + (i % PER_ROW) * W, y: y + Math.floor(i / PER_ROW) * H }));
    y += Math.ceil(ns.length / PER_ROW) * H + 40;
  }
  const width = 40 + Math.min(PER_ROW, Math.max(1, ...layers.filter(Boolean).map((l) => l.length))) * W;
  const height = y;
  const edges = g.edges.map((e) => { const a = pos.get(e.from), b = pos.get(e.to); return `<line x1="${a.x + 100}" y1="${a.y + 40}" x2="${b.x + 100}" y2="${b.y}" stroke="#555" marker-end="url(#arrow)"/><text x="${(a.x + b.x) / 2 + 104}" y="${(a.y + b.y) / 2 + 24}" font-size="11" fill="#555">${esc(e.label)}</text>`; });
  const nodes = g.nodes.map((n) => { const p = pos.get(n.id); return `<g class="node"><rect x="${p.x}" y="${p.y}" width="200" height="40" rx="6" fill="${n.status === 'training' ? '#dcfce7' : n.status === 'external' ? '#f4f4f5' : '#dbeafe'}" stroke="#64748b"/><text x="${p.x + 8}" y="${p.y + 17}" font-size="12">${esc(n.label.length > 30 ? '…' + n.label.slice(-29) : n.label)}</text><text x="${p.x + 8}" y="${p.y + 32}" font-size="11" fill="#555">${esc(n.status)}</text></g>`; });
  view.innerHTML = `<h1>Lineage</h1><p class="muted">Each run is a node; an arrow goes from the run a version started from to the version.</p>
    <svg id="lineage" width="${width}" height="${height}"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>${edges.join('')}${nodes.join('')}</svg>`;
}

// ---- chat -------------------------------------------------------------------------------------------------------

async function chatPage() {
  const cfg = await api('/api/config');
  const base = localStorage.getItem('lmforge.chatBaseUrl') || cfg.chat_base_url || 'http://127.0.0.1:8000/v1';
  view.innerHTML = `<h1>Chat</h1>
    <p>OpenAI-compatible base URL <input type="text" id="chat-base" size="40" value="${esc(base)}"> <button id="chat-connect">Connect</button>
    model <select id="chat-model"></select> <span id="chat-state" class="muted"></span></p>
    <div class="chat-log" id="chat-log"></div>
    <textarea id="chat-input" rows="3" placeholder="Message"></textarea><br><button id="chat-send">Send</button>`;
  const messages = [];
  const state = document.getElementById('chat-state');
  const connect = async () => {
    const url = document.getElementById('chat-base').value.replace(/\/+$/, '');
    localStorage.setItem('lmforge.chatBaseUrl', url);
    try {
      const r = await fetch(`${url}/models`);
      const body = await r.json();
      const sel = document.getElementById('chat-model');
      sel.innerHTML = (body.data || []).map((m) => `<option>${esc(m.id)}</option>`).join('');
      state.textContent = `${(body.data || []).length} model(s)`;
    } catch (e) {
      state.textContent = `cannot reach ${url}/models (${e.message}); is lmforge serve running there?`;
    }
  };
  document.getElementById('chat-connect').onclick = () => connect();
  document.getElementById('chat-send').onclick = async () => {
    const input = document.getElementById('chat-input');
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    messages.push({ role: 'user', content: text });
    const log = document.getElementById('chat-log');
    log.insertAdjacentHTML('beforeend', `<div class="msg-user">${esc(text)}</div>`);
    const out = document.createElement('div');
    out.className = 'msg-assistant';
    log.appendChild(out);
    const url = document.getElementById('chat-base').value.replace(/\/+$/, '');
    try {
      const r = await fetch(`${url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: document.getElementById('chat-model').value, messages, stream: true, max_tokens: 200 }) });
      if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
      // Server-sent events: lines "data: {json}" separated by blank lines, ending with "data: [DONE]".
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      let reply = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let k;
        while ((k = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, k).trim();
          buf = buf.slice(k + 1);
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') continue;
          const delta = JSON.parse(data).choices?.[0]?.delta?.content ?? '';
          reply += delta;
          out.textContent = reply;
        }
      }
      messages.push({ role: 'assistant', content: reply });
      state.textContent = 'done';
    } catch (e) {
      out.className = 'error';
      out.textContent = `error: ${e.message}`;
    }
  };
  await connect();
}

// ---- routing ----------------------------------------------------------------------------------------------------

async function route() {
  clearPage();
  const h = location.hash.replace(/^#\/?/, '') || 'runs';
  const [page, ...rest] = h.split('/');
  const arg = decodeURIComponent(rest.join('/'));
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.nav === page || (a.dataset.nav + 's') === page || a.dataset.nav === page + 's');
  view.innerHTML = '<p class="muted">Loading…</p>';
  try {
    if (page === 'run') await runPage(arg);
    else if (page === 'studies') await studiesPage();
    else if (page === 'evals') await evalsPage();
    else if (page === 'compare') await comparePage(arg);
    else if (page === 'study') await studyPage(arg);
    else if (page === 'lineage') await lineagePage();
    else if (page === 'chat') await chatPage();
    else await runsPage();
  } catch (e) {
    view.innerHTML = '';
    showError(e);
  }
}

window.addEventListener('hashchange', route);
route();

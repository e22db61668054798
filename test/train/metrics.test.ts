import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MetricsLogger, ProgressTracker, estimateFlopsPerToken, formatDuration, formatProgress, readMetrics,
} from '../../src/train/metrics.js';

test('metrics.jsonl: one JSON line per record, appended; resume drops records at and after the resumed step', () => {
  const run = mkdtempSync(join(tmpdir(), 'lmf-metrics-'));
  const log = new MetricsLogger(run);
  for (let step = 0; step < 10; step++) log.log({ step, loss: 5 - step * 0.1, kind: 'train' });
  log.log({ step: 10, loss: Infinity, kind: 'train' });
  // Written per line: readable before close.
  assert.equal(readFileSync(log.path, 'utf8').split('\n').length, 12);
  log.close();
  assert.throws(() => log.log({ step: 11 }), /log after close/);
  assert.equal(readMetrics(log.path)[10]!.loss, null);

  // A run killed mid-line leaves a torn record; resuming from step 6 keeps steps 0..5 only.
  appendFileSync(log.path, '{"step": 11, "lo');
  const resumed = new MetricsLogger(run, { resumeFrom: 6 });
  assert.deepEqual(readMetrics(resumed.path).map((r) => r.step), [0, 1, 2, 3, 4, 5]);
  resumed.log({ step: 6, loss: 4.4, kind: 'train' });
  resumed.close();
  const lines = readFileSync(log.path, 'utf8').trimEnd().split('\n');
  assert.equal(lines.length, 7);
  assert.deepEqual(JSON.parse(lines[6]!), { step: 6, loss: 4.4, kind: 'train' });

  // A fresh run starts an empty log.
  new MetricsLogger(run).close();
  assert.equal(readFileSync(log.path, 'utf8'), '');
  rmSync(run, { recursive: true });
});

test('estimateFlopsPerToken matches nanoGPT estimate_mfu for GPT-2 124M', () => {
  // nanoGPT: N = 124,439,808 − 786,432 (wpe) = 123,653,376 params; L 12, C 768, T 1024.
  const N = 123653376;
  const f = estimateFlopsPerToken({ nParams: N, nLayer: 12, nEmbd: 768, blockSize: 1024 });
  assert.equal(f, 6 * N + 12 * 12 * 768 * 1024);
  assert.equal(f, 855166464); // python3 -c "print(6*123653376 + 12*12*768*1024)"
});

test('progress tracker: smoothed ms/iter, tokens/s, MFU and ETA; the progress line', () => {
  const p = new ProgressTracker({ maxSteps: 5000, tokensPerStep: 64 * 256, flopsPerToken: 1e7, peakFlops: 2e11 });
  const first = p.update(0, 4.2, 1e-5, 900); // warm-up step: reported, not averaged
  assert.equal(first.ms_per_iter, 900);
  assert.equal(p.update(1, 4.1, 2e-5, 200).ms_per_iter, 200);
  const r = p.update(2, 4.0, 3e-5, 300);
  assert.ok(Math.abs(r.ms_per_iter - 210) < 1e-9); // 0.9·200 + 0.1·300
  assert.ok(Math.abs(r.tokens_per_s - 16384 / 0.21) < 1e-6);
  assert.ok(Math.abs(r.mfu! - (1e7 * r.tokens_per_s) / 2e11) < 1e-12);
  assert.ok(Math.abs(r.eta_s - 4997 * 0.21) < 1e-9);
  const line = formatProgress({ ...r, step: 120, loss: 2.34567, lr: 1e-3, ms_per_iter: 245.06, tokens_per_s: 16720.4, mfu: 0.123, eta_s: 1196 });
  assert.equal(line, 'step  120/5000 | loss 2.3457 | lr 1.00e-3 | 245.1 ms/iter | 16,720 tok/s | MFU 12.30% | ETA 19m56s');
  const noPeak = new ProgressTracker({ maxSteps: 10, tokensPerStep: 1, flopsPerToken: 1, peakFlops: null });
  assert.match(formatProgress(noPeak.update(9, 1, 1, 1)), /MFU n\/a \| ETA 0s$/);
  assert.equal(formatDuration(3725), '1h02m');
  assert.equal(formatDuration(185), '3m05s');
  assert.equal(formatDuration(12.4), '12s');
  assert.equal(formatDuration(NaN), '?');
});

// The bias_probe task type of the harness: `lmforge eval --tasks gender_occupation` scores the probe file the task
// names (data.path, beside the task file) with bias-probe.ts and reports its figures as harness metrics. A metric's
// stderr is the bootstrap interval's half-width / 1.96; the intervals themselves, per category and per attribute,
// are in the report's details, and each attribute's b(a) in the per-sample log (--log-samples). Not the scoring
// (bias-probe.ts).
import { existsSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { loadBiasProbe, scoreBiasProbe, type Interval } from './bias-probe.js';
import type { Metrics, RunOptions, TaskResult } from './harness.js';
import type { MetricValue } from './metrics.js';
import type { LanguageModel } from './model.js';
import type { TaskSpec } from './task-spec.js';

function metric(i: Interval): MetricValue {
  return { value: i.value, stderr: Number.isFinite(i.lo) ? (i.hi - i.lo) / (2 * 1.96) : null };
}

export function runBiasProbeTask(spec: TaskSpec, model: LanguageModel, options: RunOptions): TaskResult {
  const started = performance.now();
  if (!existsSync(spec.data.path)) throw new UserError(`task ${spec.task}: probe file ${spec.data.path} not found (data.path is relative to the task file)`);
  const probe = loadBiasProbe(spec.data.path);
  const r = scoreBiasProbe(probe, model, { ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  const metrics: Metrics = {};
  const want = (m: string): boolean => spec.metrics.includes(m);
  if (want('stereotype_score') && r.stereotype_score) metrics.stereotype_score = metric(r.stereotype_score);
  if (want('mean_abs_bias') && r.mean_abs_bias) metrics.mean_abs_bias = metric(r.mean_abs_bias);
  if (r.pairsOverall && want('likelihood_diff')) metrics.likelihood_diff = metric(r.pairsOverall.likelihood_diff);
  if (r.pairsOverall && want('pct_stereotype')) metrics.pct_stereotype = metric(r.pairsOverall.pct_stereotype);
  const subsets: Record<string, Metrics> = {};
  const subsetSizes: Record<string, number> = {};
  for (const [c, v] of Object.entries(r.categories)) {
    subsets[c] = { mean_bias: metric(v) };
    subsetSizes[c] = v.n;
  }
  for (const [c, v] of Object.entries(r.pairs)) {
    const m: Metrics = {};
    if (want('likelihood_diff')) m.likelihood_diff = metric(v.likelihood_diff);
    if (want('pct_stereotype')) m.pct_stereotype = metric(v.pct_stereotype);
    subsets[`pairs/${c}`] = m;
    subsetSizes[`pairs/${c}`] = v.n;
  }
  const n = r.attributes.length + Object.values(r.pairs).reduce((a, p) => a + p.n, 0);
  return {
    task: spec.task, version: spec.version, nShot: 0, n, metrics, subsets, subsetSizes,
    details: { probe: r.probe, file: spec.data.path, groups: r.groups, baseline_lean: r.baseline_lean, sentences: r.sentences, stereotype_score: r.stereotype_score, mean_abs_bias: r.mean_abs_bias, categories: r.categories, pairs: r.pairs, pairs_overall: r.pairsOverall },
    ...(options.logSamples ? { samples: r.attributes.map((a, i) => ({ doc_id: i, ...a })) } : {}),
    seconds: (performance.now() - started) / 1000,
  };
}

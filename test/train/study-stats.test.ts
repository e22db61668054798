// The study's statistics: Student's t against tabulated quantiles, Welch's interval against its formula worked by
// hand, the L(N) = a·N^(−α) + c fit recovering known parameters from synthetic data (exact and noisy), the power-law
// fit of the compute-optimal frontier and the frontier's Pareto front. Not the runner (study.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitPowerLaw, fitScalingLaw, studentTQuantile, summarize, welchInterval } from '../../src/train/study-stats.js';
import { paretoFrontier, type StudyRow } from '../../src/train/study.js';

const near = (got: number, want: number, tol: number, what: string): void => assert.ok(Math.abs(got - want) <= tol, `${what}: ${got}, expected ${want} ± ${tol}`);

test('study stats: Student t quantiles match the tables; summaries; Welch interval', () => {
  // t_{0.975} for df 1, 2, 5, 30 (standard tables) and a fractional df.
  near(studentTQuantile(0.975, 1), 12.7062047, 1e-5, 'df 1');
  near(studentTQuantile(0.975, 2), 4.30265273, 1e-6, 'df 2');
  near(studentTQuantile(0.975, 5), 2.57058184, 1e-6, 'df 5');
  near(studentTQuantile(0.975, 30), 2.04227246, 1e-6, 'df 30');
  near(studentTQuantile(0.025, 5), -2.57058184, 1e-6, 'lower tail');
  assert.deepEqual(summarize([2]), { n: 1, mean: 2, std: null });
  near(summarize([1, 2, 3, 4]).std!, Math.sqrt(5 / 3), 1e-12, 'sample std');
  // Welch: a = [1.0, 1.2, 1.1], b = [1.5, 1.4, 1.9, 1.7]; diff −0.525, se² = 0.01/3 + 0.04917/4, df ≈ 4.54.
  const w = welchInterval([1.0, 1.2, 1.1], [1.5, 1.4, 1.9, 1.7]);
  near(w.diff, -0.525, 1e-12, 'diff');
  const va = 0.01 / 3;
  const vb = (((1.5 - 1.625) ** 2 + (1.4 - 1.625) ** 2 + (1.9 - 1.625) ** 2 + (1.7 - 1.625) ** 2) / 3) / 4;
  const df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3);
  near(w.df!, df, 1e-9, 'Welch df');
  const half = studentTQuantile(0.975, df) * Math.sqrt(va + vb);
  near(w.low!, -0.525 - half, 1e-9, 'low');
  near(w.high!, -0.525 + half, 1e-9, 'high');
  assert.ok(w.high! < 0, 'a clear difference excludes 0');
  // Two-sided p of t = −4.2 at df 4.366: 0.0113747363 (Simpson's rule on the t density, 2e5 panels, in Python).
  near(w.p!, 0.011374736343308989, 1e-8, 'Welch p');
  near(welchInterval([1, 2], [1, 2]).p!, 1, 1e-12, 'equal means: p = 1');
  assert.equal(welchInterval([1], [2, 3]).low, null, 'one seed: no interval');
  assert.equal(welchInterval([1], [2, 3]).p, null, 'one seed: no test');
});

test('study stats: the L(N) fit recovers a, α, c from synthetic data (exact and with 0.3% noise)', () => {
  const N = [1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 3e6];
  const [a, alpha, c] = [40, 0.3, 1.4];
  const exact = N.map((n) => a * n ** -alpha + c);
  const f = fitScalingLaw(N, exact);
  near(f.alpha, alpha, 1e-4, 'alpha (exact)');
  near(f.c, c, 1e-4, 'c (exact)');
  near(f.a / a, 1, 1e-3, 'a (exact)');
  assert.ok(f.rmse < 1e-6, `rmse ${f.rmse}`);
  const noise = [0.003, -0.002, 0.001, -0.003, 0.002, 0.0, -0.001, 0.002];
  const g = fitScalingLaw(N, exact.map((l, i) => l * (1 + noise[i]!)));
  near(g.alpha, alpha, 0.06, 'alpha (noisy)');
  near(g.c, c, 0.06, 'c (noisy)');
  assert.ok(g.r2 > 0.99, `r2 ${g.r2}`);
  assert.throws(() => fitScalingLaw([1, 2], [3, 4]), /need ≥ 3 paired points/);
});

test('study stats: the frontier power law N_opt = k·C^β', () => {
  const C = [1e10, 3e10, 1e11, 3e11];
  const f = fitPowerLaw(C, C.map((x) => 2e-3 * x ** 0.7));
  near(f.beta, 0.7, 1e-9, 'beta');
  near(f.k / 2e-3, 1, 1e-6, 'k');
  assert.throws(() => fitPowerLaw([1, -1], [1, 2]), /positive/);
});

test('study frontier: the Pareto front of loss against FLOPs, with near-equal costs (IsoFLOP rounding) counted as equal', () => {
  const row = (variant: string, flops: number, loss: number): StudyRow => ({
    variant, budget: null, shape: '', steps: 1, params_stored: 1, params_effective: 1, params_active: 1, params_non_embedding: variant.length * 1000,
    flops_per_token: 1, train_flops: flops, tokens_per_s: 1, peak_rss_mb: 1, val_loss: { n: 1, mean: loss, std: null }, seeds_losses: [loss], vs_baseline: null,
  });
  const rows = [row('a', 1.00e10, 3.0), row('bb', 0.99e10, 3.2), row('a', 3e10, 2.8), row('bb', 3e10, 2.7), row('ccc', 3.1e10, 2.75), row('ccc', 1e11, 2.4), row('bb', 1e11, 2.5)];
  assert.deepEqual(paretoFrontier(rows).map((p) => [p.variant, p.train_flops]), [['a', 1e10], ['bb', 3e10], ['ccc', 1e11]]);
});

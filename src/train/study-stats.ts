// The statistics a study reports: mean and sample standard deviation over seeds, Welch's t interval and test for
// the difference of two means, the scaling-law fit L(N) = a·N^(−α) + c (nonlinear least squares: a grid over c with a
// linear fit in log space, refined by damped Gauss–Newton) and a power law y = k·x^β fitted in log–log space.
// Plain numbers in, plain numbers out; not the study runner (study.ts) nor its plot (study-plot.ts).

export interface Summary {
  n: number;
  mean: number;
  /** Sample standard deviation (n − 1); null with one value. */
  std: number | null;
}

export function summarize(xs: readonly number[]): Summary {
  const n = xs.length;
  if (n === 0) throw new RangeError('summarize: no values');
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { n, mean, std: null };
  const v = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1);
  return { n, mean, std: Math.sqrt(v) };
}

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative). */
function logGamma(x: number): number {
  const g = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const z = x - 1;
  let s = g[0]!;
  for (let i = 1; i < 9; i++) s += g[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/** The regularized incomplete beta I_x(a, b), by its continued fraction (modified Lentz). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  // The fraction converges fast for x < (a + 1)/(a + b + 2); use the symmetry I_x(a, b) = 1 − I_{1−x}(b, a) otherwise.
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const front = Math.exp(a * Math.log(x) + b * Math.log(1 - x) - (logGamma(a) + logGamma(b) - logGamma(a + b))) / a;
  const tiny = 1e-300;
  let f = 1;
  let C = 1;
  let D = 0;
  for (let i = 0; i <= 400; i++) {
    const m = Math.floor(i / 2);
    let num: number;
    if (i === 0) num = 1;
    else if (i % 2 === 0) num = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m));
    else num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1));
    D = 1 + num * D;
    if (Math.abs(D) < tiny) D = tiny;
    D = 1 / D;
    C = 1 + num / C;
    if (Math.abs(C) < tiny) C = tiny;
    const cd = C * D;
    f *= cd;
    if (Math.abs(1 - cd) < 1e-15) break;
  }
  return front * (f - 1);
}

/** P(T ≤ t) for Student's t with df degrees of freedom (df may be fractional, as Welch's is). */
export function studentTCdf(t: number, df: number): number {
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t (bisection on the CDF). */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`studentTQuantile: p = ${p}, expected a probability in (0, 1)`);
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export interface Difference {
  /** mean(a) − mean(b). */
  diff: number;
  /** The confidence interval of diff (null when either side has fewer than two values). */
  low: number | null;
  high: number | null;
  /** Welch–Satterthwaite degrees of freedom. */
  df: number | null;
  /** Two-sided p-value of Welch's t test of equal means (null when either side has fewer than two values). */
  p: number | null;
}

/** Welch's t interval for mean(a) − mean(b) at the given confidence (unequal variances), and the test's p-value. */
export function welchInterval(a: readonly number[], b: readonly number[], confidence = 0.95): Difference {
  const sa = summarize(a);
  const sb = summarize(b);
  const diff = sa.mean - sb.mean;
  if (sa.std === null || sb.std === null) return { diff, low: null, high: null, df: null, p: null };
  const va = sa.std ** 2 / sa.n;
  const vb = sb.std ** 2 / sb.n;
  const se = Math.sqrt(va + vb);
  if (se === 0) return { diff, low: diff, high: diff, df: Infinity, p: diff === 0 ? 1 : 0 };
  const df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1));
  const t = studentTQuantile(1 - (1 - confidence) / 2, df);
  // p = P(|T| ≥ |diff|/se) under equal means, T ~ Student's t with Welch's df.
  const p = 2 * (1 - studentTCdf(Math.abs(diff) / se, df));
  return { diff, low: diff - t * se, high: diff + t * se, df, p };
}

/** Least squares y = intercept + slope·x. */
function linearFit(x: readonly number[], y: readonly number[]): { slope: number; intercept: number } {
  const n = x.length;
  const mx = x.reduce((s, v) => s + v, 0) / n;
  const my = y.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i]! - mx) * (y[i]! - my);
    sxx += (x[i]! - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  return { slope, intercept: my - slope * mx };
}

export interface PowerLawFit {
  /** y = k · x^beta. */
  k: number;
  beta: number;
  /** R² of the fit in log–log space (NaN with fewer than three points). */
  r2: number;
}

/** y = k·x^β by least squares on (ln x, ln y); every value must be positive. */
export function fitPowerLaw(x: readonly number[], y: readonly number[]): PowerLawFit {
  if (x.length < 2 || x.length !== y.length) throw new RangeError(`fitPowerLaw: need ≥ 2 paired points, got ${x.length} and ${y.length}`);
  if ([...x, ...y].some((v) => !(v > 0))) throw new RangeError('fitPowerLaw: every value must be positive');
  const lx = x.map(Math.log);
  const ly = y.map(Math.log);
  const { slope, intercept } = linearFit(lx, ly);
  const my = ly.reduce((s, v) => s + v, 0) / ly.length;
  const ssTot = ly.reduce((s, v) => s + (v - my) ** 2, 0);
  const ssRes = ly.reduce((s, v, i) => s + (v - intercept - slope * lx[i]!) ** 2, 0);
  return { k: Math.exp(intercept), beta: slope, r2: x.length > 2 && ssTot > 0 ? 1 - ssRes / ssTot : Number.NaN };
}

export interface ScalingFit {
  /** L(N) = a · N^(−alpha) + c. */
  a: number;
  alpha: number;
  c: number;
  /** Root mean square residual of L, and R² against the mean. */
  rmse: number;
  r2: number;
  /** Gauss–Newton iterations taken after the grid. */
  iterations: number;
}

/** L(N) = a·N^(−α) + c at θ = (ln a, α, c). */
function predict(theta: readonly [number, number, number], N: number): number {
  return Math.exp(theta[0] - theta[1] * Math.log(N)) + theta[2];
}

function sse(theta: readonly [number, number, number], N: readonly number[], L: readonly number[]): number {
  return N.reduce((s, n, i) => s + (predict(theta, n) - L[i]!) ** 2, 0);
}

/**
 * Fits L(N) = a·N^(−α) + c by nonlinear least squares. Start: for each c on a grid in [0, min L), the linear fit of
 * ln(L − c) on ln N gives a and α; the c with the least squared error in L wins. Then damped Gauss–Newton
 * (Levenberg–Marquardt) on (ln a, α, c) refines all three together, keeping c ≥ 0 when every L is positive.
 */
export function fitScalingLaw(N: readonly number[], L: readonly number[]): ScalingFit {
  if (N.length < 3 || N.length !== L.length) throw new RangeError(`fitScalingLaw: need ≥ 3 paired points (N, L), got ${N.length} and ${L.length}`);
  if (N.some((n) => !(n > 0)) || L.some((l) => !Number.isFinite(l))) throw new RangeError('fitScalingLaw: N must be positive and L finite');
  const lnN = N.map(Math.log);
  const minL = Math.min(...L);
  let best: [number, number, number] = [0, 0, 0];
  let bestErr = Infinity;
  const steps = 400;
  for (let i = 0; i < steps; i++) {
    const c = minL > 0 ? (minL * i) / steps : minL - 1 + i / steps;
    const { slope, intercept } = linearFit(lnN, L.map((l) => Math.log(l - c)));
    const theta: [number, number, number] = [intercept, -slope, c];
    const err = sse(theta, N, L);
    if (err < bestErr) {
      bestErr = err;
      best = theta;
    }
  }
  // Levenberg–Marquardt: (JᵀJ + λ·diag(JᵀJ)) δ = −Jᵀr, λ shrinking on success and growing on failure.
  let theta = best;
  let err = bestErr;
  let lambda = 1e-3;
  let iterations = 0;
  let converged = false;
  for (; iterations < 200 && !converged; iterations++) {
    const JtJ = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];
    const Jtr = [0, 0, 0];
    for (let i = 0; i < N.length; i++) {
      const p = Math.exp(theta[0] - theta[1] * lnN[i]!); // a·N^(−α)
      const r = p + theta[2] - L[i]!;
      const J = [p, -p * lnN[i]!, 1];
      for (let u = 0; u < 3; u++) {
        Jtr[u]! += J[u]! * r;
        for (let v = 0; v < 3; v++) JtJ[u]![v]! += J[u]! * J[v]!;
      }
    }
    let improved = false;
    for (let tries = 0; tries < 20 && !improved; tries++) {
      const M = JtJ.map((row, u) => row.map((x, v) => (u === v ? x * (1 + lambda) + 1e-300 : x)));
      const delta = solve3(M, Jtr.map((g) => -g));
      if (!delta) {
        lambda *= 10;
        continue;
      }
      // A loss floor below zero means nothing for cross-entropy: c stays ≥ 0 (when the data allow it).
      const floor = minL > 0 ? 0 : -Infinity;
      const next: [number, number, number] = [theta[0] + delta[0]!, theta[1] + delta[1]!, Math.max(floor, theta[2] + delta[2]!)];
      const e = sse(next, N, L);
      if (Number.isFinite(e) && e < err) {
        const gain = err - e;
        theta = next;
        err = e;
        lambda = Math.max(lambda / 10, 1e-12);
        improved = true;
        converged = gain <= 1e-14 * err;
      } else {
        lambda *= 10;
      }
    }
    if (!improved) break;
  }
  const meanL = L.reduce((s, v) => s + v, 0) / L.length;
  const ssTot = L.reduce((s, v) => s + (v - meanL) ** 2, 0);
  return {
    a: Math.exp(theta[0]), alpha: theta[1], c: theta[2],
    rmse: Math.sqrt(err / N.length), r2: ssTot > 0 ? 1 - err / ssTot : Number.NaN, iterations,
  };
}

/** Solves a 3×3 system by Gaussian elimination with partial pivoting (null when singular). */
function solve3(M: number[][], b: number[]): number[] | null {
  const A = M.map((row, i) => [...row, b[i]!]);
  for (let col = 0; col < 3; col++) {
    let piv = col;
    for (let r = col + 1; r < 3; r++) if (Math.abs(A[r]![col]!) > Math.abs(A[piv]![col]!)) piv = r;
    if (Math.abs(A[piv]![col]!) < 1e-300) return null;
    [A[col], A[piv]] = [A[piv]!, A[col]!];
    for (let r = 0; r < 3; r++) {
      if (r === col) continue;
      const f = A[r]![col]! / A[col]![col]!;
      for (let k = col; k < 4; k++) A[r]![k]! -= f * A[col]![k]!;
    }
  }
  const x = [0, 1, 2].map((i) => A[i]![3]! / A[i]![i]!);
  return x.every(Number.isFinite) ? x : null;
}

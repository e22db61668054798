// Scalar math for the reference backend, in float64: erf (JavaScript has none), GELU variants and their
// derivatives. Accurate to ~1e-15 relative so that float64 finite-difference checks are meaningful.

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const INV_SQRT_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * erf(x). For |x| < 3: erf(x) = 2/√π · e^{−x²} · Σ 2ⁿ x^{2n+1} / (1·3·…·(2n+1)), a series of positive terms
 * (no cancellation). For |x| ≥ 3: 1 − erfc(x) with erfc from its continued fraction (modified Lentz).
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    const r = TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  const r = 1 - erfcContinuedFraction(ax);
  return x < 0 ? -r : r;
}

/** erfc(x) for x ≥ 3: e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))). */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let C = x;
  let D = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    D = x + a * D;
    D = D === 0 ? tiny : D;
    C = x + a / C;
    C = C === 0 ? tiny : C;
    D = 1 / D;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** GELU, exact: x·Φ(x) = ½x(1 + erf(x/√2)). */
export function gelu(x: number): number {
  return 0.5 * x * (1 + erf(x * INV_SQRT_2));
}

/** d/dx x·Φ(x) = Φ(x) + x·φ(x). */
export function geluGrad(x: number): number {
  return 0.5 * (1 + erf(x * INV_SQRT_2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

/** GELU, tanh approximation: ½x(1 + tanh(√(2/π)(x + 0.044715x³))). */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

export function geluTanhGrad(x: number): number {
  const t = Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
}

export function sigmoid(x: number): number {
  // Split by sign so that exp never overflows.
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

// Confidence intervals shared by the layers that report rates (alignment metrics, red-team and injection tests).

/** Wilson score interval of k successes in n at 95% (z = 1.96): well-behaved near 0 and 1, unlike p ± z·se. */
export function wilson(k: number, n: number, z = 1.959964): [number, number] {
  if (n === 0) return [0, 1];
  const p = k / n;
  const d = 1 + (z * z) / n;
  const centre = (p + (z * z) / (2 * n)) / d;
  const half = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

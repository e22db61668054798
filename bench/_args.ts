// Small helpers shared by the benchmark suites: the median of timings and `--name=value` flags.

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The value given as `--name=value`, or undefined. */
export function stringFlag(args: readonly string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** The positive integer given as `--name=N`, or `fallback`; anything else is an error naming the suite and flag. */
export function intFlag(suite: string, args: readonly string[], name: string, fallback: number): number {
  const value = stringFlag(args, name);
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`bench/${suite}: --${name} expects a positive integer, got ${value}`);
  return n;
}

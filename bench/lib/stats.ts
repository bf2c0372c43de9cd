/** The median of a list of figures (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The run with the median figure (of an even count, the lower of the middle two): a real run, not a mean of two. */
export function medianBy<T>(runs: readonly T[], figure: (run: T) => number): T {
  const s = [...runs].sort((a, b) => figure(a) - figure(b));
  return s[Math.floor((s.length - 1) / 2)]!;
}

/**
 * Levenshtein distance, for "did you mean ...?" hints in the policy loader and the trigger parser. Strings whose
 * lengths differ by more than `maxLengthGap` are not compared (returns a large number): they are never close.
 */
export function editDistance(a: string, b: string, maxLengthGap: number): number {
  if (Math.abs(a.length - b.length) > maxLengthGap) return 99;
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

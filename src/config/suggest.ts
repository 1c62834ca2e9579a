// "Did you mean" for misspelt field and enum names.

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

const squash = (s: string) => s.toLowerCase().replace(/[-_]/g, '');

/** The candidate closest to `word` (same letters ignoring case, "_" and "-", or a few edits away). */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = squash(word);
  const same = candidates.find((c) => squash(c) === w);
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = distance(w, squash(c));
    if (d < bestScore) {
      best = c;
      bestScore = d;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(w.length / 3)));
  return bestScore <= limit ? best : undefined;
}

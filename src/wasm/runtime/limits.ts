// Parsing of the runtime limits' command-line values.

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1e3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
};

/** Bytes in a size written as Kubernetes writes quantities ("512Mi", "1Gi", "500M", "1048576"), or undefined. */
export function parseByteSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(B|K|k|M|G|Ki|Mi|Gi)?$/.exec(text.trim());
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2] ?? '']!);
  return Number.isFinite(bytes) ? bytes : undefined;
}

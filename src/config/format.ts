import type { Problem } from './types.ts';

/** `file:line:col  Kind namespace/name  field.path: message` (two spaces between the three parts). */
export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col}  ${p.kind} ${p.name}  ${p.field}: ${p.message}`;
}

// Renders docs/abi.md from the host function table (npm run docs:abi; a test keeps them equal).
import { HOST_FUNCTIONS } from './table.ts';

export function renderAbiDoc(): string {
  const counts = { implemented: 0, partial: 0, unimplemented: 0 };
  for (const f of HOST_FUNCTIONS) counts[f.support]++;
  const lines = [
    '# Proxy-Wasm ABI support',
    '',
    '<!-- Generated from src/wasm/abi/table.ts by `npm run docs:abi`. Do not edit by hand. -->',
    '',
    'Every host function a Proxy-Wasm module may import, and what wasmgate does with it.',
    'Any other import a module declares in `env` or WASI is linked to a stub that logs once and',
    'answers UNIMPLEMENTED (12) or NOSYS (52), so no module fails to load for lack of an import.',
    'WASI functions are registered under both `wasi_snapshot_preview1` and `wasi_unstable`.',
    '',
    `Totals: ${counts.implemented} implemented, ${counts.partial} partial, ${counts.unimplemented} not yet implemented.`,
    '',
    '| import | module | area | since | status | notes |',
    '|---|---|---|---|---|---|',
  ];
  for (const f of HOST_FUNCTIONS) {
    const module = f.module === 'wasi' ? 'wasi_snapshot_preview1' : 'env';
    lines.push(
      `| \`${f.name}\` | ${module} | ${f.area} | ${f.since} | ${f.support} | ${f.note.replaceAll('|', '\\|')} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(new URL('../../../docs/abi.md', import.meta.url), renderAbiDoc());
}

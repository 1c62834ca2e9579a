// `wasmgate init plugin --lang rust|go|assemblyscript NAME [--dir DIR]`: scaffolds a buildable
// Proxy-Wasm plugin project (source, build.sh, pinned dependencies, a WasmPlugin YAML with a
// relative file:// URL) from src/dev/templates/<lang>/ (*.tmpl; {{NAME}} and {{CRATE}} replaced).
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

// Two folders up from src/dev/init.ts and from dist/dev/init.js alike: the templates ship as
// sources (package.json "files" lists src/dev/templates).
const TEMPLATES = fileURLToPath(new URL('../../src/dev/templates/', import.meta.url));

export const LANGS = ['rust', 'go', 'assemblyscript'] as const;
export type Lang = (typeof LANGS)[number];
const ALIASES: Record<string, Lang> = { rs: 'rust', golang: 'go', as: 'assemblyscript' };

export class InitError extends Error {
  override name = 'InitError';
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.name.endsWith('.tmpl')) out.push(p);
  }
  return out.sort();
}

/** Writes the project; returns the files written (relative to the project folder). */
export function scaffold(lang: Lang, name: string, dir: string): string[] {
  if (!/^[a-z][a-z0-9-]{0,62}$/.test(name) || name.endsWith('-'))
    throw new InitError(
      `plugin name "${name}": use lower-case letters, digits and dashes, starting with a letter (it becomes the WasmPlugin name)`,
    );
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new InitError(`${dir} exists and is not empty`);
  const vars: Record<string, string> = { NAME: name, CRATE: name.replaceAll('-', '_') };
  const root = join(TEMPLATES, lang);
  const written: string[] = [];
  for (const file of walk(root)) {
    let rel = relative(root, file).slice(0, -'.tmpl'.length);
    if (rel === 'gitignore') rel = '.gitignore'; // npm drops .gitignore files from packages
    const text = readFileSync(file, 'utf8').replace(/\{\{(NAME|CRATE)\}\}/g, (_, k: string) => vars[k]!);
    const target = join(dir, rel);
    mkdirSync(join(target, '..'), { recursive: true });
    writeFileSync(target, text);
    if (rel.endsWith('.sh')) chmodSync(target, 0o755);
    written.push(rel);
  }
  return written;
}

const NEXT: Record<Lang, string> = {
  rust: "Debian's rustc/cargo 1.63+ with libstd-rust-dev-wasm32 (wasm32-wasi); the first build vendors crates from crates.io",
  go: 'Go 1.24 or newer; the first build downloads proxy-wasm-go-sdk from the Go module proxy',
  assemblyscript: 'Node and npm; the first build installs AssemblyScript 0.14.9 from package-lock.json',
};

/** The flags of `wasmgate init` (docs/reference.md lists them). */
export const INIT_OPTIONS = { lang: { type: 'string', short: 'l' }, dir: { type: 'string', short: 'd' } } as const;

export async function init(argv: string[], out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: INIT_OPTIONS,
  });
  const [what, name, ...rest] = positionals;
  if (what !== 'plugin' || !name || rest.length > 0)
    throw new InitError('usage: wasmgate init plugin --lang rust|go|assemblyscript NAME [--dir DIR]');
  const raw = (values.lang ?? '').toLowerCase();
  const lang = (LANGS as readonly string[]).includes(raw) ? (raw as Lang) : ALIASES[raw];
  if (!lang) throw new InitError(`--lang: expected one of ${LANGS.join(', ')}, got "${values.lang ?? ''}"`);
  const dir = resolve(values.dir ?? name);
  const files = scaffold(lang, name, dir);
  const shown = relative(process.cwd(), dir) || '.';
  out.write(
    `created ${shown}/ (${lang}): ${files.join(', ')}\n\n` +
      `  cd ${shown}\n  ./build.sh                      # needs ${NEXT[lang]}\n` +
      '  wasmgate dev wasmplugin.yaml    # proxy on :8080 in front of httpbin; rebuild and it reloads\n' +
      '  curl -i localhost:8080/headers; curl -i localhost:8080/headers -H x-deny:1\n',
  );
  return 0;
}

// ${VAR} and ${VAR:-default} in configuration files, expanded from the environment before the YAML
// is parsed (as docker compose does; `$${` is a literal `${`). Lines keep their numbers, so
// problems still point at the right line; a value holding a newline is refused for that reason.
// Comment lines (first non-blank character `#`) are left alone.

export interface EnvProblem {
  /** Offset of the `${` in the original text. */
  offset: number;
  message: string;
}

const REF = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}\n]*))?\}|\$\{[^}\n]*\}?/g;

export function expandEnv(
  text: string,
  env: NodeJS.ProcessEnv = process.env,
): { text: string; problems: EnvProblem[] } {
  if (!text.includes('${')) return { text, problems: [] };
  const problems: EnvProblem[] = [];
  let out = '';
  let lineStart = 0;
  for (const line of text.split(/(?<=\n)/)) {
    if (/^\s*#/.test(line) || !line.includes('${')) {
      out += line;
      lineStart += line.length;
      continue;
    }
    out += line.replace(REF, (match: string, name: string | undefined, fallback: string | undefined, at: number) => {
      if (match === '$${') return '${';
      const offset = lineStart + at;
      if (name === undefined) {
        problems.push({ offset, message: `${match}: expected \${NAME} or \${NAME:-default}` });
        return match;
      }
      const value = env[name];
      const chosen = value === undefined || (value === '' && fallback !== undefined) ? fallback : value;
      if (chosen === undefined) {
        problems.push({
          offset,
          message: `environment variable ${name} is not set (write \${${name}:-default} for a default)`,
        });
        return match;
      }
      if (chosen.includes('\n')) {
        problems.push({
          offset,
          message: `environment variable ${name} holds a newline; it cannot be substituted into YAML`,
        });
        return match;
      }
      return chosen;
    });
    lineStart += line.length;
  }
  return { text: out, problems };
}

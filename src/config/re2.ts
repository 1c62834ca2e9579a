// RE2 (Envoy's safe_regex, Istio's StringMatch.regex) to JavaScript RegExp. RE2 syntax that JS
// spells differently is translated ((?P<name>…), \A, \z, [[:alpha:]], a leading (?i)); what JS
// accepts but RE2 rejects (backreferences, look-around, possessive and atomic forms) is an error, as
// Envoy would refuse the route. Matching is a full match, as Envoy's safe_regex matcher.

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/** The JS source and flags for an RE2 pattern; throws an Error naming the unsupported construct. */
export function re2ToJs(pattern: string): { source: string; flags: string } {
  let src = pattern;
  let flags = '';
  const leading = /^\(\?([imsU]+)\)/.exec(src);
  if (leading) {
    for (const f of leading[1]!) {
      if (f === 'U') throw new Error('the (?U) flag (ungreedy) is not supported');
      if (!flags.includes(f)) flags += f;
    }
    src = src.slice(leading[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) throw new Error('trailing backslash at end of expression');
      if (/[1-9]/.test(n)) throw new Error(`backreference \\${n} is not RE2 syntax`);
      if (n === 'k' && src[i + 2] === '<') throw new Error('named backreference \\k<…> is not RE2 syntax');
      if (!inClass && n === 'A') {
        out += '^';
      } else if (!inClass && n === 'z') {
        out += '(?![\\s\\S])';
      } else if (n === 'Z') {
        throw new Error('\\Z is not RE2 syntax (use \\z)');
      } else if (n === 'Q') {
        const end = src.indexOf('\\E', i + 2);
        const literal = src.slice(i + 2, end < 0 ? undefined : end);
        out += literal.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
        i = end < 0 ? src.length : end + 1;
        continue;
      } else if (n === 'p' || n === 'P') {
        if (src[i + 2] === '{') {
          const close = src.indexOf('}', i + 3);
          if (close < 0) throw new Error('missing } in \\p{…}');
          out += `\\${n}${src.slice(i + 2, close + 1)}`;
          i = close;
        } else {
          out += `\\${n}{${src[i + 2] ?? ''}}`;
          i += 2;
        }
        if (!flags.includes('u')) flags += 'u';
        continue;
      } else if (n === 'C') {
        throw new Error('\\C (any byte) is not supported');
      } else {
        out += c + n;
      }
      i++;
      continue;
    }
    if (inClass) {
      if (c === '[' && src[i + 1] === ':') {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(src.slice(i));
        if (m) {
          const cls = POSIX_CLASSES[m[2]!];
          if (!cls) throw new Error(`unknown POSIX class [:${m[2]}:]`);
          if (m[1]) throw new Error(`negated POSIX class [:^${m[2]}:] is not supported`);
          out += cls;
          i += m[0].length - 1;
          continue;
        }
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (src[i + 1] === '^') out += src[++i];
      if (src[i + 1] === ']') out += `\\${src[++i]}`;
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2);
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 3;
        continue;
      }
      if (/^(=|!|<=|<!)/.test(rest)) throw new Error('look-around assertions (?=, (?!, (?<=, (?<! are not RE2 syntax');
      if (rest.startsWith('>')) throw new Error('atomic groups (?>…) are not RE2 syntax');
      if (rest.startsWith(':') || rest.startsWith('<')) {
        out += c;
        continue;
      }
      throw new Error(`inline flags in the middle of a regex (${src.slice(i, i + 5)}…) are not supported`);
    }
    if ((c === '+' || c === '*' || c === '?' || c === '}') && src[i + 1] === '+')
      throw new Error('possessive quantifiers are not RE2 syntax');
    out += c;
  }
  if (inClass) throw new Error('missing closing ]');
  return { source: out, flags };
}

/** A RegExp for an RE2 pattern, anchored as a full match unless `partial`. Throws on bad syntax. */
export function compileRe2(pattern: string, opts: { partial?: boolean; ignoreCase?: boolean; global?: boolean } = {}) {
  const { source, flags } = re2ToJs(pattern);
  let f = flags;
  if (opts.ignoreCase && !f.includes('i')) f += 'i';
  if (opts.global) f += 'g';
  return new RegExp(opts.partial ? source : `^(?:${source})$`, f);
}

/** undefined when the pattern is valid RE2 that wasmgate can run, else the reason. */
export function re2Problem(pattern: string): string | undefined {
  try {
    compileRe2(pattern, { partial: true });
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^Invalid regular expression: /, '');
  }
}

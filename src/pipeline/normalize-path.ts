// Request path normalization, as Envoy does at an edge set up per its edge best practices
// (normalize_path: true, merge_slashes: true, path_with_escaped_slashes_action: REJECT_REQUEST,
// fragments rejected), so that what the authz filter matches is what the upstream receives.
//
//   1. reject: no leading "/" (except the asterisk-form "*"), "#", NUL or other control characters,
//      %00, and escaped slashes %2F / %5C in any case;
//   2. "\" becomes "/";
//   3. percent-encoded unreserved characters (ALPHA, DIGIT, "-", ".", "_", "~") are decoded, so
//      %2e is "." before dot segments are removed; other escapes are kept as written;
//   4. dot segments are removed (RFC 3986 section 5.2.4): "/a/./b/../c" is "/a/c", and ".." never
//      climbs above the root;
//   5. runs of "/" are merged into one (after step 4, as Envoy orders them).
// The query string (from the first "?") is kept byte for byte.

export type NormalizedPath = { path: string } | { reject: string };

const HEX = /^[0-9A-Fa-f]{2}$/;
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** Decodes %XX where XX encodes an unreserved character; leaves every other escape as written. */
function decodeUnreserved(path: string): string {
  if (!path.includes('%')) return path;
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c === '%' && HEX.test(path.slice(i + 1, i + 3))) {
      const ch = String.fromCharCode(Number.parseInt(path.slice(i + 1, i + 3), 16));
      if (UNRESERVED.test(ch)) {
        out += ch;
        i += 2;
        continue;
      }
    }
    out += c;
  }
  return out;
}

/** RFC 3986 section 5.2.4 remove_dot_segments, for a path starting with "/". */
export function removeDotSegments(path: string): string {
  const segments = path.split('/');
  // segments[0] is "" (the leading slash); the rest are the path's segments.
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i++) {
    const s = segments[i]!;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      // A trailing "." or ".." leaves the path ending in "/".
      if (i === last) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

export function normalizePath(target: string): NormalizedPath {
  if (target === '*') return { path: target };
  if (target.includes('#')) return { reject: 'fragment (#) in the request path' };
  const q = target.indexOf('?');
  const raw = q >= 0 ? target.slice(0, q) : target;
  const query = q >= 0 ? target.slice(q) : '';
  if (/[\x00-\x1f\x7f]/.test(target)) return { reject: 'control character in the request path' };
  if (!raw.startsWith('/')) return { reject: 'request path must start with "/"' };
  if (/%00/.test(raw)) return { reject: 'encoded NUL (%00) in the request path' };
  if (/%2f|%5c/i.test(raw)) return { reject: 'escaped slash (%2F or %5C) in the request path' };
  let path = raw.replaceAll('\\', '/');
  path = decodeUnreserved(path);
  path = removeDotSegments(path);
  path = path.replace(/\/{2,}/g, '/');
  return { path: path + query };
}

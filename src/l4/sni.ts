// TLS passthrough routing: the server name (SNI) of a ClientHello, read without consuming it
// (the bytes read are handed on to the upstream unchanged), as Envoy's tls_inspector.
import type { Socket } from 'node:net';

/** The SNI host name in a TLS ClientHello record, or undefined (not TLS, no SNI); 'more' when incomplete. */
export function parseSni(b: Uint8Array): string | undefined | 'more' {
  if (b.length < 5) return 'more';
  if (b[0] !== 0x16) return undefined; // not a handshake record
  const recordLen = (b[3]! << 8) | b[4]!;
  if (b.length < 5 + recordLen) return 'more';
  let p = 5;
  if (b[p] !== 0x01) return undefined; // not a ClientHello
  p += 4; // type, length (3)
  p += 2 + 32; // version, random
  const end = 5 + recordLen;
  if (p >= end) return undefined;
  p += 1 + b[p]!; // session id
  if (p + 2 > end) return undefined;
  p += 2 + ((b[p]! << 8) | b[p + 1]!); // cipher suites
  if (p >= end) return undefined;
  p += 1 + b[p]!; // compression methods
  if (p + 2 > end) return undefined;
  const extEnd = Math.min(end, p + 2 + ((b[p]! << 8) | b[p + 1]!));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = (b[p]! << 8) | b[p + 1]!;
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    p += 4;
    if (type === 0 && p + 5 <= extEnd) {
      // server_name list: list length (2), name type (1), name length (2), name
      const nameLen = (b[p + 3]! << 8) | b[p + 4]!;
      if (b[p + 2] === 0 && p + 5 + nameLen <= extEnd)
        return Buffer.from(b.subarray(p + 5, p + 5 + nameLen)).toString('latin1');
      return undefined;
    }
    p += len;
  }
  return undefined;
}

/** Reads until the ClientHello is complete (or is not TLS), then pauses the socket again. */
export function peekSni(socket: Socket, timeoutMs: number): Promise<{ sni: string | undefined; head: Uint8Array }> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const done = (err?: Error) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
      if (err) reject(err);
    };
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const sni = parseSni(head);
      if (sni === 'more' && head.length < 16_384 + 5) return;
      done();
      resolve({ sni: sni === 'more' ? undefined : sni, head });
    };
    const onClose = () => done(new Error('closed before the ClientHello'));
    const timer = setTimeout(() => done(new Error('no ClientHello')), timeoutMs);
    timer.unref();
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.resume();
  });
}

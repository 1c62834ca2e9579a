// WASI preview1, as a Proxy-Wasm host provides it: real where it means something for a plugin
// (stdout/stderr into the log, clocks, randomness, environment from vmConfig.env, proc_exit),
// a proper errno everywhere else. Registered under both wasi_snapshot_preview1 and wasi_unstable.
import { randomFillSync } from 'node:crypto';
import { guarded } from '../abi/guard.ts';
import type { AbiHost } from '../abi/host-api.ts';
import { Errno, LogLevel } from '../abi/result.ts';
import { ProcExit } from '../runtime/vm.ts';

const encoder = new TextEncoder();
const MAX_RANDOM = 64 * 1024;
const RIGHT_FD_READ = 1n << 1n;
const RIGHT_FD_WRITE = 1n << 6n;
const FILETYPE_CHARACTER_DEVICE = 2;

/** Every preview1 function name, so that no module fails to link for lack of one. */
export const WASI_FUNCTIONS = [
  'args_get',
  'args_sizes_get',
  'environ_get',
  'environ_sizes_get',
  'clock_res_get',
  'clock_time_get',
  'fd_advise',
  'fd_allocate',
  'fd_close',
  'fd_datasync',
  'fd_fdstat_get',
  'fd_fdstat_set_flags',
  'fd_fdstat_set_rights',
  'fd_filestat_get',
  'fd_filestat_set_size',
  'fd_filestat_set_times',
  'fd_pread',
  'fd_prestat_get',
  'fd_prestat_dir_name',
  'fd_pwrite',
  'fd_read',
  'fd_readdir',
  'fd_renumber',
  'fd_seek',
  'fd_sync',
  'fd_tell',
  'fd_write',
  'path_create_directory',
  'path_filestat_get',
  'path_filestat_set_times',
  'path_link',
  'path_open',
  'path_readlink',
  'path_remove_directory',
  'path_rename',
  'path_symlink',
  'path_unlink_file',
  'poll_oneoff',
  'proc_exit',
  'proc_raise',
  'sched_yield',
  'random_get',
  'sock_accept',
  'sock_recv',
  'sock_send',
  'sock_shutdown',
] as const;

function nowNs(clockId: number): bigint | undefined {
  if (clockId === 0) return BigInt(Date.now()) * 1_000_000n + BigInt(Math.floor((performance.now() % 1) * 1e6));
  if (clockId === 1 || clockId === 2 || clockId === 3) return process.hrtime.bigint();
  return undefined;
}

export function wasiFunctions(h: AbiHost, onError: (name: string, err: unknown) => void) {
  const m = () => h.memory;
  const envStrings = () => h.env.map(([k, v]) => encoder.encode(`${k}=${v}\0`));
  const gatherIovs = (iovs: number, count: number): Uint8Array => {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < count; i++) {
      const ptr = m().u32(iovs + i * 8);
      const len = m().u32(iovs + i * 8 + 4);
      parts.push(m().copy(ptr, len));
      total += len;
    }
    const out = new Uint8Array(total);
    let p = 0;
    for (const part of parts) {
      out.set(part, p);
      p += part.length;
    }
    return out;
  };
  const write = (fd: number, iovs: number, count: number, retWrittenPtr: number) => {
    if (fd !== 1 && fd !== 2) return Errno.BADF;
    const bytes = gatherIovs(iovs, count);
    let text = new TextDecoder().decode(bytes);
    if (text.endsWith('\n')) text = text.slice(0, -1);
    if (text.length > 0) h.log(fd === 1 ? LogLevel.INFO : LogLevel.ERROR, text);
    m().setU32(retWrittenPtr, bytes.length);
    return Errno.SUCCESS;
  };
  const fns: Record<string, (...args: never[]) => number> = {
    args_sizes_get: (argcPtr: number, bufSizePtr: number) => {
      m().setU32(argcPtr, 0);
      m().setU32(bufSizePtr, 0);
      return Errno.SUCCESS;
    },
    args_get: () => Errno.SUCCESS,
    environ_sizes_get: (countPtr: number, bufSizePtr: number) => {
      const strings = envStrings();
      m().setU32(countPtr, strings.length);
      m().setU32(
        bufSizePtr,
        strings.reduce((n, s) => n + s.length, 0),
      );
      return Errno.SUCCESS;
    },
    environ_get: (environPtr: number, bufPtr: number) => {
      let p = bufPtr;
      envStrings().forEach((s, i) => {
        m().setU32(environPtr + i * 4, p);
        m().write(p, s);
        p += s.length;
      });
      return Errno.SUCCESS;
    },
    clock_res_get: (clockId: number, retPtr: number) => {
      if (nowNs(clockId) === undefined) return Errno.NOTSUP;
      m().setU64(retPtr, 1n);
      return Errno.SUCCESS;
    },
    clock_time_get: (clockId: number, _precision: bigint, retPtr: number) => {
      const t = nowNs(clockId);
      if (t === undefined) return Errno.NOTSUP;
      m().setU64(retPtr, t);
      return Errno.SUCCESS;
    },
    random_get: (ptr: number, len: number) => {
      len >>>= 0;
      if (len > MAX_RANDOM) return Errno.INVAL;
      const bytes = new Uint8Array(len);
      randomFillSync(bytes);
      m().write(ptr, bytes);
      return Errno.SUCCESS;
    },
    fd_write: write,
    fd_pwrite: (fd: number, iovs: number, count: number, _offset: bigint, retPtr: number) =>
      write(fd, iovs, count, retPtr),
    fd_read: () => Errno.NOSYS,
    fd_pread: () => Errno.NOSYS,
    fd_prestat_get: () => Errno.BADF,
    fd_prestat_dir_name: () => Errno.NOSYS,
    fd_filestat_get: () => Errno.BADF,
    fd_fdstat_set_flags: () => Errno.NOSYS,
    fd_fdstat_get: (fd: number, statPtr: number) => {
      if (fd < 0 || fd > 2) return Errno.BADF;
      m().setU8(statPtr, FILETYPE_CHARACTER_DEVICE);
      m().setU16(statPtr + 2, 0);
      m().setU64(statPtr + 8, fd === 0 ? RIGHT_FD_READ : RIGHT_FD_WRITE);
      m().setU64(statPtr + 16, 0n);
      return Errno.SUCCESS;
    },
    fd_seek: (_fd: number, _offset: bigint, _whence: number, retPtr: number) => {
      m().setU64(retPtr, 0n);
      return Errno.SUCCESS;
    },
    fd_tell: (_fd: number, retPtr: number) => {
      m().setU64(retPtr, 0n);
      return Errno.SUCCESS;
    },
    fd_close: () => Errno.SUCCESS,
    fd_sync: () => Errno.SUCCESS,
    fd_datasync: () => Errno.SUCCESS,
    path_open: () => Errno.NOENT,
    // Sleeping is impossible inside a synchronous guest call: report zero events, successfully
    // (an error here crashes Go's runtime during GC, golang/go#78513).
    poll_oneoff: (_in: number, _out: number, _n: number, retNeventsPtr: number) => {
      m().setU32(retNeventsPtr, 0);
      return Errno.SUCCESS;
    },
    sched_yield: () => Errno.SUCCESS,
    proc_exit: (code: number) => {
      if (code !== 0 || !h.starting) h.log(LogLevel.ERROR, `proc_exit(${code}) called`);
      throw new ProcExit(code);
    },
    proc_raise: () => Errno.NOSYS,
  };
  for (const name of WASI_FUNCTIONS) {
    fns[name] ??= () => Errno.NOTSUP;
  }
  return guarded(fns as Record<string, (...args: number[]) => number>, onError, Errno.FAULT, Errno.INVAL);
}

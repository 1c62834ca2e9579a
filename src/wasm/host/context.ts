// Host-side contexts: what a root or stream context answers when the ABI asks. The defaults here
// answer "not available in this context"; root and HTTP contexts override what they offer.
import type { AbiContext, BufferAccess, HeaderMapAccess, LocalResponse } from '../abi/host-api.ts';
import { Status, type StatusCode } from '../abi/result.ts';

export class BaseContext implements AbiContext {
  id: number;
  rootId: number;

  constructor(id: number, rootId: number) {
    this.id = id;
    this.rootId = rootId;
  }

  headerMap(_mapType: number): HeaderMapAccess | undefined {
    return undefined;
  }
  buffer(_bufferType: number): BufferAccess | undefined {
    return undefined;
  }
  sendLocalResponse(_reply: LocalResponse): StatusCode {
    return Status.NOT_FOUND;
  }
  continueStream(_streamType: number): StatusCode {
    return Status.NOT_FOUND;
  }
  closeStream(_streamType: number): StatusCode {
    return Status.NOT_FOUND;
  }
  getProperty(_path: string[]): Uint8Array | undefined {
    return undefined;
  }
  setProperty(_path: string[], _value: Uint8Array): StatusCode {
    return Status.NOT_FOUND;
  }
  done(): StatusCode {
    return Status.NOT_FOUND;
  }
}

/** An immutable buffer (configuration, call responses): reads work, writes are refused. */
export function readOnlyBuffer(bytes: Uint8Array): BufferAccess {
  return { bytes: () => bytes, set: () => Status.BAD_ARGUMENT };
}

/**
 * Streamed hashing of octet sources (MIME attachments referenced as cid:, osci-protocol.md §6) with an optional
 * streamed base64 decode (XML-DSig §6.6.2 base64 transform). Nothing is buffered beyond one chunk.
 */
import { createHash } from 'node:crypto';
import type { HashName } from './algorithms.ts';
import { CryptoError } from './errors.ts';

/** Bytes to digest: a buffer, an async stream of chunks, or a factory for one (so a source can be read twice). */
export type ByteSource = Buffer | Uint8Array | AsyncIterable<Buffer | Uint8Array> | (() => AsyncIterable<Buffer | Uint8Array>);

/** Whole quartets; '=' padding only in the last one. */
const B64_QUARTETS = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const XML_WS = /[ \t\r\n]+/g;

/**
 * Incremental base64 decoder: whitespace is skipped, anything else outside the alphabet is an error, and '='
 * padding may appear only at the very end.
 */
export class Base64Decoder {
  private carry = '';
  private ended = false;

  push(chunk: string): Buffer {
    const s = this.carry + chunk.replace(XML_WS, '');
    if (this.ended && s.length > 0) throw this.invalid();
    const whole = s.length - (s.length % 4);
    const body = s.slice(0, whole);
    this.carry = s.slice(whole);
    if (!B64_QUARTETS.test(body)) throw this.invalid();
    if (body.endsWith('=')) {
      this.ended = true;
      if (this.carry.length) throw this.invalid();
    }
    return Buffer.from(body, 'base64');
  }

  end(): void {
    if (this.carry.length) throw this.invalid();
  }

  private invalid(): CryptoError {
    return new CryptoError('ERR_SIG_DIGEST', 'base64 transform input is not valid base64');
  }
}

function isAsyncIterable(x: unknown): x is AsyncIterable<Buffer | Uint8Array> {
  return typeof x === 'object' && x !== null && Symbol.asyncIterator in x;
}

/** Hash of `source`; with base64Decode the source is base64 text and the hash covers the decoded octets. */
export async function digestSource(hash: HashName, source: ByteSource, opts: { base64Decode?: boolean } = {}): Promise<Buffer> {
  const h = createHash(hash);
  const decoder = opts.base64Decode ? new Base64Decoder() : undefined;
  const feed = (chunk: Buffer | Uint8Array): void => {
    if (decoder) h.update(decoder.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1')));
    else h.update(chunk);
  };
  if (typeof source === 'function') source = source();
  if (isAsyncIterable(source)) {
    for await (const chunk of source) feed(chunk);
  } else {
    feed(source);
  }
  decoder?.end();
  return h.digest();
}

/** Hash of a string's UTF-8 octets (canonical XML) or of octets. */
export function digestString(hash: HashName, data: string | Buffer): Buffer {
  return typeof data === 'string' ? createHash(hash).update(data, 'utf8').digest() : createHash(hash).update(data).digest();
}

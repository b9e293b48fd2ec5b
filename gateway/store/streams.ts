/** Byte-stream helpers for payload parts: bounded-memory iteration and fixed-size re-chunking. */
import type { Readable } from 'node:stream';
import { misuse } from './values.ts';

export type ByteSource = Readable | AsyncIterable<Uint8Array>;

/** Iterates a payload source as Buffers; pulling one chunk at a time keeps back-pressure intact. */
export async function* bytesOf(source: ByteSource): AsyncGenerator<Buffer> {
  for await (const chunk of source as AsyncIterable<unknown>) {
    if (chunk instanceof Uint8Array) {
      if (chunk.byteLength > 0) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    } else {
      throw misuse('payload streams must yield bytes');
    }
  }
}

/**
 * Re-chunks a byte stream into Buffers of exactly `size` bytes (the last one may be shorter). Holds at
 * most `size` bytes plus one incoming chunk.
 */
export async function* fixedChunks(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingLength = 0;
  for await (let chunk of source) {
    while (pendingLength + chunk.length >= size) {
      const take = size - pendingLength;
      pending.push(chunk.subarray(0, take));
      yield Buffer.concat(pending, size);
      chunk = chunk.subarray(take);
      pending = [];
      pendingLength = 0;
    }
    if (chunk.length > 0) {
      // Copy so that a producer reusing its buffer cannot change bytes we still hold.
      pending.push(Buffer.from(chunk));
      pendingLength += chunk.length;
    }
  }
  if (pendingLength > 0) yield Buffer.concat(pending, pendingLength);
}

/**
 * Temporary files for message parts (bounded memory, osci-protocol.md §13: up to 200 MB per message).
 * One private directory per message; file names are counters, never names taken from the message.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type ReadStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { OsciError } from '../errors.ts';

export class Spill {
  private n = 0;
  private disposed = false;

  private constructor(readonly dir: string) {}

  /** A fresh private directory (mode 0700 by mkdtemp) below `parent`. */
  static async create(parent: string): Promise<Spill> {
    try {
      await mkdir(parent, { recursive: true });
      return new Spill(await mkdtemp(join(parent, 'amtsbote-msg-')));
    } catch (e) {
      throw new OsciError('ERR_INTERNAL', `cannot create a temporary directory below ${parent}`, { cause: e });
    }
  }

  /** A new file path inside the directory. */
  path(kind = 'part'): string {
    if (this.disposed) throw new OsciError('ERR_INTERNAL', 'temporary directory already removed');
    this.n += 1;
    return join(this.dir, `${kind}-${this.n}.bin`);
  }

  writer(path: string): WriteStream {
    return createWriteStream(path, { flags: 'wx', mode: 0o600 });
  }

  reader(path: string): ReadStream {
    return createReadStream(path);
  }

  async remove(path: string): Promise<void> {
    await unlink(path).catch(() => undefined);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Streams `source` into a new file of `spill`; returns its path, byte count and SHA-256. */
export async function spillStream(spill: Spill, source: Readable, kind = 'part'): Promise<{ path: string; size: number; sha256: Buffer }> {
  const path = spill.path(kind);
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(c: Buffer, _e, cb) {
      size += c.length;
      hash.update(c);
      cb(null, c);
    },
  });
  await pipeline(source, count, spill.writer(path));
  return { path, size, sha256: hash.digest() };
}

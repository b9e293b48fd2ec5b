/**
 * Payload files of the SQLite backend, under `<dataDir>/payloads/`:
 *
 * - `tmp/<random>`: a part being received; written, fsynced and closed by `writeTmp`.
 * - `<sha256(MessageId)>-<random>/<index>`: the parts of one message, moved there by `install` (rename,
 *   then fsync of the directory and of `payloads/`) BEFORE the database row that names the directory
 *   commits. The row commit is the visibility point; a directory no committed row names is an orphan.
 *
 * `recover` deletes every tmp file and every orphan directory, except those of writers still running
 * in this process (the in-flight registry). Other processes must not write into the same data dir.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { FILE_STREAM_BYTES } from '../../protocol/envelope/spill.ts';
import { bytesOf, type ByteSource } from './streams.ts';

/** Absolute paths (tmp files, message dirs) owned by live writers of this process. */
const inFlight = new Set<string>();

export interface WrittenFile {
  path: string;
  size: number;
  sha256Hex: string;
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class PayloadFiles {
  readonly tmpDir: string;
  constructor(readonly root: string) {
    this.tmpDir = join(root, 'tmp');
  }

  async init(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
  }

  /** A fresh directory name for one message's parts; random so that no writer ever touches another's files. */
  dirNameFor(messageId: string): string {
    return `${createHash('sha256').update(messageId, 'utf8').digest('hex')}-${randomBytes(8).toString('hex')}`;
  }

  /** Streams `source` into a new tmp file, hashing on the way; the file is fsynced before this resolves. */
  async writeTmp(source: ByteSource): Promise<WrittenFile> {
    const path = this.newTmpPath();
    const hash = createHash('sha256');
    let size = 0;
    await this.fsyncedTmp(path, 'wx', async (fh) => {
      for await (const chunk of bytesOf(source)) {
        hash.update(chunk);
        let off = 0;
        while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
        size += chunk.length;
      }
      return true;
    });
    return { path, size, sha256Hex: hash.digest('hex') };
  }

  /**
   * A second name in tmp for a finished file of the same file system (hard link: no bytes copied), fsynced like
   * writeTmp. Undefined when the file cannot be linked or is not `size` bytes long: the caller copies instead.
   * The caller vouches for `sha256Hex` (it hashed the bytes while writing them) and must not change the file.
   */
  async linkTmp(file: string, size: number, sha256Hex: string): Promise<WrittenFile | undefined> {
    const path = this.newTmpPath();
    try {
      await link(file, path);
    } catch {
      inFlight.delete(path);
      return undefined;
    }
    const ok = await this.fsyncedTmp(path, 'r', async (fh) => (await fh.stat()).size === size);
    return ok ? { path, size, sha256Hex } : undefined;
  }

  private newTmpPath(): string {
    const path = join(this.tmpDir, randomBytes(16).toString('hex'));
    inFlight.add(path);
    return path;
  }

  /**
   * Opens the tmp file `path` with `flags`, lets `fill` write or check it, fsyncs it and closes it. When `fill`
   * answers false or anything fails, the file is discarded (false, or the error rethrown).
   */
  private async fsyncedTmp(path: string, flags: 'wx' | 'r', fill: (fh: FileHandle) => Promise<boolean>): Promise<boolean> {
    try {
      const fh = await open(path, flags, 0o600);
      try {
        if (!(await fill(fh))) {
          await this.discardTmp(path);
          return false;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await this.discardTmp(path);
      throw err;
    }
    return true;
  }

  async discardTmp(path: string): Promise<void> {
    try {
      await rm(path, { force: true });
    } finally {
      inFlight.delete(path);
    }
  }

  /**
   * Moves the tmp files into `<root>/<dirName>/<index>` and makes the directory entries durable. The
   * directory stays registered as in flight until `settle`.
   */
  async install(dirName: string, tmpPaths: readonly string[]): Promise<void> {
    const dir = join(this.root, dirName);
    inFlight.add(dir);
    await mkdir(dir);
    for (const [index, tmp] of tmpPaths.entries()) {
      await rename(tmp, join(dir, String(index)));
      inFlight.delete(tmp);
    }
    await fsyncPath(dir);
    await fsyncPath(this.root);
  }

  /** Ends the in-flight registration of an installed directory; with `remove` deletes it (commit failed). */
  async settle(dirName: string, remove: boolean): Promise<void> {
    const dir = join(this.root, dirName);
    try {
      if (remove) await rm(dir, { recursive: true, force: true });
    } finally {
      inFlight.delete(dir);
    }
  }

  async openRead(dirName: string, index: number): Promise<ReadStream> {
    const fh = await open(join(this.root, dirName, String(index)), 'r');
    return fh.createReadStream({ highWaterMark: FILE_STREAM_BYTES });
  }

  /** Removes tmp files and directories that no committed row names (`isCommitted`). Returns what it removed. */
  async recover(isCommitted: (dirName: string) => boolean): Promise<string[]> {
    await this.init();
    const removed: string[] = [];
    for (const name of await readdir(this.tmpDir)) {
      const path = join(this.tmpDir, name);
      if (inFlight.has(path)) continue;
      await rm(path, { recursive: true, force: true });
      removed.push(join('tmp', name));
    }
    for (const name of await readdir(this.root)) {
      const path = join(this.root, name);
      if (name === 'tmp' || inFlight.has(path) || isCommitted(name)) continue;
      await rm(path, { recursive: true, force: true });
      removed.push(name);
    }
    if (removed.length > 0) await fsyncPath(this.root);
    return removed;
  }
}

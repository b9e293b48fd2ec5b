/**
 * Temporary files for message parts (bounded memory, osci-protocol.md §13: up to 200 MB per message).
 * One private directory per message; file names are counters, never names taken from the message.
 * A {@link SpillSink} keeps a part in memory while the message's in-memory budget lasts and moves it to a
 * file beyond that, so a small message creates no file at all and a large one streams as before.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, fdatasync, type ReadStream, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { OsciError } from '../errors.ts';

/** Bytes of part bodies one message may hold in memory before further bodies go to files. */
export const DEFAULT_SPILL_MEMORY_BYTES = 4 * 1024 * 1024;

/**
 * Buffer of a part file's write and read streams. Node's defaults (16 KiB written, 64 KiB read) make every
 * network chunk wait for its file write before the next is parsed; 1 MiB lets receiving, decrypting and writing
 * overlap, and stays a fixed amount per open file (bounded memory).
 */
export const FILE_STREAM_BYTES = 1024 * 1024;

/** Background flushes ({@link SpillSink} with syncEvery) in flight in this process, and their limit. */
let backgroundFlushes = 0;
const MAX_BACKGROUND_FLUSHES = 1;

export class Spill {
  private n = 0;
  private disposed = false;
  private dirPath: string | undefined;
  private creating: Promise<string> | undefined;
  private inMemory = 0;

  private constructor(
    private readonly parent: string,
    /** Budget of {@link SpillSink} bodies kept in memory (0: every sink writes a file). */
    readonly memoryLimit = 0,
    /** A part sink's file is flushed to disk (fdatasync, in the background) after every this many bytes. */
    readonly syncEvery?: number,
  ) {}

  /** A fresh private directory (mode 0700 by mkdtemp) below `parent`. */
  static async create(parent: string): Promise<Spill> {
    const s = new Spill(parent);
    await s.ensure();
    return s;
  }

  /** Like {@link create}, but the directory is made only when the first file is needed. */
  static lazy(parent: string, opts: { memoryLimit?: number; syncEvery?: number } = {}): Spill {
    return new Spill(parent, opts.memoryLimit ?? DEFAULT_SPILL_MEMORY_BYTES, opts.syncEvery);
  }

  get dir(): string {
    if (this.dirPath === undefined) throw new OsciError('ERR_INTERNAL', 'temporary directory not created yet');
    return this.dirPath;
  }

  /** Creates the directory if it does not exist yet. */
  async ensure(): Promise<void> {
    if (this.disposed) throw new OsciError('ERR_INTERNAL', 'temporary directory already removed');
    if (this.dirPath !== undefined) return;
    this.creating ??= (async () => {
      try {
        await mkdir(this.parent, { recursive: true });
        return await mkdtemp(join(this.parent, 'amtsbote-msg-'));
      } catch (e) {
        throw new OsciError('ERR_INTERNAL', `cannot create a temporary directory below ${this.parent}`, { cause: e });
      }
    })();
    this.dirPath = await this.creating;
  }

  /** A new file path inside the directory (the directory must exist: {@link create} or {@link ensure}). */
  path(kind = 'part'): string {
    if (this.disposed) throw new OsciError('ERR_INTERNAL', 'temporary directory already removed');
    this.n += 1;
    return join(this.dir, `${kind}-${this.n}.bin`);
  }

  writer(path: string): WriteStream {
    return createWriteStream(path, { flags: 'wx', mode: 0o600, highWaterMark: FILE_STREAM_BYTES });
  }

  reader(path: string): ReadStream {
    return createReadStream(path, { highWaterMark: FILE_STREAM_BYTES });
  }

  async remove(path: string): Promise<void> {
    await unlink(path).catch(() => undefined);
  }

  /** Takes `n` bytes of the in-memory budget; false when they do not fit. */
  reserve(n: number): boolean {
    if (this.inMemory + n > this.memoryLimit) return false;
    this.inMemory += n;
    return true;
  }

  release(n: number): void {
    this.inMemory = Math.max(0, this.inMemory - n);
  }

  /**
   * A sink for one body: in memory within the budget, else a file of this directory. `sync: false` for a body that
   * is only passed through (it is never kept, so {@link syncEvery} would only cost disk work).
   */
  sink(kind = 'part', opts: { sync?: boolean } = {}): SpillSink {
    return new SpillSink(this, kind, opts.sync === false ? undefined : this.syncEvery);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const dir = this.dirPath ?? (this.creating ? await this.creating.catch(() => undefined) : undefined);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }
}

/**
 * A Writable holding one body: chunks stay in memory while {@link Spill.reserve} grants them; past the budget
 * everything written so far goes to a new file and the rest streams after it. Read it back with {@link open}
 * only after it finished; {@link drop} frees it.
 */
export class SpillSink extends Writable {
  private chunks: Buffer[] = [];
  private held = 0;
  private file: WriteStream | undefined;
  private fileError: unknown;
  private filePath: string | undefined;
  private joined: Buffer | undefined;
  /** Bytes written to the file since its last background flush was started, and that flush. */
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  private fd: number | undefined;
  size = 0;

  constructor(
    private readonly spill: Spill,
    private readonly kind: string,
    private readonly syncEvery?: number,
  ) {
    // Not destroyed after 'finish': the body is read afterwards; destroy() (a failure) or drop() frees it.
    super({ autoDestroy: false });
  }

  /** The file holding the body, if it outgrew the budget. */
  get path(): string | undefined {
    return this.filePath;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.size += chunk.length;
    if (this.file) return this.toFile(chunk, cb);
    if (this.spill.reserve(chunk.length)) {
      this.chunks.push(chunk);
      this.held += chunk.length;
      return cb();
    }
    this.openFile().then(
      () => this.toFile(chunk, cb),
      (e: unknown) => cb(e instanceof Error ? e : new OsciError('ERR_INTERNAL', 'spill failed')),
    );
  }

  private async openFile(): Promise<void> {
    await this.spill.ensure();
    const path = this.spill.path(this.kind);
    const file = this.spill.writer(path);
    this.filePath = path;
    this.file = file;
    file.on('error', (e) => {
      this.fileError ??= e;
    });
    file.once('open', (fd: number) => (this.fd = fd));
    for (const c of this.chunks) file.write(c);
    this.chunks = [];
    this.spill.release(this.held);
    this.held = 0;
  }

  private toFile(chunk: Buffer, cb: (err?: Error | null) => void): void {
    const file = this.file as WriteStream;
    if (this.fileError !== undefined) return cb(this.fileError as Error);
    this.unsynced += chunk.length;
    if (this.syncEvery !== undefined && this.unsynced >= this.syncEvery) this.syncInBackground();
    if (file.write(chunk)) return cb();
    const done = (e?: Error) => {
      file.off('drain', onDrain);
      file.off('error', done);
      cb(e ?? null);
    };
    const onDrain = () => done();
    file.once('drain', onDrain);
    file.once('error', done);
  }

  /**
   * Starts writing back what the file holds so far: the disk works while the rest arrives. At most one flush per
   * file and {@link MAX_BACKGROUND_FLUSHES} per process (each holds a libuv pool thread); when none is free the flush
   * is skipped and tried again with the next chunk. Only an optimisation: whoever keeps the file still fsyncs it,
   * so a failed flush is ignored. The file descriptor is closed only after a flush in progress returned.
   */
  private syncInBackground(): void {
    const fd = this.fd;
    if (this.syncing !== undefined || fd === undefined || backgroundFlushes >= MAX_BACKGROUND_FLUSHES) return;
    this.unsynced = 0;
    backgroundFlushes++;
    this.syncing = new Promise<void>((resolve) => fdatasync(fd, () => resolve())).then(() => {
      backgroundFlushes--;
      this.syncing = undefined;
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.file) return cb();
    const file = this.file;
    // The file descriptor stays open until a flush in progress has returned.
    Promise.resolve(this.syncing)
      .then(() => {
        file.end();
        return finished(file);
      })
      .then(
        () => cb(),
        (e: unknown) => cb(e as Error),
      );
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.spill.release(this.held);
    this.held = 0;
    this.chunks = [];
    const file = this.file;
    void Promise.resolve(this.syncing).then(() => {
      file?.destroy();
      cb(err);
    });
  }

  /** A fresh stream of the body (only after the sink finished). */
  open(): Readable {
    if (this.filePath !== undefined) return this.spill.reader(this.filePath);
    if (this.joined === undefined) {
      this.joined = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.held);
      this.chunks = [this.joined];
    }
    return Readable.from([this.joined], { objectMode: false });
  }

  /** Frees the body: memory back to the budget, the file removed. */
  async drop(): Promise<void> {
    this.spill.release(this.held);
    this.held = 0;
    this.chunks = [];
    this.joined = undefined;
    await this.syncing;
    if (this.file && !this.file.closed) this.file.destroy();
    if (this.filePath !== undefined) await this.spill.remove(this.filePath);
  }
}

/** Streams `source` (through `through`, in order) into a new file of `spill`; returns its path, byte count and SHA-256. */
export async function spillStream(spill: Spill, source: Readable, kind = 'part', through: readonly Transform[] = []): Promise<{ path: string; size: number; sha256: Buffer }> {
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
  await pipeline([source, ...through, count, spill.writer(path)]);
  return { path, size, sha256: hash.digest() };
}

/**
 * Group commit for SQLite in WAL mode with `synchronous = NORMAL`: a commit writes its WAL frames without an
 * fsync, and `sync()` then makes them durable with one `fdatasync` of the WAL file on the libuv pool, shared by
 * every commit made before that flush started. The event loop never waits for the disk, and N concurrent commits
 * cost one flush instead of N. SQLite itself still syncs the WAL before every checkpoint and the database file
 * after it (https://sqlite.org/pragma.html#pragma_synchronous), so a frame that has left the WAL is durable
 * in the database file.
 *
 * Unlike `synchronous = FULL`, a commit is visible to other connections a few milliseconds before it is flushed.
 * No answer depends on that gap: a receipt waits for its own flush, and every OSCI request that reads stored
 * messages (fetchDelivery, fetchProcessCard: explicit dialogs) first writes its dialog, whose flush covers every
 * earlier commit in the same WAL.
 */
import { open, type FileHandle } from 'node:fs/promises';

export class WalSync {
  private fh: FileHandle | undefined;
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private started = 0;

  constructor(private readonly walPath: string) {}

  /** Resolves once a flush that started after this call has finished: every commit made before the call is on disk. */
  sync(): Promise<void> {
    if (this.running === undefined) return this.start();
    // The flush in flight may have started before the caller's commit; the next one, shared by all who wait, covers it.
    this.next ??= this.running.then(
      () => this.start(),
      () => this.start(),
    );
    return this.next;
  }

  /** Flushes started so far (each covers every commit made before it). */
  get flushes(): number {
    return this.started;
  }

  /** Waits for flushes in flight and closes the WAL handle. */
  async close(): Promise<void> {
    await Promise.allSettled([this.running, this.next]);
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  private start(): Promise<void> {
    this.next = undefined;
    this.started++;
    const p = this.flush().finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }

  protected async flush(): Promise<void> {
    // The WAL file exists from the first commit on and keeps its inode while a connection is open (SQLite
    // reuses it from the start after a checkpoint; it deletes it only when the last connection closes).
    this.fh ??= await open(this.walPath, 'r');
    // A failed flush rejects every commit waiting on it (no receipt); the disk is broken, nothing here mends that.
    await this.fh.datasync();
  }
}

/**
 * `amtsbote serve --workers N`: N intermediary processes behind one listening socket (node:cluster; the primary
 * accepts connections and hands them round-robin to the workers). The intermediary is CPU-bound (RSA private-key
 * operations for the transport key and the response signature, XML canonicalisation), so one process uses one core.
 *
 * Store rules (gateway/store/types.ts): the primary prepares everything once before forking (dev PKI, schema,
 * crash recovery, mailbox registration; server.ts prepareServer) and workers only open the store. SQLite itself is
 * safe for several processes in WAL mode on a local file system (writers serialise on its lock; every transaction
 * of the store is short and IMMEDIATE), and a MessageId claimed by two processes at once still commits only once
 * (commitRows re-checks inside its transaction). What is not safe is the store's recovery, which deletes payload
 * files of writers it does not know. Therefore: workers never recover; a dead worker is replaced without recovery
 * (its leftovers are removed at the next start); and the primary records its workers' pids beside the database so
 * that a start after the primary was killed first waits until orphaned workers are gone (they exit as soon as
 * they notice the primary's death) before it recovers.
 */
import cluster, { type Worker } from 'node:cluster';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OsciError } from '../protocol/errors.ts';
import type { ServerConfig } from './config.ts';
import { createLogger, type Logger } from './log.ts';
import { serveClusterMetrics } from './metrics.ts';
import { prepareServer, startServer, type PreparedServer } from './server.ts';

const PREPARED_ENV = 'AMTSBOTE_CLUSTER_PREPARED';
const PID_FILE = 'cluster-workers.json';
/** A worker of a killed primary that is still alive after this long is stuck; we refuse to recover under it. */
const ORPHAN_WAIT_MS = 15_000;
/** More unexpected worker exits than this within CRASH_WINDOW_MS stop the whole server instead of respawning. */
const MAX_CRASHES = 5;
const CRASH_WINDOW_MS = 60_000;

/** Default worker count: one per usable CPU. Both stores allow it (see the header). */
export function defaultWorkers(): number {
  return availableParallelism();
}

/** The SQLite data folder of the configuration, or undefined for PostgreSQL (whose recovery is a no-op). */
function sqliteDir(cfg: ServerConfig): string | undefined {
  const db = cfg.db ?? `sqlite:${cfg.dataDir}`;
  return db.startsWith('sqlite:') ? db.slice('sqlite:'.length).replace(/^\/\//, '') : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // Linux: a reused pid that is not one of our processes does not count.
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('amtsbote');
  } catch {
    return true;
  }
}

/**
 * Before recovering a SQLite data folder: waits until the workers of a previous cluster run on it are gone.
 * Throws ERR_USAGE if one is still running after ORPHAN_WAIT_MS. Call it before every migrate() of a start.
 */
export async function awaitPreviousWorkers(cfg: ServerConfig, log: Logger): Promise<void> {
  const dir = sqliteDir(cfg);
  if (dir === undefined) return;
  let pids: number[];
  try {
    const parsed = JSON.parse(readFileSync(join(dir, PID_FILE), 'utf8')) as { pids?: unknown };
    pids = Array.isArray(parsed.pids) ? parsed.pids.filter((p): p is number => Number.isSafeInteger(p) && p > 0 && p !== process.pid) : [];
  } catch {
    return;
  }
  const deadline = Date.now() + ORPHAN_WAIT_MS;
  let alive = pids.filter(isAlive);
  if (alive.length > 0) log.warn({ pids: alive }, 'waiting for workers of a previous run to exit before crash recovery');
  while (alive.length > 0) {
    if (Date.now() > deadline) {
      throw new OsciError('ERR_USAGE', `intermediary workers of a previous run (pids ${alive.join(', ')}) still use ${dir}; stop them first`);
    }
    await sleep(50);
    alive = alive.filter(isAlive);
  }
}

function writePids(dir: string | undefined, pids: number[]): void {
  if (dir === undefined) return;
  const file = join(dir, PID_FILE);
  writeFileSync(`${file}.tmp`, JSON.stringify({ primary: process.pid, pids }));
  renameSync(`${file}.tmp`, file);
}

export interface RunningCluster {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  mailboxes: string[];
  /** Pids of the live workers. */
  workerPids(): number[];
  /** Resolves with an exit code when the cluster gave up (crash loop); never resolves otherwise. */
  failed: Promise<number>;
  /** SIGTERM to every worker (each finishes its in-flight requests and closes its store), then waits for them. */
  stop(): Promise<void>;
}

/**
 * glibc malloc settings for the workers, unless the operator set them. node:crypto and the sockets hand every chunk
 * of a large message over in a new buffer; with glibc's defaults the freed heap goes back to the kernel and is faulted
 * in (zeroed) again for the next chunks. Keeping up to 256 MiB and growing in 64 MiB steps halved the server's CPU of a
 * 200 MB fetch in interleaved runs (BENCHMARKS.md, seventh round); freed heap stays resident, and the peak RSS readings
 * overlap with glibc's defaults.
 */
export const WORKER_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_TOP_PAD_: String(64 << 20), MALLOC_TRIM_THRESHOLD_: String(256 << 20) };

/**
 * V8 flags for the workers, unless the operator gave an initial heap size. V8 counts the chunk buffers allocated since
 * the last full GC against the old generation's limit; a 200 MB message streams up to ≈ 32 MB of them between two
 * young-generation collections, more than the headroom of a small heap (≈ 20 MB used, limit ≈ 44 MB). Workers that
 * fell short of it ran a full GC every 60–90 ms for the whole transfer, at twice the CPU of the others (BENCHMARKS.md,
 * eighth round). A 64 MB floor under that limit, below which V8 skips full GCs, keeps the headroom.
 */
export const WORKER_NODE_FLAGS: readonly string[] = ['--initial-old-space-size=64'];

/** The WORKER_MALLOC_ENV variables that `env` does not set itself (the operator's values win). */
export function workerMallocEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(Object.entries(WORKER_MALLOC_ENV).filter(([k]) => env[k] === undefined));
}

/** `execArgv` plus WORKER_NODE_FLAGS, unless it sets the initial heap itself. */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  const own = execArgv.some((a) => /^--initial[-_](old[-_]space|heap)[-_]size\b/.test(a));
  return own ? [...execArgv] : [...execArgv, ...WORKER_NODE_FLAGS];
}

/** Runs in the primary: prepares once, forks `workers` processes running the same command line, resolves once all listen. */
export async function startCluster(cfg: ServerConfig, opts: { workers: number; log?: Logger }): Promise<RunningCluster> {
  if (!cluster.isPrimary) throw new OsciError('ERR_USAGE', 'startCluster runs in the primary process only');
  if (!Number.isInteger(opts.workers) || opts.workers < 1) throw new OsciError('ERR_USAGE', `--workers must be a positive integer, got ${opts.workers}`);
  const log = opts.log ?? createLogger({ level: cfg.logLevel });
  await awaitPreviousWorkers(cfg, log);
  const { prepared, mailboxes } = await prepareServer(cfg, { log });
  const pidDir = sqliteDir(cfg);
  // Round-robin in the primary on every platform (Windows defaults to the OS, which balances poorly).
  cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv) });
  const env = { ...workerMallocEnv(process.env), [PREPARED_ENV]: JSON.stringify(prepared) };

  const live = new Set<Worker>();
  serveClusterMetrics();
  const listening = new Set<Worker>();
  let stopping = false;
  const crashes: number[] = [];
  let fail: (code: number) => void = () => undefined;
  const failed = new Promise<number>((resolve) => (fail = resolve));
  let url = '';
  let startupError: ((e: Error) => void) | undefined;

  const fork = (): Worker => {
    const w = cluster.fork(env);
    live.add(w);
    writePids(pidDir, [...live].map((x) => x.process.pid ?? 0).filter((p) => p > 0));
    w.on('listening', (addr) => {
      listening.add(w);
      const host = addr.address ?? cfg.host;
      url ||= `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
    });
    w.on('exit', (code, signal) => {
      live.delete(w);
      const wasListening = listening.delete(w);
      writePids(pidDir, [...live].map((x) => x.process.pid ?? 0).filter((p) => p > 0));
      if (stopping) return;
      log.error({ worker: w.process.pid, code, signal }, 'intermediary worker exited');
      if (!wasListening && startupError) {
        startupError(new OsciError('ERR_INTERNAL', `an intermediary worker failed to start (exit code ${String(code)}, signal ${String(signal)})`));
        return;
      }
      const now = Date.now();
      crashes.push(now);
      while (crashes.length && (crashes[0] ?? now) < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length > MAX_CRASHES) {
        log.error({ crashes: crashes.length }, 'intermediary workers keep exiting; stopping');
        fail(1);
        return;
      }
      // The replacement does not recover: the other workers' writes are in flight.
      fork();
    });
    return w;
  };

  const stop = async (): Promise<void> => {
    stopping = true;
    const exits = [...live].map((w) => new Promise<void>((resolve) => (w.isDead() ? resolve() : w.once('exit', () => resolve()))));
    for (const w of live) w.process.kill('SIGTERM');
    await Promise.all(exits);
    if (pidDir !== undefined) rmSync(join(pidDir, PID_FILE), { force: true });
  };

  try {
    await new Promise<void>((resolve, reject) => {
      startupError = reject;
      for (let i = 0; i < opts.workers; i++) fork();
      const check = () => {
        if (listening.size >= opts.workers) {
          cluster.off('listening', check);
          resolve();
        }
      };
      cluster.on('listening', check);
    });
  } catch (e) {
    await stop();
    throw e;
  }
  startupError = undefined;
  log.info({ url, workers: opts.workers, store: cfg.db?.startsWith('sqlite:') ? 'sqlite' : 'postgres' }, 'intermediary cluster listening');
  return { url, mailboxes, workerPids: () => [...live].map((w) => w.process.pid ?? 0), failed, stop };
}

/**
 * Runs in a worker: the same command line as the primary, so `cfg` is the same; starts the server without
 * preparation and stops it gracefully on SIGTERM/SIGINT. Never returns before the server stopped.
 */
export async function runWorker(cfg: ServerConfig): Promise<void> {
  const raw = process.env[PREPARED_ENV];
  if (!cluster.isWorker || raw === undefined) throw new OsciError('ERR_USAGE', 'runWorker runs in a cluster worker only');
  const prepared = JSON.parse(raw) as PreparedServer;
  // SIGINT from a terminal reaches the primary and every worker; repeated signals must not kill a stopping worker.
  let signalled: () => void = () => undefined;
  const signal = new Promise<void>((resolve) => (signalled = resolve));
  process.on('SIGINT', () => signalled());
  process.on('SIGTERM', () => signalled());
  try {
    const server = await startServer(cfg, { prepared });
    await signal;
    await server.stop();
  } finally {
    // The IPC channel keeps a worker alive; closing it lets the process exit (with process.exitCode on failure).
    if (process.connected) cluster.worker?.disconnect();
  }
}

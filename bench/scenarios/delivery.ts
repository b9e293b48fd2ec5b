/**
 * Small-message scenarios against the real server: storeDelivery and fetchDelivery of a 10 KB message at several
 * concurrency levels, driven by two load-generator processes (bench/load/) so that the load generator is neither
 * inside the server process nor a single-core bottleneck. Concurrency c is split evenly over the generators
 * (c = 1: one generator). Throughput counts requests completed inside the window; latency is per request as the
 * client sees it; errors are every answer that is not a verified success (transport, HTTP, fault, bad receipt).
 */
import type { LoadClient } from '../load/rpc.ts';
import type { FetchGoResult } from '../load/fetch.ts';
import type { GoResult, VerifyResult } from '../load/store.ts';
import { cpuWindow, percentile, round1, round2, type CpuReading } from '../sys.ts';

export interface LevelResult {
  concurrency: number;
  /** Requests completed inside the window. */
  completed: number;
  window_s: number;
  msgs_per_s: number;
  p50_ms?: number;
  p95_ms?: number;
  p99_ms?: number;
  /** Failed requests of the level (inside and after the window). */
  errors: number;
  error_samples: string[];
  /** CPU cores the server's processes used during the window. */
  server_cores?: number;
  /** Server CPU milliseconds per completed request (server_cores / msgs_per_s): what a request costs, however many cores were free. */
  server_cpu_ms_per_msg?: number;
  /** Cores busy on the whole machine during the window (server + generators + anything else). */
  machine_busy_cores?: number;
  /** Share of the window in which some task waited for a CPU (Linux PSI); high = the numbers are contended. */
  cpu_pressure?: number;
  /** Cores used by other programs during the window: machine busy − server − load generators. */
  foreign_cores?: number;
  /** CPU cores each load generator used during the window; > 0.9 means it saturated a core. */
  client_cores: number[];
  client_saturated: boolean;
  /** A generator ran out of work before the window ended (the window was shortened to that moment). */
  pool_exhausted: boolean;
  /** When the level ran several times: every round (the fields above are those of the best; errors add up). */
  rounds?: Array<Pick<LevelResult, 'msgs_per_s' | 'p99_ms' | 'server_cores' | 'cpu_pressure' | 'errors'>>;
}

/** The round with the highest throughput stands for the level (a capability on a shared machine); errors of every round count. */
export function bestRound<T extends LevelResult>(rounds: T[]): T {
  const best = rounds.reduce((a, b) => (b.msgs_per_s > a.msgs_per_s ? b : a));
  if (rounds.length === 1) return best;
  return {
    ...best,
    errors: rounds.reduce((s, r) => s + r.errors, 0),
    error_samples: rounds.flatMap((r) => r.error_samples).slice(0, 5),
    rounds: rounds.map((r) => ({ msgs_per_s: r.msgs_per_s, p99_ms: r.p99_ms, server_cores: r.server_cores, cpu_pressure: r.cpu_pressure, errors: r.errors })),
  };
}

export interface StoreLevelResult extends LevelResult {
  wire_bytes: number;
}

const START_DELAY_MS = 300;
/** Requests a generator encodes for a floor level; the pool repeats them (the floor ignores their content). */
const FLOOR_DISTINCT_REQUESTS = 64;

function split(c: number, clients: LoadClient[]): Array<{ client: LoadClient; lanes: number }> {
  if (c === 1 || clients.length === 1) return [{ client: clients[0] as LoadClient, lanes: c }];
  const per = Math.floor(c / clients.length);
  return clients.map((client, i) => ({ client, lanes: per + (i < c % clients.length ? 1 : 0) }));
}

function summarise(
  c: number,
  startAt: number,
  secs: number,
  runs: Array<{ ends: number[]; latencies: number[]; exhaustedAt?: number; cpu_s: number; wall_s: number }>,
  cpu: CpuReading,
  errors: number,
  samples: string[],
): LevelResult {
  const exhausted = runs.map((r) => r.exhaustedAt).filter((x): x is number => x !== undefined);
  const windowEnd = Math.min(startAt + secs * 1000, ...exhausted);
  const ends = runs.flatMap((r) => r.ends);
  const completed = ends.filter((e) => e <= windowEnd).length;
  const latencies = runs.flatMap((r) => r.latencies);
  const window = (windowEnd - startAt) / 1000;
  const clientCores = runs.map((r) => round2(r.cpu_s / Math.max(r.wall_s, 1e-3)));
  const p = (q: number) => {
    const v = percentile(latencies, q);
    return v === undefined ? undefined : round1(v);
  };
  return {
    concurrency: c,
    completed,
    window_s: round2(window),
    msgs_per_s: round1(completed / Math.max(window, 1e-3)),
    p50_ms: p(50),
    p95_ms: p(95),
    p99_ms: p(99),
    errors,
    error_samples: samples.slice(0, 5),
    ...(cpu.server_cores !== undefined ? { server_cores: cpu.server_cores } : {}),
    ...(cpu.server_cores !== undefined && completed > 0 ? { server_cpu_ms_per_msg: round1((cpu.server_cores * 1000 * window) / completed) } : {}),
    ...(cpu.machine_busy_cores !== undefined ? { machine_busy_cores: cpu.machine_busy_cores } : {}),
    ...(cpu.cpu_pressure !== undefined ? { cpu_pressure: cpu.cpu_pressure } : {}),
    ...(cpu.machine_busy_cores !== undefined && cpu.server_cores !== undefined
      ? { foreign_cores: Math.max(0, round2(cpu.machine_busy_cores - cpu.server_cores - clientCores.reduce((a, b) => a + b, 0))) }
      : {}),
    client_cores: clientCores,
    client_saturated: clientCores.some((x) => x > 0.9),
    pool_exhausted: exhausted.some((x) => x < startAt + secs * 1000),
  };
}

const sleepUntil = (t: number) => new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));

/**
 * One storeDelivery level: prepare `count` requests (untimed) → window → verify every answer (untimed). When the
 * prepared requests run out before `secs`, the window ends there (reported as pool_exhausted). Returns the
 * MessageIds that were stored.
 */
export async function storeLevel(opts: {
  clients: LoadClient[];
  serverPid: number;
  concurrency: number;
  secs: number;
  count: number;
  tag: string;
  /** POST to the platform floor (bench/floor/server.ts) instead, whose answers are only checked for HTTP 200. */
  floorUrl?: string;
}): Promise<{ result: StoreLevelResult; stored: string[] }> {
  const parts = split(opts.concurrency, opts.clients);
  const prep = await Promise.all(
    parts.map((p) => p.client.call<{ wire_bytes: number }>('storePrepare', {
        tag: opts.tag,
        count: Math.max(p.lanes * 2, Math.ceil((opts.count * p.lanes) / opts.concurrency)),
        ...(opts.floorUrl !== undefined ? { distinct: FLOOR_DISTINCT_REQUESTS } : {}),
      })),
  );
  const startAt = Date.now() + START_DELAY_MS;
  const go = Promise.all(parts.map((p) => p.client.call<GoResult>('storeGo', { tag: opts.tag, concurrency: p.lanes, startAt, secs: opts.secs, target: opts.floorUrl })));
  await sleepUntil(startAt);
  const w = cpuWindow(opts.serverPid);
  const runs = await go;
  const cpu = w.end();
  const verified = await Promise.all(parts.map((p) => p.client.call<VerifyResult>('storeVerify', { tag: opts.tag, statusOnly: opts.floorUrl !== undefined })));
  const errors = verified.reduce((s, v) => s + v.errors, 0);
  const result = summarise(opts.concurrency, startAt, opts.secs, runs, cpu, errors, verified.flatMap((v) => v.errorSamples));
  return { result: { ...result, wire_bytes: prep[0]?.wire_bytes ?? 0 }, stored: verified.flatMap((v) => v.stored) };
}

/** One fetchDelivery level over MessageIds from `pool` (fetched ones are removed from it). Dialogs stay open for the next level; call fetchClose after the last. */
export async function fetchLevel(opts: { clients: LoadClient[]; serverPid: number; concurrency: number; secs: number; pool: string[] }): Promise<LevelResult> {
  const parts = split(opts.concurrency, opts.clients);
  await Promise.all(parts.map((p) => p.client.call('fetchOpen', { dialogs: p.lanes })));
  const per = Math.floor(opts.pool.length / opts.concurrency);
  let next = 0;
  const assignments = parts.map((p) => Array.from({ length: p.lanes }, () => opts.pool.slice(next, (next += per))));
  const startAt = Date.now() + START_DELAY_MS;
  const go = Promise.all(parts.map((p, i) => p.client.call<FetchGoResult>('fetchGo', { ids: assignments[i], startAt, secs: opts.secs })));
  await sleepUntil(startAt);
  const w = cpuWindow(opts.serverPid);
  const runs = await go;
  const cpu = w.end();
  const fetched = new Set(runs.flatMap((r) => r.fetched));
  const left = opts.pool.filter((id) => !fetched.has(id));
  opts.pool.splice(0, opts.pool.length, ...left);
  return summarise(opts.concurrency, startAt, opts.secs, runs, cpu, runs.reduce((s, r) => s + r.errors, 0), runs.flatMap((r) => r.errorSamples));
}

/**
 * A 200 MB attachment through the real server: sent (storeDelivery, ingest) and fetched (fetchDelivery), from its
 * own load-generator process, `rounds` times (sealed once). Reports wall time, MB/s (10^6 bytes of attachment per
 * second), the CPU seconds the server's processes and the client spent, and the peak RSS of every server process and
 * of the client during each step (VmHWM, reset before the step where Linux allows): per round, and as the fastest
 * round's times with the least CPU and the highest peaks of all rounds.
 */
import type { LargeStep } from '../load/large.ts';
import type { LoadClient } from '../load/rpc.ts';
import { cpuSecondsOf, peakRssMb, resetPeakRss, round1, round2 } from '../sys.ts';

export interface LargeStepResult {
  wall_s: number;
  mb_per_s: number;
  ok: boolean;
  detail?: string;
  /** Largest peak RSS of one server process (the worker that handled the request), MiB. */
  server_peak_rss_mb?: number;
  /** Sum of the peaks of all server processes (primary + workers), MiB: an upper bound of the server's footprint. */
  server_total_peak_rss_mb?: number;
  client_peak_rss_mb?: number;
  /** CPU seconds of all server processes during the step (user + system, every thread; 10 ms ticks). */
  server_cpu_s?: number;
  /** CPU seconds of the client process during the step. */
  client_cpu_s?: number;
  /** Whether the peaks were reset before the step (otherwise they are since process start). */
  peaks_reset: boolean;
}

export interface LargeDeliveryResult {
  attachment_bytes: number;
  prepare_s: number;
  /** Fastest round's time, `ok` only if every round was, the least CPU and the highest peak RSS of all rounds. */
  store: LargeStepResult;
  fetch: LargeStepResult;
  rounds: Array<{ store: LargeStepResult; fetch: LargeStepResult }>;
}

/**
 * The fastest round's time, but a failure in any round, the highest memory peak of all and the least CPU (the figure
 * to compare across runs: it moves less with other programs and the VM's speed than wall time does).
 */
function best(steps: readonly LargeStepResult[]): LargeStepResult {
  const fastest = steps.reduce((a, b) => (b.wall_s < a.wall_s ? b : a));
  const pick = (k: 'server_peak_rss_mb' | 'server_total_peak_rss_mb' | 'client_peak_rss_mb' | 'server_cpu_s' | 'client_cpu_s', f: (...v: number[]) => number) => {
    const v = steps.flatMap((s) => (s[k] === undefined ? [] : [s[k]]));
    return v.length ? { [k]: f(...v) } : {};
  };
  const peak = (k: 'server_peak_rss_mb' | 'server_total_peak_rss_mb' | 'client_peak_rss_mb') => pick(k, Math.max);
  const failed = steps.find((s) => !s.ok);
  return {
    wall_s: fastest.wall_s,
    mb_per_s: fastest.mb_per_s,
    ok: failed === undefined,
    ...(failed?.detail ? { detail: failed.detail } : {}),
    ...peak('server_peak_rss_mb'),
    ...peak('server_total_peak_rss_mb'),
    ...peak('client_peak_rss_mb'),
    ...pick('server_cpu_s', Math.min),
    ...pick('client_cpu_s', Math.min),
    peaks_reset: steps.every((s) => s.peaks_reset),
  };
}

export async function runLargeDelivery(opts: { client: LoadClient; serverPids: () => number[]; sizeBytes: number; rounds: number }): Promise<LargeDeliveryResult> {
  const prep = await opts.client.call<{ prepare_s: number }>('largePrepare', { sizeBytes: opts.sizeBytes });
  const step = async (cmd: 'largeStore' | 'largeFetch'): Promise<LargeStepResult> => {
    const pids = opts.serverPids();
    const reset = pids.map(resetPeakRss).every(Boolean);
    const cpu0 = cpuSecondsOf(pids);
    const r = await opts.client.call<LargeStep>(cmd);
    const cpu1 = cpuSecondsOf(pids);
    const peaks = pids.map(peakRssMb).filter((x): x is number => x !== undefined);
    return {
      wall_s: round2(r.wall_s),
      mb_per_s: round1(opts.sizeBytes / 1e6 / r.wall_s),
      ok: r.ok,
      ...(r.detail ? { detail: r.detail } : {}),
      ...(peaks.length ? { server_peak_rss_mb: Math.max(...peaks), server_total_peak_rss_mb: peaks.reduce((a, b) => a + b, 0) } : {}),
      ...(r.client_peak_rss_mb !== undefined ? { client_peak_rss_mb: r.client_peak_rss_mb } : {}),
      ...(cpu0 !== undefined && cpu1 !== undefined ? { server_cpu_s: round2(cpu1 - cpu0) } : {}),
      client_cpu_s: round2(r.client_cpu_s),
      peaks_reset: reset && r.client_peak_reset,
    };
  };
  const rounds: LargeDeliveryResult['rounds'] = [];
  for (let i = 0; i < Math.max(1, opts.rounds); i++) {
    const store = await step('largeStore');
    rounds.push({ store, fetch: await step('largeFetch') });
  }
  return { attachment_bytes: opts.sizeBytes, prepare_s: round2(prep.prepare_s), store: best(rounds.map((r) => r.store)), fetch: best(rounds.map((r) => r.fetch)), rounds };
}

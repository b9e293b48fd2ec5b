/**
 * A 200 MB attachment through the real server: sent (storeDelivery, ingest) and fetched (fetchDelivery), from its
 * own load-generator process. Reports wall time, MB/s (10^6 bytes of attachment per second) and the peak RSS of
 * every server process and of the client during each step (VmHWM, reset before the step where Linux allows).
 */
import type { LargeStep } from '../load/large.ts';
import type { LoadClient } from '../load/rpc.ts';
import { peakRssMb, resetPeakRss, round1, round2 } from '../sys.ts';

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
  /** Whether the peaks were reset before the step (otherwise they are since process start). */
  peaks_reset: boolean;
}

export interface LargeDeliveryResult {
  attachment_bytes: number;
  prepare_s: number;
  store: LargeStepResult;
  fetch: LargeStepResult;
}

export async function runLargeDelivery(opts: { client: LoadClient; serverPids: () => number[]; sizeBytes: number }): Promise<LargeDeliveryResult> {
  const prep = await opts.client.call<{ prepare_s: number }>('largePrepare', { sizeBytes: opts.sizeBytes });
  const step = async (cmd: 'largeStore' | 'largeFetch'): Promise<LargeStepResult> => {
    const pids = opts.serverPids();
    const reset = pids.map(resetPeakRss).every(Boolean);
    const r = await opts.client.call<LargeStep>(cmd);
    const peaks = pids.map(peakRssMb).filter((x): x is number => x !== undefined);
    return {
      wall_s: round2(r.wall_s),
      mb_per_s: round1(opts.sizeBytes / 1e6 / r.wall_s),
      ok: r.ok,
      ...(r.detail ? { detail: r.detail } : {}),
      ...(peaks.length ? { server_peak_rss_mb: Math.max(...peaks), server_total_peak_rss_mb: peaks.reduce((a, b) => a + b, 0) } : {}),
      ...(r.client_peak_rss_mb !== undefined ? { client_peak_rss_mb: r.client_peak_rss_mb } : {}),
      peaks_reset: reset && r.client_peak_reset,
    };
  };
  const store = await step('largeStore');
  const fetch = await step('largeFetch');
  return { attachment_bytes: opts.sizeBytes, prepare_s: round2(prep.prepare_s), store, fetch };
}

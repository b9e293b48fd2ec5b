/**
 * `floor` (only when named): the platform floor (bench/floor/server.ts), driven exactly as the intermediary is —
 * the same two load generators posting the same prepared storeDelivery requests at concurrency 1, 8 and 32, and the
 * 200 MB attachment's bytes in one POST from the third. It answers "how much of the gap to the hardware bound is
 * the protocol's, and how much the platform's": the intermediary's figures are reported as ratios to it too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LargeStep } from '../load/large.ts';
import { LoadClient } from '../load/rpc.ts';
import { startListening } from '../server.ts';
import { cpuSecondsOf, round2 } from '../sys.ts';
import { bestRound, storeLevel, type StoreLevelResult } from './delivery.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'floor', 'server.ts');

export interface FloorLargeRound {
  wall_s: number;
  server_cpu_s?: number;
  client_cpu_s: number;
}

export interface FloorResult {
  workers: number;
  small: { levels: StoreLevelResult[] };
  /** Fastest round's wall time; CPU: the least of all rounds. */
  large?: { size_bytes: number; wall_s: number; mb_per_s: number; server_cpu_s?: number; client_cpu_s: number; ok: boolean; rounds: FloorLargeRound[] };
}

export async function runFloor(opts: {
  pkiDir: string;
  workers: number;
  levels: readonly number[];
  rounds: number;
  /** The window of level c at an expected rate (run.ts windowFor). */
  windowFor: (c: number, expectedPerS: number) => number;
  expectedPerS: number;
  largeBytes?: number;
  say: (msg: string) => void;
}): Promise<FloorResult> {
  const work = mkdtempSync(join(tmpdir(), 'amtsbote-floor-'));
  const server = await startListening(['--import', 'tsx'], [ENTRY, '--pki', opts.pkiDir, '--data', join(work, 'data'), '--workers', String(opts.workers)], {
    singleProcess: opts.workers === 1,
    listening: /floor listening on (http:\/\/\S+)/,
    what: 'floor',
  });
  const init = { pkiDir: opts.pkiDir, osciUrl: `${server.url}/small` };
  const clients: LoadClient[] = [];
  try {
    opts.say(`floor ${server.url} (pids ${server.pids().join(', ')})`);
    const [a, b, largeClient] = await Promise.all([LoadClient.spawn('floor-a', init), LoadClient.spawn('floor-b', init), opts.largeBytes ? LoadClient.spawn('floor-large', init) : undefined]);
    clients.push(a, b);
    const small = [a, b];
    await storeLevel({ clients: small, serverPid: server.pid, concurrency: 2, secs: 2, count: 200, tag: 'floor-warmup', floorUrl: init.osciUrl });
    let expected = opts.expectedPerS;
    const levels: StoreLevelResult[] = [];
    for (const c of opts.levels) {
      const window = opts.windowFor(c, expected);
      const count = Math.ceil(expected * window * 2) + 2 * c;
      const rounds: StoreLevelResult[] = [];
      for (let i = 0; i < opts.rounds; i++) {
        rounds.push((await storeLevel({ clients: small, serverPid: server.pid, concurrency: c, secs: window, count, tag: `floor-c${c}-${i}`, floorUrl: init.osciUrl })).result);
      }
      const level = bestRound(rounds);
      levels.push(level);
      expected = Math.max(level.msgs_per_s, 1) * (c === 1 ? 4 : 1.5);
    }
    const result: FloorResult = { workers: opts.workers, small: { levels } };
    if (largeClient && opts.largeBytes) {
      clients.push(largeClient);
      await largeClient.call('largePrepare', { sizeBytes: opts.largeBytes });
      const rounds: FloorLargeRound[] = [];
      let ok = true;
      for (let i = 0; i < opts.rounds; i++) {
        const cpu0 = cpuSecondsOf(server.pids());
        const step = await largeClient.call<LargeStep>('largeFloor', { target: `${server.url}/large` });
        const cpu1 = cpuSecondsOf(server.pids());
        ok &&= step.ok;
        rounds.push({ wall_s: round2(step.wall_s), ...(cpu0 !== undefined && cpu1 !== undefined ? { server_cpu_s: round2(cpu1 - cpu0) } : {}), client_cpu_s: round2(step.client_cpu_s) });
      }
      const wall = Math.min(...rounds.map((r) => r.wall_s));
      const serverCpu = rounds.map((r) => r.server_cpu_s).filter((x): x is number => x !== undefined);
      result.large = {
        size_bytes: opts.largeBytes,
        wall_s: wall,
        mb_per_s: round2(opts.largeBytes / 1e6 / wall),
        ...(serverCpu.length ? { server_cpu_s: Math.min(...serverCpu) } : {}),
        client_cpu_s: Math.min(...rounds.map((r) => r.client_cpu_s)),
        ok,
        rounds,
      };
    }
    return result;
  } finally {
    await Promise.all(clients.map((c) => c.exit()));
    await server.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

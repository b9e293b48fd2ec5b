/**
 * What the worker processes buy (`npm run bench -- workers`): a 1-process server and an N-worker server run side by
 * side on separate data folders, and storeDelivery rounds alternate between them (A, B, A, B, …), so that load from
 * other programs on a shared machine falls on both alike. Reports every round and the median gain N-worker / 1-process.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoadClient } from '../load/rpc.ts';
import { startBenchServer, type BenchServer } from '../server.ts';
import { round2 } from '../sys.ts';
import { storeLevel, type StoreLevelResult } from './delivery.ts';

export interface WorkersComparison {
  workers: number;
  rounds: number;
  window_s: number;
  levels: Array<{
    concurrency: number;
    single_msgs_per_s: number[];
    cluster_msgs_per_s: number[];
    single_server_cores: Array<number | undefined>;
    cluster_server_cores: Array<number | undefined>;
    /** median(cluster) / median(single). */
    gain: number;
    errors: number;
  }>;
}

/** A PostgreSQL URL with a schema of its own per server. */
function schemaFor(db: string, i: number): string {
  const u = new URL(db);
  u.searchParams.set('schema', `${u.searchParams.get('schema') ?? 'amtsbote_bench'}_${i}`);
  return u.toString();
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export async function runWorkersComparison(opts: { pkiDir: string; db?: string; workers: number; rounds: number; secs: number; expectedPerS: number }): Promise<WorkersComparison> {
  const work = mkdtempSync(join(tmpdir(), 'amtsbote-bench-workers-'));
  const servers: BenchServer[] = [];
  const clients: LoadClient[] = [];
  try {
    const [single, cluster] = await Promise.all(
      [1, opts.workers].map((w, i) => startBenchServer({ pkiDir: opts.pkiDir, dataDir: join(work, `data-${i}`), ...(opts.db ? { db: schemaFor(opts.db, i) } : {}), workers: w, configDir: mkdtempSync(join(work, 'cfg-')) })),
    );
    servers.push(single as BenchServer, cluster as BenchServer);
    const gen = async (s: BenchServer, name: string) => [await LoadClient.spawn(`${name}-a`, { pkiDir: opts.pkiDir, osciUrl: s.osciUrl }), await LoadClient.spawn(`${name}-b`, { pkiDir: opts.pkiDir, osciUrl: s.osciUrl })];
    const [forSingle, forCluster] = await Promise.all([gen(single as BenchServer, 'single'), gen(cluster as BenchServer, 'cluster')]);
    clients.push(...(forSingle as LoadClient[]), ...(forCluster as LoadClient[]));
    const levels: WorkersComparison['levels'] = [];
    for (const c of [8, 32]) {
      const s: StoreLevelResult[] = [];
      const k: StoreLevelResult[] = [];
      const count = Math.ceil(opts.expectedPerS * opts.secs * 1.5) + 2 * c;
      // Warm both (JIT, connections) before the first measured round of the level.
      for (const [srv, cl] of [[single, forSingle], [cluster, forCluster]] as const) await storeLevel({ clients: cl as LoadClient[], serverPid: (srv as BenchServer).pid, concurrency: c, secs: 1, count: 2 * c, tag: `warm-${c}` });
      for (let r = 0; r < opts.rounds; r++) {
        s.push((await storeLevel({ clients: forSingle as LoadClient[], serverPid: (single as BenchServer).pid, concurrency: c, secs: opts.secs, count, tag: `s${c}-${r}` })).result);
        k.push((await storeLevel({ clients: forCluster as LoadClient[], serverPid: (cluster as BenchServer).pid, concurrency: c, secs: opts.secs, count, tag: `k${c}-${r}` })).result);
      }
      levels.push({
        concurrency: c,
        single_msgs_per_s: s.map((x) => x.msgs_per_s),
        cluster_msgs_per_s: k.map((x) => x.msgs_per_s),
        single_server_cores: s.map((x) => x.server_cores),
        cluster_server_cores: k.map((x) => x.server_cores),
        gain: round2(median(k.map((x) => x.msgs_per_s)) / Math.max(0.01, median(s.map((x) => x.msgs_per_s)))),
        errors: [...s, ...k].reduce((a, x) => a + x.errors, 0),
      });
    }
    return { workers: opts.workers, rounds: opts.rounds, window_s: opts.secs, levels };
  } finally {
    await Promise.all(clients.map((c) => c.exit()));
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(work, { recursive: true, force: true });
  }
}

/** Parent side of a load-generator process (bench/load/client.ts): fork with tsx, call commands, exit. */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { workerExecArgv } from '../../gateway/cluster.ts';
import type { LoadInit } from './common.ts';

const ENTRY = join(dirname(fileURLToPath(import.meta.url)), 'client.ts');

export class LoadClient {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
    readonly pid: number,
  ) {
    proc.on('message', (m: { id: number; ok: boolean; result?: unknown; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${name}: ${m.error ?? 'failed'}`));
    });
    proc.once('exit', (code) => {
      for (const p of this.pending.values()) p.reject(new Error(`${name} exited (code ${String(code)})`));
      this.pending.clear();
    });
  }

  static async spawn(name: string, init: LoadInit): Promise<LoadClient> {
    // BENCH_CLIENT_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the load generators.
    const extra = process.env.BENCH_CLIENT_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    // The V8 flags the server's workers get, as README advises for the agent and the CLI (BENCHMARKS.md, eighth round).
    const proc = fork(ENTRY, [], { execArgv: workerExecArgv(['--import', 'tsx', ...extra]), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const c = new LoadClient(name, proc, proc.pid ?? -1);
    await c.call('init', init);
    return c;
  }

  call<T>(cmd: string, args: unknown = {}): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.send({ id, cmd, args });
    });
  }

  async exit(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    await this.call('exit').catch(() => undefined);
    await gone;
  }
}

/**
 * The intermediary under test: `node bin/amtsbote.js serve --config FILE --workers N`, a real server process on
 * 127.0.0.1, exactly as an operator starts it (a single process, `--workers 1`, with the settings README advises for
 * it: the workers' V8 flags and malloc variables). Resolves once it printed its "listening on <url>/osci" line.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { workerExecArgv, workerMallocEnv } from '../gateway/cluster.ts';
import { BENCH_RSA_BITS } from './pki.ts';
import { processTree } from './sys.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const LISTENING = /listening on (http:\/\/\S+?)\/osci\b/;

/** `pid`: the primary (or the single process with --workers 1); `pids()`: primary and workers; `stop()`: SIGTERM, in-flight requests finish, the store closes. */
export interface BenchServer extends StartedProcess {
  osciUrl: string;
  workers: number;
}

export async function startBenchServer(opts: { pkiDir: string; dataDir: string; db?: string; workers: number; configDir: string }): Promise<BenchServer> {
  const config = join(opts.configDir, 'amtsbote-bench.json');
  writeFileSync(
    config,
    JSON.stringify({
      host: '127.0.0.1',
      port: 0,
      dataDir: opts.dataDir,
      ...(opts.db ? { db: opts.db } : {}),
      identityDir: join(opts.pkiDir, 'intermediary'),
      devPki: { enabled: true, dir: opts.pkiDir, bits: BENCH_RSA_BITS },
      registerDevIdentities: true,
      // Per-request info logs would measure pino, not the intermediary.
      logLevel: 'warn',
    }),
  );
  // BENCH_SERVER_NODE_ARGS: extra node flags for the server only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  // (NODE_OPTIONS refuses --cpu-prof; cluster workers inherit the flags).
  const extra = (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter((a) => a !== '');
  const started = await startListening(extra, [join(ROOT, 'bin', 'amtsbote.js'), 'serve', '--config', config, '--workers', String(opts.workers)], {
    singleProcess: opts.workers === 1,
    listening: LISTENING,
    what: 'server',
  });
  return { ...started, osciUrl: `${started.url}/osci`, workers: opts.workers };
}

export interface StartedProcess {
  url: string;
  pid: number;
  /** The process and its children. */
  pids(): number[];
  output(): string;
  /** SIGTERM, then SIGKILL after 60 s. */
  stop(): Promise<void>;
}

/**
 * Starts `node NODE_ARGS SCRIPT_ARGS` in the repository and resolves once its output matched `listening` (group 1:
 * the URL). A single process (`singleProcess`) gets the settings README advises for one: the workers' V8 flags and
 * malloc variables; a cluster's primary gives them to its workers itself.
 */
export async function startListening(nodeArgs: string[], scriptArgs: string[], opts: { singleProcess: boolean; listening: RegExp; what: string }): Promise<StartedProcess> {
  const proc = spawn(process.execPath, [...(opts.singleProcess ? workerExecArgv(nodeArgs) : nodeArgs), ...scriptArgs], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: opts.singleProcess ? { ...process.env, ...workerMallocEnv(process.env) } : process.env,
  });
  let out = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${opts.what} did not start within 180 s:\n${out}`)), 180_000);
    proc.stdout.on('data', (d: string) => {
      out += d;
      const m = opts.listening.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1] as string);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${opts.what} exited before listening:\n${out}`));
    });
  });
  const pid = proc.pid ?? -1;
  return {
    url,
    pid,
    pids: () => processTree(pid),
    output: () => out,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 60_000);
      await exited;
      clearTimeout(t);
    },
  };
}

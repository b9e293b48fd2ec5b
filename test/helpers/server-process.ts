/**
 * The intermediary as a real child process: `node bin/amtsbote.js serve --config FILE`, exactly as an operator
 * starts it. Resolves once the server printed its "listening on <url>/osci" line; SIGKILL and graceful stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OsciClient, type OsciClientOptions } from '../../adapters/osci/client.ts';
import type { ServerConfig } from '../../gateway/config.ts';
import type { TestIdentity } from './devpki.ts';
import { REPO_ROOT } from './env.ts';

export interface ServerProcess {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  /** The OSCI endpoint: `${url}/osci` */
  osciUrl: string;
  pid: number;
  /** Everything the child printed so far (for assertion messages). */
  output(): string;
  /** Resolves when the child has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * SIGKILL and wait for the (primary) process to exit. 'group' (default) kills the whole process group at once, as
   * a crash or an OOM kill of the container would (with --workers N, every worker too); 'primary' only the process
   * that was started (an operator's `kill -9 <pid>`; cluster workers then notice their primary's death and exit).
   */
  kill(target?: 'group' | 'primary'): Promise<void>;
  /** SIGTERM (graceful shutdown: in-flight requests finish, store closed) and waits; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Writes a JSON configuration file for `serve --config` (port 0 = any free port). */
export function writeServerConfig(dir: string, cfg: Partial<ServerConfig>, name = 'amtsbote.json'): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify({ port: 0, logLevel: 'warn', ...cfg }, null, 2));
  return file;
}

/** Configuration of a server on the test dev PKI (testPki()): its intermediary identity, dev identities registered. */
export function devServerConfig(pkiDir: string, dataDir: string, db?: string): Partial<ServerConfig> {
  return { dataDir, db, identityDir: join(pkiDir, 'intermediary'), devPki: { enabled: true, dir: pkiDir, bits: 2048 }, registerDevIdentities: true };
}

/** An OSCI client of `who` for the server at `osciUrl` whose identity is `intermediary` (the dev PKI's). */
export function osciClient(osciUrl: string, who: TestIdentity, intermediary: TestIdentity, tmpDir: string, extra: Pick<OsciClientOptions, 'onUploadProgress'> = {}): OsciClient {
  return new OsciClient({
    endpoint: osciUrl,
    intermediary: { cipher: intermediary.cipher.cert, signature: intermediary.signature.cert },
    signer: who.signature,
    cipher: who.cipher,
    tmpDir,
    ...extra,
  });
}

/** Children still running; their process groups are killed when the test process exits (they run detached). */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) {
    try {
      if (p.pid !== undefined) process.kill(-p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

const LISTENING = /listening on (https?:\/\/\S+?)\/osci\b/;

/**
 * Starts `amtsbote serve --config <configFile> [...args]` (e.g. args ['--workers', '1']) in its own process group;
 * rejects with the child's output if it exits or stays silent.
 */
export function startServerProcess(configFile: string, opts: { args?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<ServerProcess> {
  const proc: ChildProcess = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'amtsbote.js'), 'serve', '--config', configFile, ...(opts.args ?? [])], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  live.add(proc);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      live.delete(proc);
      resolve({ code, signal });
    }),
  );
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  proc.stdout?.setEncoding('utf8');
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => (out += d));

  const handle = (url: string): ServerProcess => ({
    url,
    osciUrl: `${url}/osci`,
    pid: proc.pid ?? -1,
    output: () => out,
    exited,
    async kill(target = 'group') {
      if (alive() && proc.pid !== undefined) {
        if (target === 'group') process.kill(-proc.pid, 'SIGKILL');
        else proc.kill('SIGKILL');
      }
      await exited;
    },
    async stop(graceMs = 30_000) {
      if (alive()) proc.kill('SIGTERM');
      const t = setTimeout(() => alive() && proc.pid !== undefined && process.kill(-proc.pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  });

  return new Promise<ServerProcess>((resolve, reject) => {
    let done = false;
    const fail = (why: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (alive() && proc.pid !== undefined) process.kill(-proc.pid, 'SIGKILL');
      reject(new Error(`amtsbote serve ${why}:\n${out}`));
    };
    const timer = setTimeout(() => fail(`printed no "listening on" line within ${opts.timeoutMs ?? 90_000} ms`), opts.timeoutMs ?? 90_000);
    proc.stdout?.on('data', (d: string) => {
      out += d;
      const m = LISTENING.exec(out);
      if (m && !done) {
        done = true;
        clearTimeout(timer);
        resolve(handle(m[1] as string));
      }
    });
    proc.once('error', (e) => fail(`could not be started (${e.message})`));
    void exited.then(({ code, signal }) => fail(`exited before listening (code ${String(code)}, signal ${String(signal)})`));
  });
}

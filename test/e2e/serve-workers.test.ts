/**
 * `amtsbote serve --workers 2` on SQLite (gateway/cluster.ts): two worker processes behind one port share the store;
 * crash recovery runs once, in the primary, before forking, never in a worker (it would delete the payload files
 * of the other worker's writers); a start after the primary was killed waits for its orphaned workers first.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OsciClient } from '../../adapters/osci/client.ts';
import { awaitPreviousWorkers, WORKER_MALLOC_ENV, WORKER_NODE_FLAGS, workerExecArgv } from '../../gateway/cluster.ts';
import { resolveConfig } from '../../gateway/config.ts';
import { silentLogger } from '../../gateway/log.ts';
import { sealContent } from '../../protocol/envelope/index.ts';
import { testIdentity, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { REPO_ROOT } from '../helpers/env.ts';

interface Served {
  proc: ChildProcess;
  url: string;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(50);
  }
}

function serve(config: string, workers: number): Promise<Served> {
  const proc = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'amtsbote.js'), 'serve', '--config', config, '--workers', String(workers)], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MALLOC_'))),
  });
  let out = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not listen:\n${out}`)), 120_000);
    const check = setInterval(() => {
      const m = /listening on (http:\/\/\S+?)\/osci/.exec(out);
      if (m) {
        clearInterval(check);
        clearTimeout(timer);
        resolve({ proc, url: m[1] as string, out: () => out, exited });
      }
    }, 20);
    void exited.then(() => {
      clearInterval(check);
      clearTimeout(timer);
      reject(new Error(`serve exited before listening:\n${out}`));
    });
  });
}

describe('e2e: serve --workers 2 on SQLite (cluster)', function () {
  this.timeout(300_000);
  let tmp: string;
  let dataDir: string;
  let config: string;
  let ag: TestIdentity;
  let stadt: TestIdentity;
  let intermediary: TestIdentity;
  let running: Served | undefined;

  const pidFile = () => join(dataDir, 'cluster-workers.json');
  const workerPids = (): number[] => (JSON.parse(readFileSync(pidFile(), 'utf8')) as { pids: number[] }).pids;
  const client = (url: string, who: TestIdentity) =>
    new OsciClient({
      endpoint: `${url}/osci`,
      intermediary: { cipher: intermediary.cipher.cert, signature: intermediary.signature.cert },
      signer: who.signature,
      cipher: who.cipher,
      tmpDir: tmp,
    });

  before(async () => {
    const pki = await testPki();
    [ag, stadt, intermediary] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('intermediary')]);
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-workers-'));
    dataDir = join(tmp, 'data');
    config = join(tmp, 'amtsbote.json');
    writeFileSync(
      config,
      JSON.stringify({ port: 0, dataDir, identityDir: join(pki.dir, 'intermediary'), devPki: { enabled: true, dir: pki.dir, bits: 2048 }, registerDevIdentities: true, logLevel: 'info' }),
    );
  });

  afterEach(async () => {
    if (running && running.proc.exitCode === null && running.proc.signalCode === null) running.proc.kill('SIGKILL');
    if (running) await running.exited;
    running = undefined;
  });

  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('two workers share the port and the store; SIGTERM stops them all and removes the pid file', async () => {
    running = await serve(config, 2);
    const pids = workerPids();
    expect(pids).to.have.length(2);
    expect(pids.every(alive)).to.equal(true);
    // Each worker runs with the malloc settings of WORKER_MALLOC_ENV (none was set in this environment) and the V8
    // flags of WORKER_NODE_FLAGS; the primary without them.
    for (const pid of pids) {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      expect(env.filter((e) => e.startsWith('MALLOC_')).sort()).to.deep.equal(Object.entries(WORKER_MALLOC_ENV).map(([k, v]) => `${k}=${v}`).sort());
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).to.include.members([...WORKER_NODE_FLAGS]);
    }
    expect(readFileSync(`/proc/${String(running.proc.pid)}/cmdline`, 'utf8').split('\0')).not.to.include.members([...WORKER_NODE_FLAGS]);

    const sender = client(running.url, ag);
    const ids = await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const sealed = await sealContent({ author: ag.signature, readers: [stadt.cipher.cert], contents: [{ base64Content: Buffer.from(`Nachricht ${i}`) }], tmpDir: tmp });
        try {
          const r = await sender.storeDelivery({ addresseeCipher: stadt.cipher.cert, subject: `n${i}`, contentPackage: sealed.contentPackage, certificates: sealed.certificates });
          expect(r.feedback[0]?.code).to.equal('0800');
          return r.messageId;
        } finally {
          await sealed.dispose();
        }
      }),
    );
    // Concurrent requests arrive on several connections, which the primary hands to the workers in turn.
    const servedBy = new Set(
      running
        .out()
        .split('\n')
        .filter((l) => l.includes('"osci request done"'))
        .map((l) => (JSON.parse(l) as { pid: number }).pid),
    );
    expect([...servedBy].sort()).to.deep.equal([...pids].sort());

    // One dialog whose requests may land on either worker: its state lives in the store.
    const dialog = await client(running.url, stadt).openDialog();
    const fetched: string[] = [];
    for (const id of ids) {
      const got = await dialog.fetchDelivery({ by: 'messageId', messageId: id });
      expect(got, id).to.not.equal(undefined);
      fetched.push(got?.response.processCardBundle?.messageId ?? '');
      await got?.decoded.dispose();
    }
    await dialog.close();
    expect(fetched).to.deep.equal(ids);

    // /metrics sums the workers' counters, whichever worker answers (gauges every worker sets alike are not summed).
    for (let i = 0; i < 2; i++) {
      const text = await (await fetch(`${running.url}/metrics`, { headers: { connection: 'close' } })).text();
      expect(text).to.match(/^amtsbote_deliveries_stored_total 6$/m);
      const own = /^amtsbote_certificate_days_to_expiry\{participant="\(intermediary\)",usage="signature"[^}]*\} (\S+)$/m.exec(text);
      const days = (new Date(intermediary.signature.cert.validTo).getTime() - Date.now()) / 86_400_000;
      expect(Math.abs(Number(own?.[1]) - days)).to.be.lessThan(1.5);
    }

    running.proc.kill('SIGTERM');
    expect((await running.exited).code).to.equal(0);
    expect(pids.some(alive)).to.equal(false);
    expect(existsSync(pidFile())).to.equal(false);
  });

  it('recovery runs in the primary only: a replaced worker leaves in-flight files alone; orphans exit with a killed primary', async () => {
    const tmpFiles = join(dataDir, 'payloads', 'tmp');
    mkdirSync(tmpFiles, { recursive: true });
    writeFileSync(join(tmpFiles, 'left-by-a-crash'), 'x');
    running = await serve(config, 2);
    expect(existsSync(join(tmpFiles, 'left-by-a-crash')), 'the primary recovered before forking').to.equal(false);

    // Stands for a part another worker is writing right now.
    writeFileSync(join(tmpFiles, 'in-flight'), 'x');
    const [victim, other] = workerPids() as [number, number];
    process.kill(victim, 'SIGKILL');
    await until('a replacement worker runs', () => {
      const now = workerPids();
      return now.length === 2 && !now.includes(victim) && now.every(alive);
    });
    const replacement = workerPids().find((p) => p !== other) as number;
    await until('the replacement listens', () => running?.out().split('\n').some((l) => l.includes(`"pid":${replacement}`) && l.includes('intermediary listening')) === true);
    expect(existsSync(join(tmpFiles, 'in-flight')), 'a worker never recovers').to.equal(true);
    const res = await fetch(`${running.url}/healthz`);
    expect(res.status).to.equal(200);

    // The primary dies without a word: its workers notice and exit; the next start recovers.
    const orphans = workerPids();
    running.proc.kill('SIGKILL');
    await running.exited;
    await until('orphaned workers exit', () => !orphans.some(alive));
    running = await serve(config, 2);
    expect(existsSync(join(tmpFiles, 'in-flight')), 'recovered at the next start').to.equal(false);
  });

  it('a start waits for workers of a previous run that are still alive before it recovers', async () => {
    const dir = mkdtempSync(join(tmp, 'orphan-'));
    // A stand-in for an orphaned worker: a live process whose command line names amtsbote.
    const orphan = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'amtsbote-orphan'], { stdio: 'ignore' });
    const orphanExited = new Promise<void>((resolve) => orphan.once('exit', () => resolve()));
    await until('the stand-in runs', () => orphan.pid !== undefined && alive(orphan.pid));
    writeFileSync(join(dir, 'cluster-workers.json'), JSON.stringify({ primary: 1, pids: [orphan.pid] }));
    let done = false;
    const waiting = awaitPreviousWorkers(resolveConfig({ dataDir: dir }), silentLogger).then(() => (done = true));
    await sleep(500);
    expect(done, 'still waiting while the orphan lives').to.equal(false);
    orphan.kill('SIGKILL');
    await orphanExited;
    await waiting;
    expect(done).to.equal(true);
  });
});

describe('cluster: worker node flags', () => {
  it('adds WORKER_NODE_FLAGS unless the operator set the initial heap', () => {
    expect(workerExecArgv(['--import', 'tsx'])).to.deep.equal(['--import', 'tsx', ...WORKER_NODE_FLAGS]);
    for (const own of ['--initial-old-space-size=128', '--initial_old_space_size=128', '--initial-heap-size=256']) {
      expect(workerExecArgv([own])).to.deep.equal([own]);
    }
  });
});

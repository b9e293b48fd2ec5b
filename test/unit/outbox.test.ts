/**
 * The agent's outbox (adapters/outbox/*, adapters/http/dms.ts, adapters/hotfolder/export.ts) against a real HTTP
 * DMS double on 127.0.0.1: retries with exponential backoff and jitter after 5xx and timeouts, dead letter after
 * N attempts with the reason, re-drive with `amtsbote outbox retry`, 4xx parks at once, a lost 2xx is
 * deduplicated by the Idempotency-Key (the double counts imports), and the hot folder export runs exactly once.
 * The clock is the test's: backoff is checked on the recorded `nextAt`, never by waiting. The job store contract
 * runs on SQLite and on the machine's PostgreSQL.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { DeliveryAdapter } from '../../adapters/delivery.ts';
import { HotFolderExport } from '../../adapters/hotfolder/export.ts';
import { HttpDmsAdapter, IDEMPOTENCY_HEADER, SIGNATURE_HEADER } from '../../adapters/http/dms.ts';
import { verifyDmsSignature } from '../../adapters/http/verify.ts';
import type { MessageMeta } from '../../adapters/inbox.ts';
import { backoffDelay, type RetryPolicy } from '../../adapters/outbox/backoff.ts';
import { SqliteJobStore } from '../../adapters/outbox/sqlite.ts';
import { openJobStore } from '../../adapters/outbox/index.ts';
import type { JobRecord, JobStore } from '../../adapters/outbox/types.ts';
import { OutboxWorker } from '../../adapters/outbox/worker.ts';
import { silentLogger } from '../../gateway/log.ts';
import { REPO_ROOT } from '../helpers/env.ts';
import { dropPgSchema, pgAvailable, pgSchemaUrl } from '../helpers/pg.ts';

const SECRET = Buffer.from('test-secret-of-the-dms-0123456789');

type Behaviour = 'ok' | 'hang' | 'lose' | { status: number; body: string };

/** A DMS import endpoint: checks HMAC and Idempotency-Key, imports each key once, answers as scripted. */
class DmsDouble {
  readonly imports = new Map<string, number>();
  readonly requests: Array<{ key: string | undefined; signatureValid: boolean; bytes: number }> = [];
  script: Behaviour[] = [];
  private server: Server | undefined;
  private readonly hanging: ServerResponse[] = [];
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    const addr = this.server.address();
    this.url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/import`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const key = req.headers[IDEMPOTENCY_HEADER] as string | undefined;
    const signatureValid = verifyDmsSignature(body, req.headers[SIGNATURE_HEADER] as string | undefined, SECRET);
    this.requests.push({ key, signatureValid, bytes: body.length });
    const b = this.script.shift() ?? 'ok';
    if (typeof b === 'object') return void res.writeHead(b.status, { 'content-type': 'text/plain' }).end(b.body);
    if (b === 'hang') return void this.hanging.push(res);
    if (!signatureValid || !key) return void res.writeHead(401).end('bad signature');
    const seen = this.imports.has(key);
    if (!seen) this.imports.set(key, (this.imports.get(key) ?? 0) + 1);
    // 'lose': imported, but the answer never arrives (connection dropped).
    if (b === 'lose') return void req.socket.destroy();
    res.writeHead(seen ? 200 : 201, { 'content-type': 'application/json' }).end(JSON.stringify({ imported: !seen }));
  }

  async stop(): Promise<void> {
    for (const r of this.hanging) r.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => this.server?.close(() => r()));
  }
}

const execFileP = promisify(execFile);
async function cli(...args: string[]): Promise<{ stdout: string; code: number }> {
  try {
    const r = await execFileP(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'gateway/cli/main.ts'), ...args], { cwd: REPO_ROOT });
    return { stdout: r.stdout, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout + err.stderr, code: err.code };
  }
}

describe('outbox: retries, dead letters, re-drive, idempotent delivery', function () {
  this.timeout(60_000);
  let tmp: string;
  let dataDir: string;
  let spool: string;
  let store: SqliteJobStore;
  let dms: DmsDouble;
  let clock: number;
  const retry: RetryPolicy = { maxAttempts: 4, baseDelayMs: 1000, maxDelayMs: 8000, leaseMs: 60_000 };
  let n = 0;

  /** A committed message in the spool (as the agent leaves it) with one job per adapter. */
  async function message(adapters: string[]): Promise<{ messageId: string; jobs: JobRecord[] }> {
    const messageId = Buffer.from(`outbox-test-${++n}-${Date.now()}`).toString('base64');
    const folder = `msg-${n}`;
    const dir = join(spool, folder);
    mkdirSync(dir, { recursive: true });
    const meta: MessageMeta = {
      messageId,
      mailbox: 'stadt-lemgo',
      subject: `Bußgeldsache ${n}`,
      from: ['CN=ag-lemgo'],
      fetchedAt: new Date(clock).toISOString(),
      verification: { allValid: true, containers: [], authors: [] },
      attachments: [{ name: 'bescheid.pdf', contentId: 'bescheid.pdf', size: 5, sha256: '' }],
    };
    writeFileSync(join(dir, 'bescheid.pdf'), '%PDF-');
    writeFileSync(join(dir, 'process-card.xml'), '<osci:ProcessCardBundle xmlns:osci="http://www.osci.de/2002/04/osci"/>');
    writeFileSync(join(dir, 'inspection-report.json'), '[]');
    writeFileSync(join(dir, 'message.json'), JSON.stringify(meta));
    const ok = await store.commitMessage(
      { messageId, mailbox: 'stadt-lemgo', folder, fetchedAt: new Date(clock), meta },
      adapters.map((a) => ({ kind: 'deliver' as const, adapter: a, mailbox: 'stadt-lemgo', messageId, idempotencyKey: `deliver:${a}:${messageId}`, maxAttempts: retry.maxAttempts })),
    );
    expect(ok).to.equal(true);
    return { messageId, jobs: await store.list({ messageId }) };
  }

  function worker(adapters: DeliveryAdapter[]): OutboxWorker {
    return new OutboxWorker({ store, adapters: new Map(adapters.map((a) => [a.name, a])), spoolDir: spool, retry, log: silentLogger, now: () => new Date(clock), random: () => 0.5 });
  }

  const dmsAdapter = () => new HttpDmsAdapter({ name: 'dms', url: dms.url, secret: SECRET, timeoutMs: 400 });

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-outbox-'));
    dataDir = join(tmp, 'data');
    spool = join(dataDir, 'spool');
    store = SqliteJobStore.open(dataDir);
    await store.migrate();
    dms = new DmsDouble();
    await dms.start();
    clock = Date.now();
  });
  after(async () => {
    await dms.stop();
    await store.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('backoff doubles per attempt, is capped, and jitters within [d/2, d]', () => {
    expect(backoffDelay(retry, 1, () => 0)).to.equal(500);
    expect(backoffDelay(retry, 1, () => 1)).to.equal(1000);
    expect(backoffDelay(retry, 3, () => 0.5)).to.equal(3000);
    expect(backoffDelay(retry, 30, () => 1)).to.equal(8000);
    const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(retry, 2)));
    expect(spread.size, 'jitter spreads the retries').to.be.greaterThan(1);
    for (const d of spread) expect(d).to.be.within(1000, 2000);
  });

  it('retries after 5xx and timeouts with growing delays, parks after N attempts with the reason, `outbox retry` re-drives it', async () => {
    const { messageId, jobs } = await message(['dms']);
    const job = jobs[0]!;
    const w = worker([dmsAdapter()]);
    dms.script = [{ status: 503, body: 'maintenance' }, 'hang', { status: 502, body: 'bad gateway' }, 'hang'];
    const expectedDelays = [backoffDelay(retry, 1, () => 0.5), backoffDelay(retry, 2, () => 0.5), backoffDelay(retry, 3, () => 0.5)];
    const reasons = [/HTTP 503: maintenance/, /no answer within 400 ms/, /HTTP 502: bad gateway/];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await w.runDue();
      expect(r.map((x) => x.outcome)).to.deep.equal(['retry']);
      const j = (await store.get(job.id))!;
      expect(j.state).to.equal('queued');
      expect(j.attempts).to.equal(attempt);
      expect(j.lastError).to.match(reasons[attempt - 1]!);
      expect(j.nextAt.getTime() - clock).to.equal(expectedDelays[attempt - 1]);
      // Not due before its backoff has passed.
      clock = j.nextAt.getTime() - 1;
      expect(await w.runDue()).to.have.length(0);
      clock = j.nextAt.getTime();
    }
    const last = await w.runDue();
    expect(last.map((x) => x.outcome)).to.deep.equal(['park']);
    const dead = (await store.get(job.id))!;
    expect(dead.state).to.equal('dead');
    expect(dead.attempts).to.equal(4);
    expect(dead.lastError).to.match(/no answer within 400 ms.*gave up after 4 attempts/);
    expect(dead.history.map((h) => h.outcome)).to.deep.equal(['retry', 'retry', 'retry', 'park']);
    clock += 24 * 3600_000;
    expect(await w.runDue(), 'a dead letter is not retried by itself').to.have.length(0);
    expect(dms.imports.size).to.equal(0);

    const listed = await cli('outbox', 'list', '--state', 'dead', '--data', dataDir, '--json');
    expect(listed.code).to.equal(0);
    expect((JSON.parse(listed.stdout) as Array<{ id: number; lastError: string }>).map((x) => x.id)).to.include(job.id);
    const shown = await cli('outbox', 'show', String(job.id), '--data', dataDir, '--json');
    expect((JSON.parse(shown.stdout) as { history: unknown[]; message: { folder: string } }).history).to.have.length(4);

    const redriven = await cli('outbox', 'retry', String(job.id), '--data', dataDir, '--json');
    expect(redriven.code, redriven.stdout).to.equal(0);
    expect(JSON.parse(redriven.stdout)).to.include({ state: 'queued', attempts: 0 });
    clock = Math.max(clock, Date.now() + 1000);
    const again = await w.runDue();
    expect(again.map((x) => x.outcome)).to.deep.equal(['ok']);
    const done = (await store.get(job.id))!;
    expect(done.state).to.equal('done');
    expect(done.result).to.match(/HTTP 201/);
    expect(done.history.map((h) => h.outcome)).to.deep.equal(['retry', 'retry', 'retry', 'park', 'redrive', 'ok']);
    expect(dms.imports.get(messageId)).to.equal(1);
    const mine = dms.requests.filter((r) => r.key === messageId);
    expect(mine).to.have.length(5);
    expect(mine.every((r) => r.signatureValid), 'every request carries a valid HMAC').to.equal(true);
  });

  it('parks a 4xx answer at once with the response', async () => {
    const { jobs } = await message(['dms']);
    dms.script = [{ status: 422, body: 'Aktenzeichen fehlt im Datensatz' }];
    const r = await worker([dmsAdapter()]).runDue();
    expect(r.map((x) => x.outcome)).to.deep.equal(['park']);
    const j = (await store.get(jobs[0]!.id))!;
    expect(j.state).to.equal('dead');
    expect(j.attempts).to.equal(1);
    expect(j.lastError).to.match(/HTTP 422: Aktenzeichen fehlt im Datensatz/);
    const bad = await cli('outbox', 'show', '99999', '--data', dataDir);
    expect(bad.code).to.equal(1);
    expect(bad.stdout).to.match(/ERR_NOT_FOUND/);
  });

  it('a re-delivery after a lost 2xx is deduplicated by the MessageId: exactly one import', async () => {
    const { messageId, jobs } = await message(['dms']);
    dms.script = ['lose', 'ok'];
    const w = worker([dmsAdapter()]);
    expect((await w.runDue()).map((x) => x.outcome)).to.deep.equal(['retry']);
    expect(dms.imports.get(messageId), 'the DMS imported although the agent saw no answer').to.equal(1);
    clock = (await store.get(jobs[0]!.id))!.nextAt.getTime();
    expect((await w.runDue()).map((x) => x.outcome)).to.deep.equal(['ok']);
    expect(dms.requests.filter((r) => r.key === messageId)).to.have.length(2);
    expect(dms.imports.get(messageId)).to.equal(1);
    expect((await store.get(jobs[0]!.id))!.result).to.match(/HTTP 200/);
  });

  it('a message is recorded once: the same MessageId again queues nothing', async () => {
    const { messageId, jobs } = await message([]);
    const rec = (await store.getMessage(messageId))!;
    const again = await store.commitMessage(rec, [{ kind: 'deliver', adapter: 'dms', mailbox: 'stadt-lemgo', messageId, idempotencyKey: `deliver:dms2:${messageId}`, maxAttempts: 3 }]);
    expect(again).to.equal(false);
    expect(await store.list({ messageId })).to.have.length(jobs.length);
  });

  it('a job whose worker died comes back after its lease (and counts as an attempt)', async () => {
    const { jobs } = await message(['dms']);
    const claimed = await store.claimDue(new Date(clock), retry.leaseMs, 10);
    expect(claimed.map((j) => j.id)).to.include(jobs[0]!.id);
    expect(await store.claimDue(new Date(clock + retry.leaseMs - 1), retry.leaseMs, 10)).to.have.length(0);
    dms.script = ['ok'];
    clock += retry.leaseMs;
    const r = await worker([dmsAdapter()]).runDue();
    expect(r.map((x) => [x.job.id, x.job.attempts, x.outcome])).to.deep.equal([[jobs[0]!.id, 2, 'ok']]);
  });

  it('hot folder export runs exactly once, even when the job runs again after the DMS consumed the folder', async () => {
    const exportDir = join(tmp, 'dms-inbox');
    mkdirSync(exportDir);
    const hot = new HotFolderExport({ name: 'archiv', dir: exportDir });
    const { jobs } = await message(['archiv']);
    const w = worker([hot]);
    expect((await w.runDue()).map((x) => x.outcome)).to.deep.equal(['ok']);
    const visible = readdirSync(exportDir).filter((x) => !x.startsWith('.'));
    expect(visible).to.have.length(1);
    const folder = join(exportDir, visible[0]!);
    expect(readdirSync(folder).sort()).to.deep.equal(['bescheid.pdf', 'inspection-report.json', 'message.json', 'process-card.xml']);
    expect(readFileSync(join(folder, 'bescheid.pdf'), 'utf8')).to.equal('%PDF-');
    // The DMS imports and removes the folder; the job runs again (as after a crash before it was marked done).
    rmSync(folder, { recursive: true });
    const spooled = { meta: (await store.getMessage(jobs[0]!.messageId!))!.meta, mailbox: 'stadt-lemgo', folderName: visible[0]!, dir: join(spool, `msg-${n}`) };
    expect(await hot.deliver(spooled)).to.match(/already exported/);
    expect(readdirSync(exportDir).filter((x) => !x.startsWith('.'))).to.have.length(0);
  });
});

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`job store contract (${backend})`, function () {
    this.timeout(60_000);
    let store: JobStore;
    let tmp: string;
    let pgUrl: string | undefined;
    const t0 = new Date('2026-03-02T10:00:00Z');
    const meta = (messageId: string): MessageMeta => ({ messageId, from: [], fetchedAt: t0.toISOString(), verification: { allValid: true, containers: [], authors: [] }, attachments: [] });
    const job = (adapter: string, messageId: string) => ({ kind: 'deliver' as const, adapter, mailbox: 'stadt-lemgo', messageId, idempotencyKey: `deliver:${adapter}:${messageId}`, maxAttempts: 3 });

    before(async function () {
      if (backend === 'postgres' && !(await pgAvailable(this))) return;
      tmp = mkdtempSync(join(tmpdir(), 'amtsbote-jobstore-'));
      pgUrl = backend === 'postgres' ? pgSchemaUrl() : undefined;
      store = await openJobStore(pgUrl ?? `sqlite:${tmp}`);
      await store.migrate();
      await store.migrate(); // idempotent
    });
    after(async () => {
      await store?.close();
      if (pgUrl) await dropPgSchema(pgUrl);
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    it('commits a message with its jobs once; the same MessageId again changes nothing', async () => {
      expect(await store.commitMessage({ messageId: 'bTE=', mailbox: 'stadt-lemgo', folder: 'm1', fetchedAt: t0, meta: meta('bTE=') }, [job('a', 'bTE='), job('b', 'bTE=')])).to.equal(true);
      expect(await store.commitMessage({ messageId: 'bTE=', mailbox: 'stadt-lemgo', folder: 'm1x', fetchedAt: t0, meta: meta('bTE=') }, [job('c', 'bTE=')])).to.equal(false);
      expect(await store.hasMessage('bTE=')).to.equal(true);
      expect((await store.getMessage('bTE='))?.meta.messageId).to.equal('bTE=');
      expect([...(await store.messageFolders())]).to.deep.equal(['m1']);
      expect((await store.list({ messageId: 'bTE=' })).map((j) => j.adapter)).to.deep.equal(['a', 'b']);
      expect(await store.enqueue(job('a', 'bTE='), t0), 'same idempotency key').to.equal(undefined);
    });

    it('claims due jobs with a lease, retries later, parks with the reason, re-drives with a fresh budget', async () => {
      const [a, b] = await store.claimDue(t0, 1000, 10);
      expect([a?.attempts, b?.attempts]).to.deep.equal([1, 1]);
      expect(await store.claimDue(new Date(t0.getTime() + 999), 1000, 10)).to.have.length(0);
      await store.retryLater(a!.id, 'HTTP 503', new Date(t0.getTime() + 5000), t0);
      await store.park(b!.id, 'HTTP 400: bad', t0);
      expect(await store.nextDue()).to.deep.equal(new Date(t0.getTime() + 5000));
      const dead = (await store.list({ state: 'dead' }))[0]!;
      expect([dead.id, dead.lastError, dead.history.map((h) => h.outcome)]).to.deep.equal([b!.id, 'HTTP 400: bad', ['park']]);
      const again = await store.redrive(b!.id, t0);
      expect([again.state, again.attempts, again.history.map((h) => h.outcome)]).to.deep.equal(['queued', 0, ['park', 'redrive']]);
      await store.complete(again.id, 'ok', t0);
      let err: unknown;
      await store.redrive(again.id, t0).catch((e: unknown) => (err = e));
      expect(err).to.have.property('code', 'ERR_USAGE');
      await store.setMessageId(a!.id, 'bmV3', t0);
      expect((await store.get(a!.id))?.messageId).to.equal('bmV3');
      expect(await store.get(99999)).to.equal(undefined);
    });
  });
}

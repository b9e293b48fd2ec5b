/**
 * PostgreSQL restarted under load: eight senders keep storing deliveries through the running intermediary while the
 * machine's PostgreSQL cluster is restarted (pg_ctlcluster ... restart). Clients get a receipt (0800) or a
 * retryable soap:Fault 9000; retrying with the same MessageId ends in 0800, or in 9801 when an earlier attempt had
 * committed after all. Nothing acknowledged is lost, nothing is stored twice, nothing unacknowledged appears, and the
 * same server process serves again once PostgreSQL is back (no restart of the intermediary). A message writer that
 * holds its connection across the restart gets a typed store failure (the lost connection of a checked-out pg
 * client used to be an uncaught 'error' that ended the process). PostgreSQL is left
 * running whatever happens: later tests of the same run need it.
 */
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import pg from 'pg';
import { OsciError } from '../../protocol/errors.ts';
import { IN_CI, hasTool } from '../helpers/env.ts';
import { PG_URL, pgAvailable } from '../helpers/pg.ts';
import { cast, clientOf, craft, expectStillServing, post, readAnswer, startAttackServer, storeDeliveryOrder, type AttackServer, type Cast } from '../helpers/attack.ts';

const run = promisify(execFile);
const SENDERS = 8;
/** Receipts before the restart is started; receipts required after PostgreSQL is back before the load stops. */
const BEFORE_RESTART = 20;
const AFTER_RESTART = 20;
const MAX_ATTEMPTS = 60;

function cluster(): string[] {
  const versions = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
  return ['--skip-systemctl-redirect', versions[0] ?? '', 'main'];
}

async function reachable(): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Starts the cluster if it is down and waits until it accepts connections (up to a minute). */
async function ensurePostgresUp(): Promise<void> {
  for (let i = 0; i < 120; i++) {
    if (await reachable()) return;
    if (i % 20 === 0) await run('pg_ctlcluster', [...cluster(), 'start']).catch(() => undefined);
    await sleep(500);
  }
  throw new Error('PostgreSQL did not come back');
}

describe('fault: PostgreSQL restarted under load', function () {
  this.timeout(180_000);
  let srv: AttackServer;
  let c: Cast;

  before(async function () {
    if (!(await pgAvailable(this))) return;
    const usable = hasTool('pg_ctlcluster') && process.getuid?.() === 0 && cluster()[1] !== '';
    if (!usable) {
      if (IN_CI) throw new Error('restarting PostgreSQL needs pg_ctlcluster and root in CI');
      console.warn('      skipped: cannot restart the PostgreSQL cluster here (pg_ctlcluster as root)');
      this.skip();
    }
    [srv, c] = await Promise.all([startAttackServer({ backend: 'postgres' }), cast()]);
  });
  after(async () => {
    await ensurePostgresUp();
    await srv?.stop();
  });

  it('clients get 0800 or a retryable 9000; nothing acknowledged is lost or stored twice; the server recovers by itself', async () => {
    // A message writer holding its transaction (and connection) idle across the restart, as a slow upload would.
    const held = await srv.server.store.beginMessage(`held-${Date.now()}`);
    const acknowledged = new Map<string, '0800' | '9801'>();
    const seen = new Map<string, number>();
    const unexpected: string[] = [];
    let receipts = 0;
    let stop = false;
    let restartDone = false;
    let receiptsAfterRestart = 0;
    let restart: Promise<unknown> | undefined;

    const sender = async (s: number) => {
      for (let n = 0; !stop; n++) {
        const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp, subject: `pg ${s}/${n}`, attachments: [{ contentId: 'anlage.pdf', data: Buffer.alloc(2000 + n, s) }] });
        await o.sealed.dispose();
        const wire = await craft(o.message, { signer: c.ag.signature, attachments: o.attachments, encryptFor: srv.server.identity.ciphers[0]?.cert });
        const id = o.message.messageId;
        let failedBefore = false;
        for (let attempt = 1; ; attempt++) {
          let code: string;
          try {
            const m = await readAnswer(srv, await post(srv.osci, wire), c.ag);
            code = m.type === 'fault' ? `fault ${m.oscicode}` : ((m as { feedback?: Array<{ code: string }> }).feedback?.[0]?.code ?? m.type);
          } catch (e) {
            code = `transport ${String(e)}`;
          }
          seen.set(code, (seen.get(code) ?? 0) + 1);
          if (code === '0800' || (code === '9801' && failedBefore)) {
            acknowledged.set(id, code);
            receipts++;
            if (restartDone) receiptsAfterRestart++;
            break;
          }
          if (code !== 'fault 9000') unexpected.push(`${id} attempt ${attempt}: ${code}`);
          if (attempt >= MAX_ATTEMPTS) {
            unexpected.push(`${id}: no receipt after ${MAX_ATTEMPTS} attempts`);
            break;
          }
          failedBefore = true;
          await sleep(200);
        }
        if (!restart && receipts >= BEFORE_RESTART) {
          restart = run('pg_ctlcluster', [...cluster(), 'restart']).finally(() => {
            restartDone = true;
          });
        }
        if (restartDone && receiptsAfterRestart >= AFTER_RESTART) stop = true;
        if (unexpected.length > 0) stop = true;
      }
    };
    try {
      await Promise.all(Array.from({ length: SENDERS }, (_, s) => sender(s)));
      await restart;
    } finally {
      await ensurePostgresUp();
    }
    if (process.env.AMTSBOTE_TEST_VERBOSE) console.log('      answers:', Object.fromEntries(seen), 'acknowledged:', acknowledged.size);
    // Its connection died between two queries: a typed store failure for it, not an uncaught error ending the process.
    let heldError: unknown;
    try {
      await held.addPart({ contentId: 'late.pdf', contentType: 'application/pdf' }, Readable.from([Buffer.from('late')]));
    } catch (e) {
      heldError = e;
    }
    await held.abort();
    expect((heldError as OsciError | undefined)?.code).to.equal('ERR_INTERNAL');
    expect(unexpected, 'answers other than 0800 and the retryable 9000').to.deep.equal([]);
    expect(restart, 'the restart happened under load').to.not.equal(undefined);
    expect(seen.get('fault 9000') ?? 0, 'the restart was noticed (retryable faults)').to.be.greaterThan(0);

    // Stored exactly what was acknowledged, each once.
    const waiting = await srv.server.store.listWaiting('stadt-lemgo');
    const ids = waiting.map((m) => m.messageId);
    expect(new Set(ids).size, 'no MessageId twice').to.equal(ids.length);
    expect([...ids].sort()).to.deep.equal([...acknowledged.keys()].sort());
    for (const m of waiting) expect(m.parts.map((p) => p.contentId)).to.deep.equal(['anlage.pdf']);

    // The same process serves again, the store included.
    await expectStillServing(srv, c.kanzlei);
    const d = await clientOf(srv, c.stadt).openDialog();
    const got = await d.fetchDelivery();
    expect(got?.response.processCardBundle?.messageId).to.be.oneOf(ids);
    await got?.decoded.dispose();
    await d.close();
  });
});

/**
 * The server-crash fault under load (complements server-crash.test.ts, which kills during eight senders' large
 * deliveries): 500 small storeDeliveries are posted at once to `amtsbote serve`, which is SIGKILLed after 50
 * receipts with hundreds still in flight. Restarted on the same data, the addressee fetches everything that waits:
 * every receipted MessageId exactly once with its attachment byte-identical, nothing that was not sent, nothing a
 * second time; and no orphaned payload is left (SQLite: every payload folder belongs to a stored message;
 * PostgreSQL: no part or chunk row without its message).
 */
import { expect } from 'chai';
import Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { decodeMessage } from '../../protocol/envelope/index.ts';
import type { OsciMessage } from '../../protocol/model.ts';
import { craft, newMessageId, post, storeDeliveryOrder, type Wire } from '../helpers/attack.ts';
import { testIdentity, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { dropPgSchema, pgAvailable, pgSchemaUrl, PG_URL, waitForSessionsGone } from '../helpers/pg.ts';
import { devServerConfig, osciClient, startServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.ts';

const N = 500;
const KILL_AFTER_RECEIPTS = 50;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** MessageId → the crafted order and the SHA-256 of its (encrypted) attachment as sent; built once for both backends. */
type Orders = Map<string, { wire: Wire; attachmentSha: string }>;
let built: Promise<Orders> | undefined;
function ordersOnce(tmp: string): Promise<Orders> {
  built ??= (async () => {
    const [ag, stadt, intermediary] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('intermediary')]);
    const out: Orders = new Map();
    for (let i = 0; i < N; i++) {
      const messageId = newMessageId();
      const o = await storeDeliveryOrder(ag, stadt, { messageId, tmpDir: tmp, subject: `last ${i}`, attachments: [{ contentId: `anlage-${i}.pdf`, data: randomBytes(512 + i) }] });
      await o.sealed.dispose();
      const wire = await craft(o.message, { signer: ag.signature, attachments: o.attachments, encryptFor: intermediary.cipher.cert });
      out.set(messageId, { wire, attachmentSha: sha(o.attachments[0]?.data as Buffer) });
    }
    return out;
  })();
  return built;
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`fault: intermediary SIGKILLed during ${N} concurrent storeDeliveries (${backend})`, function () {
    this.timeout(300_000);
    let tmp: string;
    let dataDir: string;
    let pgUrl: string | undefined;
    let appName: string | undefined;
    let configFile: string;
    let ag: TestIdentity;
    let stadt: TestIdentity;
    let intermediary: TestIdentity;
    let server: ServerProcess | undefined;
    let orders: Orders;

    before(async function () {
      if (backend === 'postgres' && !(await pgAvailable(this))) return;
      const pki = await testPki();
      [ag, stadt, intermediary] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('intermediary')]);
      tmp = mkdtempSync(join(tmpdir(), `amtsbote-crash500-${backend}-`));
      dataDir = join(tmp, 'data');
      if (backend === 'postgres') {
        pgUrl = pgSchemaUrl();
        appName = `amtsbote_crash500_${randomBytes(4).toString('hex')}`;
      }
      const db = pgUrl && appName ? `${pgUrl}&application_name=${appName}` : undefined;
      configFile = writeServerConfig(tmp, devServerConfig(pki.dir, dataDir, db));
      // Every order is ready before the first is sent, so that all of them are in flight together.
      orders = await ordersOnce(tmpdir());
    });

    after(async () => {
      await server?.kill();
      if (pgUrl) await dropPgSchema(pgUrl);
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    async function answerOf(body: Buffer, contentType: string | undefined): Promise<OsciMessage> {
      const pinned = intermediary.signature.cert;
      const d = await decodeMessage(body, {
        ...(contentType !== undefined ? { contentType } : {}),
        transportKeys: [{ key: ag.cipher.key, cert: ag.cipher.cert }],
        tmpDir: tmp,
        signature: 'optional',
        trustSigner: async (c) => {
          if (!c || c.fingerprint256 !== pinned.fingerprint256) throw new Error('not the intermediary');
          return pinned;
        },
      });
      await d.dispose();
      return d.message;
    }

    const killedSessionsGone = () => waitForSessionsGone(appName);

    /** Payload storage that no stored message owns. */
    async function orphans(): Promise<string[]> {
      if (backend === 'sqlite') {
        const db = new Database(join(dataDir, 'amtsbote.sqlite'), { readonly: true });
        try {
          const owned = new Set((db.prepare('SELECT payload_dir FROM messages').all() as Array<{ payload_dir: string }>).map((r) => r.payload_dir));
          const root = join(dataDir, 'payloads');
          const dirs = existsSync(root) ? readdirSync(root).filter((d) => d !== 'tmp') : [];
          const tmpFiles = existsSync(join(root, 'tmp')) ? readdirSync(join(root, 'tmp')).map((f) => `tmp/${f}`) : [];
          return [...dirs.filter((d) => !owned.has(d)), ...tmpFiles];
        } finally {
          db.close();
        }
      }
      const schema = new URL(pgUrl as string).searchParams.get('schema') as string;
      const c = new pg.Client({ connectionString: PG_URL });
      await c.connect();
      try {
        const r = await c.query<{ what: string }>(
          `SELECT 'part ' || p.message_id AS what FROM "${schema}".message_parts p LEFT JOIN "${schema}".messages m USING (message_id) WHERE m.message_id IS NULL
           UNION ALL SELECT 'chunk ' || k.message_id FROM "${schema}".message_part_chunks k LEFT JOIN "${schema}".messages m USING (message_id) WHERE m.message_id IS NULL`,
        );
        return r.rows.map((x) => x.what);
      } finally {
        await c.end();
      }
    }

    it(`every receipted message is fetchable exactly once after the restart; no orphaned payload`, async () => {
      const srv = await startServerProcess(configFile, { args: ['--workers', '1'] });
      server = srv;
      const receipted = new Set<string>();
      const errorsBeforeKill: string[] = [];
      let interrupted = 0;
      let kill: Promise<void> | undefined;
      await Promise.all(
        [...orders].map(async ([messageId, { wire }]) => {
          try {
            const ans = await post(srv.osciUrl, wire);
            const m = await answerOf(ans.body, ans.contentType);
            const code = m.type === 'fault' ? m.oscicode : (m as { feedback?: Array<{ code: string }> }).feedback?.[0]?.code;
            if (code !== '0800') throw new Error(`${messageId}: ${m.type} ${code}`);
            receipted.add(messageId);
            if (!kill && receipted.size >= KILL_AFTER_RECEIPTS) kill = srv.kill();
          } catch (e) {
            if (kill) interrupted++;
            else errorsBeforeKill.push(String(e));
          }
        }),
      );
      expect(errorsBeforeKill, 'failures before the kill').to.deep.equal([]);
      expect(kill, 'the server was killed').to.not.equal(undefined);
      await kill;
      expect((await srv.exited).signal).to.equal('SIGKILL');
      expect(interrupted, 'storeDeliveries cut off by the kill').to.be.greaterThan(0);
      await killedSessionsGone();

      const again = await startServerProcess(configFile, { args: ['--workers', '1'] });
      server = again;
      const client = osciClient(again.osciUrl, stadt, intermediary, tmp);
      const fetched = new Set<string>();
      const dialog = await client.openDialog();
      for (let i = 0; i <= N; i++) {
        const got = await dialog.fetchDelivery();
        if (!got) break;
        try {
          const id = got.response.processCardBundle?.messageId as string;
          expect(fetched.has(id), `${id} fetched twice`).to.equal(false);
          fetched.add(id);
          const sent = orders.get(id);
          expect(sent, `${id} was sent by this test`).to.not.equal(undefined);
          expect(got.decoded.attachments.map((a) => a.sha256.toString('hex')), `${id}: attachment`).to.deep.equal([sent?.attachmentSha]);
        } finally {
          await got.decoded.dispose();
        }
      }
      await dialog.close();
      if (process.env.AMTSBOTE_TEST_VERBOSE) console.log(`      receipted ${receipted.size}, interrupted ${interrupted}, fetched ${fetched.size}`);
      for (const id of receipted) expect(fetched.has(id), `receipted ${id} lost`).to.equal(true);

      const second = await client.openDialog();
      expect(await second.fetchDelivery(), 'a second pass finds nothing').to.equal(undefined);
      await second.close();
      await again.stop();
      expect((await again.exited).code, again.output()).to.equal(0);
      server = undefined;
      expect(await orphans()).to.deep.equal([]);
    });
  });
}

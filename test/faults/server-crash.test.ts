/**
 * Crash safety of the whole intermediary: `amtsbote serve` runs as a child process while eight senders store
 * 1–3 MB deliveries concurrently; after some receipts the server is SIGKILLed with orders in flight. Restarted on the
 * same data (SQLite folder, or the same PostgreSQL schema), the addressee fetches everything that waits: every
 * receipted MessageId is there (a receipt is only sent after commit), every fetched message is complete (opens,
 * author signature valid, attachment byte-identical), no MessageId comes twice, and nothing is left afterwards.
 */
import { expect } from 'chai';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { openContent, sealContent } from '../../protocol/envelope/index.ts';
import { testIdentity, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { dropPgSchema, pgAvailable, pgSchemaUrl, waitForSessionsGone } from '../helpers/pg.ts';
import { devServerConfig, osciClient, startServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.ts';

const SENDERS = 8;
const MAX_PER_SENDER = 8;
/** Receipts before the kill is armed; it then waits until at least this many storeDeliveries are in flight and one is half uploaded. */
const KILL_AFTER_RECEIPTS = 5;
const KILL_WITH_IN_FLIGHT = 3;

/** How the server runs and how it dies. */
const MODES = [
  { name: 'single process', args: ['--workers', '1'], target: 'group', cutsRequests: true },
  { name: '2 workers, whole process group killed', args: ['--workers', '2'], target: 'group', cutsRequests: true },
  // The workers notice their primary's death and exit; the restart must wait for them before recovering.
  { name: '2 workers, only the primary killed', args: ['--workers', '2'], target: 'primary', cutsRequests: false },
] as const;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Sent {
  text: string;
  attachmentSha: string;
  size: number;
}

for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`fault: intermediary SIGKILLed during concurrent storeDeliveries (${backend})`, function () {
    this.timeout(600_000);
    let tmp: string;
    let pgUrl: string | undefined;
    let appName: string | undefined;
    let configFile: string;
    let ag: TestIdentity;
    let stadt: TestIdentity;
    let intermediary: TestIdentity;
    let server: ServerProcess | undefined;

    before(async function () {
      if (backend === 'postgres' && !(await pgAvailable(this))) return;
      const pki = await testPki();
      [ag, stadt, intermediary] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('intermediary')]);
      tmp = mkdtempSync(join(tmpdir(), `amtsbote-server-crash-${backend}-`));
      if (backend === 'postgres') {
        pgUrl = pgSchemaUrl();
        appName = `amtsbote_srvcrash_${randomBytes(4).toString('hex')}`;
      }
      // application_name tags the server's PostgreSQL sessions, so the test can wait for the killed ones to end.
      const db = pgUrl && appName ? `${pgUrl}&application_name=${appName}` : undefined;
      configFile = writeServerConfig(tmp, devServerConfig(pki.dir, join(tmp, 'data'), db));
    });

    after(async () => {
      await server?.kill();
      if (pgUrl) await dropPgSchema(pgUrl);
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    const killedSessionsGone = () => waitForSessionsGone(appName);

    for (const mode of MODES) it(`${mode.name}: every receipted message is fetchable exactly once after restart; nothing partial is visible`, async () => {
      const srv = await startServerProcess(configFile, { args: [...mode.args] });
      server = srv;
      const sent = new Map<string, Sent>();
      const receipted = new Set<string>();
      const errorsBeforeKill: unknown[] = [];
      let interrupted = 0;
      let inFlight = 0;
      let killed = false;
      let kill: Promise<void> | undefined;
      const maybeKill = () => {
        if (killed || receipted.size < KILL_AFTER_RECEIPTS || inFlight < KILL_WITH_IN_FLIGHT) return;
        killed = true;
        kill = srv.kill(mode.target);
      };

      const sender = async (s: number) => {
        // The kill lands halfway through an upload of an attachment (only storeDeliveries carry one): that order
        // is cut whatever the timing, since the server cannot have answered a request it has not fully received.
        const client = osciClient(srv.osciUrl, ag, intermediary, tmp, {
          onUploadProgress: (sent, total) => {
            if (total !== undefined && total > 1024 * 1024 && sent > total / 2 && sent < total) maybeKill();
          },
        });
        for (let n = 0; n < MAX_PER_SENDER && !killed; n++) {
          const attachment = randomBytes(randomInt(1024 * 1024, 3 * 1024 * 1024));
          const text = `<nachricht sender="${s}" n="${n}"/>`;
          let messageId: string;
          try {
            messageId = await client.getMessageId();
          } catch (e) {
            if (killed) return;
            throw e;
          }
          sent.set(messageId, { text, attachmentSha: sha(attachment), size: attachment.length });
          const sealed = await sealContent({
            author: ag.signature,
            readers: [stadt.cipher.cert],
            contents: [{ base64Content: Buffer.from(text) }, { attachment: { contentId: `anlage-${s}-${n}.pdf`, size: attachment.length, open: () => Readable.from([attachment]) } }],
            tmpDir: tmp,
          });
          inFlight++;
          try {
            const receipt = await client.storeDelivery({
              messageId,
              addresseeCipher: stadt.cipher.cert,
              subject: `crash ${s}/${n}`,
              contentPackage: sealed.contentPackage,
              certificates: sealed.certificates,
              attachments: sealed.attachments,
            });
            expect(receipt.feedback[0]?.code).to.equal('0800');
            expect(receipt.processCardBundle?.messageId).to.equal(messageId);
            receipted.add(messageId);
          } catch (e) {
            if (killed) interrupted++;
            else errorsBeforeKill.push(e);
          } finally {
            inFlight--;
            await sealed.dispose();
          }
          if (errorsBeforeKill.length) return;
        }
      };
      await Promise.all(Array.from({ length: SENDERS }, (_, s) => sender(s)));
      expect(errorsBeforeKill.map(String), 'failures before the kill').to.deep.equal([]);
      expect(killed, `the server was killed (receipts: ${receipted.size})`).to.equal(true);
      await kill;
      expect((await srv.exited).signal).to.equal('SIGKILL');
      if (mode.cutsRequests) expect(interrupted, 'storeDeliveries cut off by the kill').to.be.greaterThan(0);
      await killedSessionsGone();

      // Restart on the same data; the addressee fetches everything that waits.
      const again = await startServerProcess(configFile, { args: [...mode.args] });
      server = again;
      const client = osciClient(again.osciUrl, stadt, intermediary, tmp);
      const fetched: string[] = [];
      const dialog = await client.openDialog();
      for (let i = 0; i <= sent.size; i++) {
        const got = await dialog.fetchDelivery();
        if (!got) break;
        const { response, decoded } = got;
        try {
          const id = response.processCardBundle?.messageId as string;
          expect(fetched, `${id} fetched twice`).to.not.include(id);
          fetched.push(id);
          const want = sent.get(id);
          expect(want, `${id} was sent by this test`).to.not.equal(undefined);
          const opened = await openContent(response.contentPackage ?? { encryptedData: [], contentContainers: [] }, {
            readerKey: stadt.cipher.key,
            attachments: new Map(decoded.attachments.map((a) => [a.contentId, () => a.open()])),
            certificates: response.certificates,
            trustAuthor: async (carried) => {
              if (!carried || carried.fingerprint256 !== ag.signature.cert.fingerprint256) throw new Error('unexpected author');
              return ag.signature.cert;
            },
            tmpDir: tmp,
          });
          try {
            expect(opened.containers).to.have.length(1);
            const c = opened.containers[0]!;
            expect(c.signatureValid, `${id}: author signature`).to.equal(true);
            const [b, a] = c.contents;
            expect(b?.kind === 'base64' ? b.data.toString() : undefined).to.equal(want?.text);
            if (a?.kind !== 'attachment') throw new Error(`${id}: no attachment`);
            const h = createHash('sha256');
            let size = 0;
            for await (const ch of a.open()) {
              h.update(ch as Buffer);
              size += (ch as Buffer).length;
            }
            expect(size, `${id}: attachment size`).to.equal(want?.size);
            expect(h.digest('hex'), `${id}: attachment bytes`).to.equal(want?.attachmentSha);
          } finally {
            await opened.dispose();
          }
        } finally {
          await decoded.dispose();
        }
      }
      await dialog.close();

      if (process.env.AMTSBOTE_TEST_VERBOSE) console.log(`      sent ${sent.size}, receipted ${receipted.size}, interrupted ${interrupted}, fetched ${fetched.length}`);
      for (const id of receipted) expect(fetched, `receipted ${id} lost`).to.include(id);
      expect(fetched.length).to.be.at.least(receipted.size);

      // A second pass finds nothing: every reception was recorded exactly once.
      const second = await client.openDialog();
      expect(await second.fetchDelivery()).to.equal(undefined);
      await second.close();
      await again.stop();
      expect((await again.exited).code, again.output()).to.equal(0);
      server = undefined;
    });
  });
}

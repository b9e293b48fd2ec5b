/**
 * The intermediary end to end over real HTTP on 127.0.0.1, against SQLite and the real PostgreSQL:
 * a court stores a message with two attachments for a municipality, the municipality fetches, decrypts
 * and verifies it, the process card shows creation and reception, and nobody else can fetch it.
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { OsciDialog } from '../../adapters/osci/client.ts';
import { openContent, sealContent } from '../../protocol/envelope/index.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { clientFor, devConfig, testIdentity, testLogger, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { pgAvailable, pgSchemaUrl, dropPgSchema } from '../helpers/pg.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');


for (const backend of ['sqlite', 'postgres'] as const) {
  describe(`intermediary end to end (${backend})`, function () {
    this.timeout(120_000);
    let server: RunningServer;
    let tmp: string;
    let pgUrl: string | undefined;
    let ag: TestIdentity;
    let stadt: TestIdentity;
    let kanzlei: TestIdentity;

    before(async function () {
      if (backend === 'postgres' && !(await pgAvailable(this))) return;
      const pki = await testPki();
      tmp = mkdtempSync(join(tmpdir(), `amtsbote-e2e-${backend}-`));
      pgUrl = backend === 'postgres' ? pgSchemaUrl() : undefined;
      server = await startServer(devConfig(pki.dir, join(tmp, 'data'), { db: pgUrl }), { log: testLogger() });
      [ag, stadt, kanzlei] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('kanzlei-mustermann')]);
    });
    after(async () => {
      await server?.stop();
      if (pgUrl) await dropPgSchema(pgUrl);
    });

    const xjustiz = Buffer.from('<nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns="http://www.xjustiz.de"/>');
    const pdf1 = randomBytes(150_000);
    const pdf2 = randomBytes(3_000);
    let messageId: string;

    it('ag-lemgo stores a message with two attachments for stadt-lemgo and gets a receipt with the creation time', async () => {
      const sealed = await sealContent({
        author: ag.signature,
        readers: [stadt.cipher.cert],
        contents: [
          { base64Content: xjustiz },
          { attachment: { contentId: 'schriftsatz.pdf', size: pdf1.length, open: () => Readable.from([pdf1]) } },
          { attachment: { contentId: 'anlage_1.pdf', size: pdf2.length, open: () => Readable.from([pdf2]) } },
        ],
      });
      const before = Date.now();
      const receipt = await clientFor(server, ag, tmp).storeDelivery({
        addresseeCipher: stadt.cipher.cert,
        subject: 'Klage 12 C 1000/26',
        contentPackage: sealed.contentPackage,
        certificates: sealed.certificates,
        attachments: sealed.attachments,
      });
      messageId = receipt.messageId;
      expect(receipt.feedback[0]?.code).to.equal('0800');
      const card = receipt.processCardBundle;
      expect(card?.messageId).to.equal(messageId);
      expect(card?.processCard.creation?.kind).to.equal('plain');
      const created = Date.parse((card?.processCard.creation as { time: string }).time);
      expect(created).to.be.within(before - 1000, Date.now() + 1000);
      expect(card?.inspectionReport.length).to.be.greaterThan(0);
      expect(card?.inspectionReport.every((i) => i.mathResult === 'ok')).to.equal(true);
    });

    it('kanzlei-mustermann cannot fetch stadt-lemgo’s mail, neither by MessageId nor as next message', async () => {
      const d = await clientFor(server, kanzlei, tmp).openDialog();
      expect(await d.fetchDelivery({ by: 'messageId', messageId })).to.equal(undefined);
      expect(await d.fetchDelivery()).to.equal(undefined);
      expect(await d.fetchProcessCards({ by: 'messageId', messageIds: [messageId] })).to.deep.equal([]);
      await d.close();
    });

    it('stadt-lemgo fetches, decrypts and verifies it; closing the dialog records the reception', async () => {
      const d: OsciDialog = await clientFor(server, stadt, tmp).openDialog();
      const got = await d.fetchDelivery();
      expect(got, 'a delivery is waiting').to.not.equal(undefined);
      if (!got) return;
      try {
        const { response, decoded } = got;
        expect(response.processCardBundle?.messageId).to.equal(messageId);
        expect(response.processCardBundle?.processCard.forwarding).to.not.equal(undefined);
        const parts = new Map(decoded.attachments.map((a) => [a.contentId, () => a.open()]));
        const opened = await openContent(response.contentPackage ?? { encryptedData: [], contentContainers: [] }, {
          readerKey: stadt.cipher.key,
          attachments: parts,
          certificates: response.certificates,
          trustAuthor: async (carried) => {
            if (!carried || carried.fingerprint256 !== ag.signature.cert.fingerprint256) throw new Error('unexpected author');
            return ag.signature.cert;
          },
          tmpDir: tmp,
        });
        expect(opened.containers).to.have.length(1);
        const c = opened.containers[0]!;
        expect(c.signatureValid, JSON.stringify({ sigs: c.signatures.map((x) => x.error), err: c.error })).to.equal(true);
        expect(c.signer?.fingerprint256).to.equal(ag.signature.cert.fingerprint256);
        const base64 = c.contents.filter((x) => x.kind === 'base64');
        expect(base64.map((x) => (x as { data: Buffer }).data.toString())).to.deep.equal([xjustiz.toString()]);
        const att = c.contents.filter((x) => x.kind === 'attachment') as Array<{ contentId: string; open(): Readable }>;
        const byId = new Map<string, string>();
        for (const a of att) {
          const chunks: Buffer[] = [];
          for await (const ch of a.open()) chunks.push(ch as Buffer);
          byId.set(a.contentId, sha(Buffer.concat(chunks)));
        }
        expect(byId.get('schriftsatz.pdf')).to.equal(sha(pdf1));
        expect(byId.get('anlage_1.pdf')).to.equal(sha(pdf2));
        await decoded.dispose();
      } finally {
        await d.close();
      }
      // Nothing waits any more.
      const again = await clientFor(server, stadt, tmp).openDialog();
      expect(await again.fetchDelivery()).to.equal(undefined);
      await again.close();
    });

    it('ag-lemgo sees creation, forwarding and reception on fetchProcessCard', async () => {
      const d = await clientFor(server, ag, tmp).openDialog();
      const cards = await d.fetchProcessCards({ by: 'messageId', messageIds: [messageId] });
      await d.close();
      expect(cards).to.have.length(1);
      const pc = cards[0]!.processCard;
      expect(pc.creation?.kind).to.equal('plain');
      expect(pc.forwarding?.kind).to.equal('plain');
      expect(pc.reception?.kind).to.equal('plain');
      expect(Date.parse((pc.reception as { time: string }).time)).to.be.at.least(Date.parse((pc.creation as { time: string }).time));
    });

    it('a replayed storeDelivery with the same MessageId is refused and nothing new is stored', async () => {
      const sealed = await sealContent({ author: ag.signature, readers: [stadt.cipher.cert], contents: [{ base64Content: Buffer.from('x') }] });
      let err: unknown;
      try {
        await clientFor(server, ag, tmp).storeDelivery({ messageId, addresseeCipher: stadt.cipher.cert, contentPackage: sealed.contentPackage, certificates: sealed.certificates });
      } catch (e) {
        err = e;
      }
      expect(String(err)).to.match(/9801|ERR_MESSAGE_ID/);
    });

    if (backend === 'sqlite') {
      it('a stored part changed on disk after the receipt: the SupplierSignature still names the received digest, the fetch fails', async () => {
        const part = randomBytes(70_000);
        const sealed = await sealContent({ author: ag.signature, readers: [stadt.cipher.cert], contents: [{ attachment: { contentId: 'anlage.pdf', size: part.length, open: () => Readable.from([part]) } }] });
        const id = Buffer.from(`rot-${randomBytes(6).toString('hex')}`).toString('base64');
        await clientFor(server, ag, tmp).storeDelivery({ messageId: id, addresseeCipher: stadt.cipher.cert, contentPackage: sealed.contentPackage, certificates: sealed.certificates, attachments: sealed.attachments });
        const wire = sealed.attachments[0];
        const payloads = join(tmp, 'data', 'payloads');
        const mine = readdirSync(payloads, { recursive: true, encoding: 'utf8' })
          .map((f) => join(payloads, f))
          .filter((f) => statSync(f).isFile() && statSync(f).size === wire?.size && sha(readFileSync(f)) === wire.sha256?.toString('hex'));
        expect(mine, 'the stored part').to.have.length(1);
        const file = mine[0] as string;
        const bytes = readFileSync(file);
        bytes[100] = (bytes[100] as number) ^ 1;
        chmodSync(file, 0o600);
        writeFileSync(file, bytes);
        const d = await clientFor(server, stadt, tmp).openDialog();
        try {
          let err: unknown;
          await d.fetchDelivery({ by: 'messageId', messageId: id }).catch((e: unknown) => (err = e));
          expect((err as { code?: string } | undefined)?.code).to.equal('ERR_SIG_DIGEST');
        } finally {
          await d.close().catch(() => undefined);
        }
        await sealed.dispose();
      });
    }
  });
}

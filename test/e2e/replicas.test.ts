/**
 * Two `amtsbote serve` processes with the same configuration on one PostgreSQL schema behave as one intermediary
 * (osci-protocol.md §2: the dialog state lives in the store): one explicit dialog alternates between them, the
 * reception of a delivery fetched on one is acknowledged by the next request on the other, a stale ControlBlock is
 * refused by either, and what one stores the other hands out.
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { OsciClient } from '../../adapters/osci/client.ts';
import { openContent, sealContent } from '../../protocol/envelope/index.ts';
import type { DecodedMessage } from '../../protocol/envelope/index.ts';
import type { OsciMessageOf } from '../../protocol/model.ts';
import { testIdentity, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { dropPgSchema, pgAvailable, pgSchemaUrl } from '../helpers/pg.ts';
import { devServerConfig, osciClient, startServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface Letter {
  text: string;
  attachment: Buffer;
}

describe('replicas: two server processes on the same PostgreSQL schema', function () {
  this.timeout(300_000);
  let tmp: string;
  let pgUrl: string | undefined;
  let a: ServerProcess | undefined;
  let b: ServerProcess | undefined;
  let ag: TestIdentity;
  let stadt: TestIdentity;
  let intermediary: TestIdentity;
  const client = (server: ServerProcess | undefined, who: TestIdentity): OsciClient => osciClient((server as ServerProcess).osciUrl, who, intermediary, tmp);

  before(async function () {
    if (!(await pgAvailable(this))) return;
    const pki = await testPki();
    [ag, stadt, intermediary] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('intermediary')]);
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-replicas-'));
    pgUrl = pgSchemaUrl();
    // One configuration file for both (port 0: each process picks a free port).
    const config = writeServerConfig(tmp, devServerConfig(pki.dir, join(tmp, 'data'), pgUrl));
    // --workers 1: exactly two processes, so each request's server is known.
    [a, b] = await Promise.all([startServerProcess(config, { args: ['--workers', '1'] }), startServerProcess(config, { args: ['--workers', '1'] })]);
    expect(a.url).to.not.equal(b.url);
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (pgUrl) await dropPgSchema(pgUrl);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  async function store(via: OsciClient, letter: Letter, messageId?: string): Promise<string> {
    const sealed = await sealContent({
      author: ag.signature,
      readers: [stadt.cipher.cert],
      contents: [{ base64Content: Buffer.from(letter.text) }, { attachment: { contentId: 'anlage.pdf', size: letter.attachment.length, open: () => Readable.from([letter.attachment]) } }],
      tmpDir: tmp,
    });
    try {
      const r = await via.storeDelivery({ messageId, addresseeCipher: stadt.cipher.cert, subject: 'Replikat', contentPackage: sealed.contentPackage, certificates: sealed.certificates, attachments: sealed.attachments });
      expect(r.feedback[0]?.code).to.equal('0800');
      return r.messageId;
    } finally {
      await sealed.dispose();
    }
  }

  /** Opens a fetched delivery with stadt-lemgo's key and checks author signature and bytes. */
  async function expectLetter(got: { response: OsciMessageOf<'responseToFetchDelivery'>; decoded: DecodedMessage } | undefined, messageId: string, letter: Letter): Promise<void> {
    expect(got, `${messageId} is handed out`).to.not.equal(undefined);
    if (!got) return;
    const { response, decoded } = got;
    try {
      expect(response.processCardBundle?.messageId).to.equal(messageId);
      const opened = await openContent(response.contentPackage ?? { encryptedData: [], contentContainers: [] }, {
        readerKey: stadt.cipher.key,
        attachments: new Map(decoded.attachments.map((x) => [x.contentId, () => x.open()])),
        certificates: response.certificates,
        trustAuthor: async (carried) => {
          if (!carried || carried.fingerprint256 !== ag.signature.cert.fingerprint256) throw new Error('unexpected author');
          return ag.signature.cert;
        },
        tmpDir: tmp,
      });
      try {
        const c = opened.containers[0];
        expect(c?.signatureValid).to.equal(true);
        const [text, att] = c?.contents ?? [];
        expect(text?.kind === 'base64' ? text.data.toString() : undefined).to.equal(letter.text);
        if (att?.kind !== 'attachment') throw new Error('no attachment');
        const chunks: Buffer[] = [];
        for await (const ch of att.open()) chunks.push(ch as Buffer);
        expect(sha(Buffer.concat(chunks))).to.equal(sha(letter.attachment));
      } finally {
        await opened.dispose();
      }
    } finally {
      await decoded.dispose();
    }
  }

  it('one dialog alternates between the processes: open on A, fetch on B, continue and close on A; the reception is recorded', async () => {
    const letter = { text: '<nachricht n="1"/>', attachment: randomBytes(200_000) };
    const messageId = await store(client(b, ag), letter);

    const onA = await client(a, stadt).openDialog();
    const onB = onA.via(client(b, stadt));
    await expectLetter(await onB.fetchDelivery({ by: 'messageId', messageId }), messageId, letter);
    // Back on A: the next request acknowledges the reception of what B handed out (§2), so nothing waits any more.
    const backOnA = onB.via(client(a, stadt));
    expect(await backOnA.fetchDelivery()).to.equal(undefined);
    // Once more on B (the addressee's process card shows the reception), then closed on A.
    const onBAgain = backOnA.via(client(b, stadt));
    const own = await onBAgain.fetchProcessCards({ by: 'messageId', messageIds: [messageId] });
    expect(own.map((c) => [c.messageId, c.processCard.reception?.kind])).to.deep.equal([[messageId, 'plain']]);
    await onBAgain.via(client(a, stadt)).close();

    // The originator sees creation, forwarding and reception, asking the other process.
    const agOnB = await client(b, ag).openDialog();
    const cards = await agOnB.fetchProcessCards({ by: 'messageId', messageIds: [messageId] });
    await agOnB.close();
    expect(cards).to.have.length(1);
    const card = cards[0]?.processCard;
    expect(card?.creation?.kind).to.equal('plain');
    expect(card?.forwarding?.kind).to.equal('plain');
    expect(card?.reception?.kind, 'reception recorded').to.equal('plain');
  });

  it('a ControlBlock already used on one process is refused by the other (shared dialog state, no replay)', async () => {
    const d = await client(a, stadt).openDialog();
    const stale = d.via(client(b, stadt));
    expect(await d.fetchDelivery()).to.equal(undefined);
    let err: unknown;
    try {
      await stale.fetchDelivery();
    } catch (e) {
      err = e;
    }
    expect(err, 'the replayed ControlBlock was accepted').to.be.instanceOf(Error);
    expect((err as { code?: string }).code).to.equal('ERR_CONTROLBLOCK');
  });

  it('a MessageId issued by A, stored via B, is fetched and closed on A', async () => {
    const letter = { text: '<nachricht n="2"/>', attachment: randomBytes(1_500_000) };
    const issued = await client(a, ag).getMessageId();
    const messageId = await store(client(b, ag), letter, issued);
    expect(messageId).to.equal(issued);
    const d = await client(a, stadt).openDialog();
    await expectLetter(await d.fetchDelivery(), messageId, letter);
    await d.close();
    const again = await client(b, stadt).openDialog();
    expect(await again.fetchDelivery()).to.equal(undefined);
    await again.close();
  });
});

/**
 * Contract of gateway/store (types.ts), run against both backends: SQLite in a temp dir and PostgreSQL
 * in a fresh schema (AMTSBOTE_TEST_PG_URL, default postgres://root@127.0.0.1:5432/test). Outside CI the
 * PostgreSQL half is skipped when the server is unreachable; in CI it must be there.
 */
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';
import { isOsciError } from '../../protocol/errors.ts';
import { openStore } from '../../gateway/store/index.ts';
import type { DialogRecord, MessageWriter, NewDialog, Store, StoredMessage } from '../../gateway/store/types.ts';
import { IN_CI } from '../helpers/env.ts';

export const PG_URL = process.env.AMTSBOTE_TEST_PG_URL ?? 'postgres://root@127.0.0.1:5432/test';

/** Opens further Store instances on the same storage (simulating several server processes). */
interface Harness {
  open(): Promise<Store>;
  destroy(): Promise<void>;
}

async function sqliteHarness(): Promise<Harness & { dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'amtsbote-store-'));
  return { dir, open: () => openStore(`sqlite:${dir}`), destroy: () => rm(dir, { recursive: true, force: true }) };
}

/** null when PostgreSQL is unreachable (outside CI only). */
async function pgHarness(ctx: Mocha.Context): Promise<Harness | null> {
  const probe = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
  try {
    await probe.connect();
  } catch (err) {
    await probe.end().catch(() => undefined);
    if (IN_CI) throw new Error(`PostgreSQL at ${PG_URL} is required in CI: ${String(err)}`);
    console.warn(`      skipped: PostgreSQL at ${PG_URL} is not reachable (set AMTSBOTE_TEST_PG_URL)`);
    ctx.skip();
    return null;
  }
  const schema = `amtsbote_test_${randomBytes(6).toString('hex')}`;
  const url = `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}schema=${schema}`;
  return {
    open: () => openStore(url),
    destroy: async () => {
      try {
        await probe.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await probe.end();
      }
    },
  };
}

export async function expectOsciError(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (err) {
    expect(isOsciError(err), String(err)).to.equal(true);
    expect((err as { code: string }).code).to.equal(code);
    return;
  }
  expect.fail(`expected ${code}`);
}

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const at = (iso: string): Date => new Date(iso);

/** Feeds `data` in uneven slices, as a network stream would. */
async function* sliced(data: Buffer, size = 7777): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < data.length; off += size) yield new Uint8Array(data.subarray(off, off + size));
}

function newDialog(over: Partial<NewDialog> = {}): NewDialog {
  return {
    clientFingerprint: 'a'.repeat(64),
    sequenceNumber: 0,
    challenge: 'c2VydmVyLWNoYWxsZW5nZQ==',
    open: true,
    created: at('2025-01-01T10:00:00Z'),
    lastActivity: at('2025-01-01T10:00:00Z'),
    pendingReceptions: [],
    data: { languages: ['de'] },
    ...over,
  };
}

interface Sample {
  id: string;
  from?: string;
  to?: string;
  creation?: Date;
  subject?: string;
  parts?: Buffer[];
}

async function storeSample(store: Store, s: Sample): Promise<StoredMessage> {
  const w = await store.beginMessage(s.id);
  for (const [i, data] of (s.parts ?? [randomBytes(1000)]).entries()) {
    await w.addPart({ contentId: `part${i}@amtsbote`, contentType: 'application/octet-stream' }, sliced(data));
  }
  return w.commit(
    { originatorId: s.from ?? 'alice', addresseeId: s.to ?? 'bob', soapXml: Buffer.from(`<soap:Envelope id="${s.id}"/>`) },
    { creation: s.creation ?? new Date(), ...(s.subject === undefined ? {} : { subject: s.subject }), inspections: [{ mathResult: 'ok' }] },
  );
}

function contract(name: string, makeHarness: (ctx: Mocha.Context) => Promise<Harness | null>): void {
  describe(`store contract: ${name}`, function () {
    let h: Harness;
    let store: Store;
    let second: Store;

    before(async function () {
      const made = await makeHarness(this);
      if (made === null) return;
      h = made;
      store = await h.open();
      second = await h.open();
      // Two processes starting at once must both migrate without error.
      await Promise.all([store.migrate(), second.migrate()]);
      await store.migrate();
      await store.upsertParticipant({ id: 'alice', name: 'Alice' });
      await store.upsertParticipant({ id: 'bob', name: 'Bob' });
    });

    after(async function () {
      if (h === undefined) return;
      await store?.close();
      await second?.close();
      await h.destroy();
    });

    it('reports its kind', function () {
      expect(store.kind).to.equal(name);
    });

    describe('participants', function () {
      it('upserts, keeps omitted fields, gets and lists', async function () {
        await store.upsertParticipant({ id: 'passive-1', endpointUrl: 'https://recipient.example/osci' });
        await store.upsertParticipant({ id: 'passive-1', name: 'Passive' });
        const p = await second.getParticipant('passive-1');
        expect(p?.name).to.equal('Passive');
        expect(p?.endpointUrl).to.equal('https://recipient.example/osci');
        expect(p?.created).to.be.instanceOf(Date);
        expect(await store.getParticipant('nobody')).to.equal(undefined);
        const ids = (await store.listParticipants()).map((x) => x.id);
        expect(ids).to.include.members(['alice', 'bob', 'passive-1']);
        expect(ids).to.deep.equal([...ids].sort());
      });

      it('rejects bad input as ERR_USAGE', async function () {
        await expectOsciError(store.upsertParticipant({ id: '' }), 'ERR_USAGE');
      });
    });

    describe('certificates', function () {
      // The store keeps DER opaque (parsing and trust are crypto/'s business), so any bytes do.
      const derOld = randomBytes(300);
      const derNew = randomBytes(300);
      const derCipher = randomBytes(300);

      it('adds with fingerprint = sha256(der), idempotently, and finds by fingerprint', async function () {
        const c = await store.addCertificate({ participantId: 'alice', usage: 'signature', der: derOld, notBefore: at('2024-01-01T00:00:00Z'), notAfter: at('2025-06-30T00:00:00Z') });
        expect(c.fingerprint).to.equal(sha(derOld));
        expect(c.der.equals(derOld)).to.equal(true);
        const again = await second.addCertificate({ participantId: 'alice', usage: 'signature', der: derOld, notBefore: at('2024-01-01T00:00:00Z'), notAfter: at('2025-06-30T00:00:00Z') });
        expect(again.fingerprint).to.equal(c.fingerprint);
        const found = await second.findCertificate(c.fingerprint.toUpperCase());
        expect(found?.participantId).to.equal('alice');
        expect(found?.notAfter.toISOString()).to.equal('2025-06-30T00:00:00.000Z');
        expect(await store.findCertificate('0'.repeat(64))).to.equal(undefined);
      });

      it('refuses the same DER for another usage or participant, and unknown participants', async function () {
        await expectOsciError(store.addCertificate({ participantId: 'alice', usage: 'cipher', der: derOld, notBefore: new Date(0), notAfter: new Date() }), 'ERR_USAGE');
        await expectOsciError(store.addCertificate({ participantId: 'bob', usage: 'signature', der: derOld, notBefore: new Date(0), notAfter: new Date() }), 'ERR_USAGE');
        await expectOsciError(store.addCertificate({ participantId: 'nobody', usage: 'signature', der: randomBytes(10), notBefore: new Date(0), notAfter: new Date() }), 'ERR_NOT_FOUND');
        await expectOsciError(store.findCertificate('xyz'), 'ERR_USAGE');
      });

      it('lists certificates valid at a time, newest first, honouring revocation', async function () {
        await store.addCertificate({ participantId: 'alice', usage: 'signature', der: derNew, notBefore: at('2025-05-01T00:00:00Z'), notAfter: at('2027-01-01T00:00:00Z') });
        await store.addCertificate({ participantId: 'alice', usage: 'cipher', der: derCipher, notBefore: at('2024-01-01T00:00:00Z'), notAfter: at('2027-01-01T00:00:00Z') });
        const overlap = await store.certificatesOf('alice', 'signature', at('2025-06-01T00:00:00Z'));
        expect(overlap.map((c) => c.fingerprint)).to.deep.equal([sha(derNew), sha(derOld)]);
        expect((await store.certificatesOf('alice', 'signature', at('2024-06-01T00:00:00Z'))).map((c) => c.fingerprint)).to.deep.equal([sha(derOld)]);
        expect((await store.certificatesOf('alice', 'cipher', at('2025-06-01T00:00:00Z'))).map((c) => c.fingerprint)).to.deep.equal([sha(derCipher)]);
        expect(await store.certificatesOf('alice', 'signature', at('2030-01-01T00:00:00Z'))).to.deep.equal([]);

        await store.revokeCertificate(sha(derNew), at('2025-09-01T00:00:00Z'));
        await second.revokeCertificate(sha(derNew), at('2026-01-01T00:00:00Z')); // later time: the earliest stays
        expect((await store.findCertificate(sha(derNew)))?.revoked?.toISOString()).to.equal('2025-09-01T00:00:00.000Z');
        expect((await store.certificatesOf('alice', 'signature', at('2025-08-31T00:00:00Z'))).map((c) => c.fingerprint)).to.include(sha(derNew));
        expect((await store.certificatesOf('alice', 'signature', at('2025-09-01T00:00:00Z'))).map((c) => c.fingerprint)).to.not.include(sha(derNew));
        // Without a time: all, revoked and expired included.
        expect((await store.certificatesOf('alice', 'signature')).map((c) => c.fingerprint)).to.deep.equal([sha(derNew), sha(derOld)]);
        await expectOsciError(store.revokeCertificate('1'.repeat(64), new Date()), 'ERR_NOT_FOUND');
      });
    });

    describe('dialogs', function () {
      it('allocates distinct numeric ConversationIds and round-trips the record', async function () {
        const ids = await Promise.all([store.createDialog(newDialog()), second.createDialog(newDialog()), store.createDialog(newDialog())]);
        for (const id of ids) expect(id).to.match(/^\d+$/);
        expect(new Set(ids).size).to.equal(3);
        const d = await second.getDialog(ids[0] as string);
        expect(d).to.deep.equal({ conversationId: ids[0], ...newDialog() });
        expect(await store.getDialog('999')).to.equal(undefined);
        expect(await store.getDialog('not-a-number')).to.equal(undefined);
      });

      it('updates atomically, returns fn result, and rethrows fn errors leaving the dialog unchanged', async function () {
        const id = await store.createDialog(newDialog());
        const r = await store.updateDialog(id, (d) => ({ next: { ...d, sequenceNumber: 1, challenge: 'bmV4dA==' }, result: d.sequenceNumber }));
        expect(r).to.equal(0);
        const boom = new Error('ControlBlock mismatch');
        try {
          await second.updateDialog(id, (d) => {
            void d;
            throw boom;
          });
          expect.fail('fn error not rethrown');
        } catch (err) {
          expect(err).to.equal(boom);
        }
        const d = (await second.getDialog(id)) as DialogRecord;
        expect(d.sequenceNumber).to.equal(1);
        expect(d.challenge).to.equal('bmV4dA==');
        await expectOsciError(store.updateDialog('12345', (x) => ({ next: x, result: 0 })), 'ERR_DIALOG_UNKNOWN');
        await expectOsciError(store.updateDialog('abc', (x) => ({ next: x, result: 0 })), 'ERR_DIALOG_UNKNOWN');
        await expectOsciError(store.updateDialog(id, (x) => ({ next: { ...x, conversationId: '1' }, result: 0 })), 'ERR_USAGE');
      });

      it('serialises concurrent updates from two Store instances (no lost update)', async function () {
        const id = await store.createDialog(newDialog({ data: { seen: [] } }));
        const n = 24;
        await Promise.all(
          Array.from({ length: n }, (_, i) =>
            (i % 2 === 0 ? store : second).updateDialog(id, (d) => {
              const seen = (d.data as { seen: number[] }).seen;
              return { next: { ...d, sequenceNumber: d.sequenceNumber + 1, data: { seen: [...seen, i] } }, result: undefined };
            }),
          ),
        );
        const d = (await store.getDialog(id)) as DialogRecord;
        expect(d.sequenceNumber).to.equal(n);
        expect([...(d.data as { seen: number[] }).seen].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: n }, (_, i) => i));
      });

      it('acknowledges pending receptions in the same transaction (§2)', async function () {
        const m = await storeSample(store, { id: 'ack-1', to: 'bob' });
        const id = await store.createDialog(newDialog({ pendingReceptions: [m.messageId] }));
        const when = at('2025-03-03T03:03:03.333Z');
        await second.updateDialog(id, (d) => ({
          next: { ...d, pendingReceptions: [], sequenceNumber: d.sequenceNumber + 1 },
          result: null,
          acknowledge: { messageIds: d.pendingReceptions, at: when },
        }));
        expect((await store.getMessage('ack-1'))?.reception?.toISOString()).to.equal(when.toISOString());
        expect((await store.getDialog(id))?.pendingReceptions).to.deep.equal([]);
        // fn aborting: no acknowledgement either.
        const m2 = await storeSample(store, { id: 'ack-2', to: 'bob' });
        const id2 = await store.createDialog(newDialog({ pendingReceptions: [m2.messageId] }));
        await store
          .updateDialog(id2, (d) => {
            if (d.sequenceNumber === 0) throw new Error('9400');
            return { next: d, result: null, acknowledge: { messageIds: d.pendingReceptions, at: when } };
          })
          .catch(() => undefined);
        expect((await store.getMessage('ack-2'))?.reception).to.equal(undefined);
      });

      it('records Forwarding in the same transaction as the dialog update, or not at all', async function () {
        const m = await storeSample(store, { id: 'fwd-tx-1', to: 'bob' });
        const id = await store.createDialog(newDialog());
        const when = at('2025-04-04T04:04:04.444Z');
        await second.updateDialog(id, (d) => ({
          next: { ...d, pendingReceptions: [m.messageId] },
          result: null,
          forwarded: { messageId: m.messageId, at: when },
        }));
        expect((await store.getMessage('fwd-tx-1'))?.forwarding?.toISOString()).to.equal(when.toISOString());
        expect((await store.getDialog(id))?.pendingReceptions).to.deep.equal([m.messageId]);
        // An unknown message aborts the update: the dialog keeps its state.
        const err = await second
          .updateDialog(id, (d) => ({ next: { ...d, pendingReceptions: [] }, result: null, forwarded: { messageId: 'fwd-tx-none', at: when } }))
          .then(() => undefined, (e: unknown) => e);
        expect(err).to.have.property('code', 'ERR_NOT_FOUND');
        expect((await store.getDialog(id))?.pendingReceptions).to.deep.equal([m.messageId]);
      });

      it('prunes dialogs idle since before a time', async function () {
        const old = await store.createDialog(newDialog({ lastActivity: at('2000-01-01T00:00:00Z') }));
        const n = await second.pruneDialogs(at('2001-01-01T00:00:00Z'));
        expect(n).to.be.greaterThanOrEqual(1);
        expect(await store.getDialog(old)).to.equal(undefined);
      });
    });

    describe('MessageIds', function () {
      it('issues once and is consumed exactly once, by the right client', async function () {
        await store.issueMessageId('bWlkLTE=', 'client-a', new Date());
        await expectOsciError(second.issueMessageId('bWlkLTE=', 'client-b', new Date()), 'ERR_MESSAGE_ID');
        expect(await store.consumeMessageId('bWlkLTE=', 'client-b')).to.equal(false);
        const results = await Promise.all([store.consumeMessageId('bWlkLTE='), second.consumeMessageId('bWlkLTE=')]);
        expect(results.filter(Boolean)).to.have.length(1);
        expect(await store.consumeMessageId('bWlkLTE=')).to.equal(false);
        expect(await store.consumeMessageId('dW5rbm93bg==')).to.equal(false);
      });

      it('beginMessage with issuedTo consumes the MessageId at commit only', async function () {
        await store.issueMessageId('issued-1', 'client-a', new Date());
        await expectOsciError(store.beginMessage('issued-1', { issuedTo: 'client-b' }), 'ERR_MESSAGE_ID');
        await expectOsciError(store.beginMessage('never-issued', { issuedTo: 'client-a' }), 'ERR_MESSAGE_ID');
        const aborted = await store.beginMessage('issued-1', { issuedTo: 'client-a' });
        await aborted.addPart({ contentId: 'a', contentType: 'text/plain' }, sliced(Buffer.from('x')));
        await aborted.abort();
        // Not consumed by the aborted attempt: the client may retry.
        const w = await second.beginMessage('issued-1', { issuedTo: 'client-a' });
        await w.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<x/>') }, { creation: new Date(), inspections: null });
        expect(await store.consumeMessageId('issued-1')).to.equal(false);
        // A MessageId consumed meanwhile makes the commit fail and leaves nothing visible.
        await store.issueMessageId('issued-2', 'client-a', new Date());
        const w2 = await store.beginMessage('issued-2', { issuedTo: 'client-a' });
        await w2.addPart({ contentId: 'a', contentType: 'text/plain' }, sliced(randomBytes(5000)));
        expect(await second.consumeMessageId('issued-2')).to.equal(true);
        await expectOsciError(w2.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<x/>') }, { creation: new Date(), inspections: null }), 'ERR_MESSAGE_ID');
        expect(await store.getMessage('issued-2')).to.equal(undefined);
      });

      it('acceptForeign takes a MessageId nobody was issued, never one issued to another client or consumed', async function () {
        const commit = (w: MessageWriter) => w.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<x/>') }, { creation: new Date(), inspections: null });
        const foreign = { issuedTo: 'client-b', acceptForeign: true };
        await store.issueMessageId('issued-3', 'client-a', new Date());
        await expectOsciError(second.beginMessage('issued-3', foreign), 'ERR_MESSAGE_ID');
        // Its owner still stores with it, as issued (consumed at commit).
        await commit(await store.beginMessage('issued-3', { issuedTo: 'client-a', acceptForeign: true }));
        expect(await store.consumeMessageId('issued-3')).to.equal(false);
        await store.issueMessageId('issued-4', 'client-b', new Date());
        expect(await store.consumeMessageId('issued-4')).to.equal(true);
        await expectOsciError(store.beginMessage('issued-4', foreign), 'ERR_MESSAGE_ID');
        // Never issued: the client's own, once.
        await commit(await store.beginMessage('own-1', foreign));
        expect((await second.getMessage('own-1'))?.originatorId).to.equal('alice');
        await expectOsciError(second.beginMessage('own-1', foreign), 'ERR_MESSAGE_ID');
        // Issued to somebody between begin and commit: the commit re-checks and stores nothing.
        const w = await store.beginMessage('own-2', foreign);
        await second.issueMessageId('own-2', 'client-a', new Date());
        await expectOsciError(commit(w), 'ERR_MESSAGE_ID');
        expect(await store.getMessage('own-2')).to.equal(undefined);
      });
    });

    describe('messages', function () {
      it('stores parts byte-identically and makes the message visible only at commit', async function () {
        const big = randomBytes(3 * 1024 * 1024 + 17); // spans several PostgreSQL chunks
        const small = Buffer.from('Hallo Gericht');
        const w = await store.beginMessage('msg-1');
        const p0 = await w.addPart({ contentId: 'big@x', contentType: 'application/octet-stream' }, Readable.from([big.subarray(0, 100), big.subarray(100)]));
        const p1 = await w.addPart({ contentId: 'small@x', contentType: 'text/plain' }, sliced(small, 3));
        const p2 = await w.addPart({ contentId: 'empty@x', contentType: 'text/plain' }, Readable.from([]));
        expect(p0).to.deep.equal({ index: 0, contentId: 'big@x', contentType: 'application/octet-stream', size: big.length, sha256Hex: sha(big) });
        expect(p1.index).to.equal(1);
        expect(p2.size).to.equal(0);
        expect(await second.getMessage('msg-1')).to.equal(undefined);
        expect((await second.listWaiting('bob')).map((m) => m.messageId)).to.not.include('msg-1');
        const soapXml = Buffer.from('<soap:Envelope>ä</soap:Envelope>');
        const stored = await w.commit(
          { originatorId: 'alice', addresseeId: 'bob', soapXml },
          { creation: at('2025-02-02T12:00:00.123Z'), subject: 'Klage', inspections: [{ x509SubjectName: 'CN=Alice', mathResult: 'ok' }] },
        );
        const got = (await second.getMessage('msg-1')) as StoredMessage;
        expect(got).to.deep.equal(stored);
        expect(got.soapXml.equals(soapXml)).to.equal(true);
        expect(got.subject).to.equal('Klage');
        expect(got.creation.toISOString()).to.equal('2025-02-02T12:00:00.123Z');
        expect(got.recentModification.toISOString()).to.equal('2025-02-02T12:00:00.123Z');
        expect(got.forwarding).to.equal(undefined);
        expect(got.reception).to.equal(undefined);
        expect(got.inspections).to.deep.equal([{ x509SubjectName: 'CN=Alice', mathResult: 'ok' }]);
        expect(got.parts).to.deep.equal([p0, p1, p2]);
        expect((await readAll(await second.openPart('msg-1', 0))).equals(big)).to.equal(true);
        expect((await readAll(await store.openPart('msg-1', 1))).equals(small)).to.equal(true);
        expect((await readAll(await store.openPart('msg-1', 2))).length).to.equal(0);
        await expectOsciError(store.openPart('msg-1', 3), 'ERR_NOT_FOUND');
        await expectOsciError(store.openPart('nope', 0), 'ERR_NOT_FOUND');
        expect(await store.getMessage('nope')).to.equal(undefined);
      });

      it('takes a part from a finished file when given one (linked, not copied), and falls back to the stream', async function () {
        const dir = await mkdtemp(join(tmpdir(), 'amtsbote-partfile-'));
        try {
          const data = randomBytes(64 * 1024 + 5);
          const file = join(dir, 'part.bin');
          await writeFile(file, data, { mode: 0o600 });
          const w = await store.beginMessage('msg-file');
          const p0 = await w.addPart({ contentId: 'f@x', contentType: 'application/octet-stream' }, Readable.from([data]), { path: file, size: data.length, sha256Hex: sha(data) });
          // A file that does not hold `size` bytes is not taken: the stream is.
          const other = randomBytes(100);
          const p1 = await w.addPart({ contentId: 'g@x', contentType: 'application/octet-stream' }, Readable.from([other]), { path: file, size: 99, sha256Hex: sha(other) });
          await w.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<f/>') }, { creation: new Date(), inspections: null });
          expect(p0.sha256Hex).to.equal(sha(data));
          expect(p1).to.deep.include({ size: 100, sha256Hex: sha(other) });
          expect((await readAll(await second.openPart('msg-file', 0))).equals(data)).to.equal(true);
          expect((await readAll(await second.openPart('msg-file', 1))).equals(other)).to.equal(true);
          // The caller's file is left alone; removing it does not touch the stored part.
          await rm(file);
          expect((await readAll(await store.openPart('msg-file', 0))).equals(data)).to.equal(true);
        } finally {
          await rm(dir, { recursive: true, force: true });
        }
      });

      it('never stores a MessageId twice, also with concurrent writers in two instances', async function () {
        await expectOsciError(store.beginMessage('msg-1'), 'ERR_MESSAGE_ID');
        await expectOsciError(second.beginMessage('msg-1'), 'ERR_MESSAGE_ID');
        const w = await store.beginMessage('dup-1');
        await expectOsciError(second.beginMessage('dup-1'), 'ERR_MESSAGE_ID');
        await expectOsciError(store.beginMessage('dup-1'), 'ERR_MESSAGE_ID');
        await w.addPart({ contentId: 'a', contentType: 'text/plain' }, sliced(Buffer.from('one')));
        await w.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<a/>') }, { creation: new Date(), inspections: null });
        await expectOsciError(second.beginMessage('dup-1'), 'ERR_MESSAGE_ID');
        expect((await store.getMessage('dup-1'))?.parts).to.have.length(1);
      });

      it('runs independent writers concurrently', async function () {
        const data = Array.from({ length: 4 }, () => randomBytes(1_500_000));
        const stored = await Promise.all(data.map((d, i) => storeSample(i % 2 === 0 ? store : second, { id: `conc-${i}`, parts: [d] })));
        for (const [i, m] of stored.entries()) {
          expect((await readAll(await store.openPart(m.messageId, 0))).equals(data[i] as Buffer)).to.equal(true);
        }
      });

      it('abort removes everything and frees the MessageId', async function () {
        const w = await store.beginMessage('abort-1');
        await w.addPart({ contentId: 'a', contentType: 'text/plain' }, sliced(randomBytes(2_000_000)));
        await w.abort();
        await w.abort();
        await expectOsciError(w.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<a/>') }, { creation: new Date(), inspections: null }), 'ERR_USAGE');
        expect(await store.getMessage('abort-1')).to.equal(undefined);
        const again = await storeSample(second, { id: 'abort-1' });
        expect(again.parts).to.have.length(1);
      });

      it('a failing source stream fails the part; the writer can only abort', async function () {
        const w: MessageWriter = await store.beginMessage('fail-1');
        async function* broken(): AsyncGenerator<Uint8Array> {
          yield randomBytes(100_000);
          throw new Error('client went away');
        }
        await expectOsciError(w.addPart({ contentId: 'a', contentType: 'text/plain' }, broken()), 'ERR_INTERNAL');
        await expectOsciError(w.addPart({ contentId: 'b', contentType: 'text/plain' }, sliced(Buffer.from('x'))), 'ERR_USAGE');
        await w.abort();
        expect(await store.getMessage('fail-1')).to.equal(undefined);
        await storeSample(store, { id: 'fail-1' });
      });

      it('lists waiting messages oldest first, with selection and limit', async function () {
        await store.upsertParticipant({ id: 'carol' });
        await storeSample(store, { id: 'w-2', to: 'carol', creation: at('2025-04-02T00:00:00Z') });
        await storeSample(second, { id: 'w-1', to: 'carol', creation: at('2025-04-01T00:00:00Z') });
        await storeSample(store, { id: 'w-3', to: 'carol', creation: at('2025-04-03T00:00:00Z') });
        await storeSample(store, { id: 'w-other', to: 'bob', creation: at('2025-04-01T00:00:00Z') });
        expect((await store.listWaiting('carol')).map((m) => m.messageId)).to.deep.equal(['w-1', 'w-2', 'w-3']);
        expect((await second.listWaiting('carol', { limit: 1 })).map((m) => m.messageId)).to.deep.equal(['w-1']);
        expect((await store.listWaiting('carol', { receivedAfter: at('2025-04-01T00:00:00Z') })).map((m) => m.messageId)).to.deep.equal(['w-2', 'w-3']);
        const one = await store.listWaiting('carol', { messageId: 'w-3' });
        expect(one.map((m) => m.messageId)).to.deep.equal(['w-3']);
        expect(one[0]?.soapXml.toString()).to.equal('<soap:Envelope id="w-3"/>');
        expect(await store.listWaiting('carol', { messageId: 'w-other' })).to.deep.equal([]);

        await store.recordReception(['w-1', 'unknown-id'], at('2025-05-01T00:00:00Z'));
        await second.recordReception(['w-1'], at('2025-06-01T00:00:00Z')); // idempotent: first time wins
        const w1 = await store.getMessage('w-1');
        expect(w1?.reception?.toISOString()).to.equal('2025-05-01T00:00:00.000Z');
        expect(w1?.recentModification.toISOString()).to.equal('2025-05-01T00:00:00.000Z');
        expect((await store.listWaiting('carol')).map((m) => m.messageId)).to.deep.equal(['w-2', 'w-3']);
        await store.recordReception([], new Date());
      });

      it('records forwarding once', async function () {
        await storeSample(store, { id: 'fwd-1', creation: at('2025-01-01T00:00:00Z') });
        await store.recordForwarding('fwd-1', at('2025-01-02T00:00:00Z'));
        await second.recordForwarding('fwd-1', at('2025-01-03T00:00:00Z'));
        const m = await store.getMessage('fwd-1');
        expect(m?.forwarding?.toISOString()).to.equal('2025-01-02T00:00:00.000Z');
        expect(m?.recentModification.toISOString()).to.equal('2025-01-02T00:00:00.000Z');
        await expectOsciError(store.recordForwarding('nope', new Date()), 'ERR_NOT_FOUND');
      });

      it('selects process cards by role, MessageId, reception time, modification and quantity (§7)', async function () {
        for (const id of ['dave', 'erin']) await store.upsertParticipant({ id });
        await storeSample(store, { id: 'pc-1', from: 'dave', to: 'erin', creation: at('2025-07-01T00:00:00Z'), subject: 'eins' });
        await storeSample(store, { id: 'pc-2', from: 'erin', to: 'dave', creation: at('2025-07-02T00:00:00Z') });
        await storeSample(second, { id: 'pc-3', from: 'dave', to: 'erin', creation: at('2025-07-03T00:00:00Z') });
        await storeSample(store, { id: 'pc-x', from: 'alice', to: 'bob', creation: at('2025-07-02T00:00:00Z') });
        const ids = async (sel: Parameters<Store['listProcessCards']>[1], who = 'dave'): Promise<string[]> =>
          (await store.listProcessCards(who, sel)).map((m) => m.messageId);
        expect(await ids({})).to.deep.equal(['pc-1', 'pc-2', 'pc-3']);
        expect(await ids({ role: 'originator' })).to.deep.equal(['pc-1', 'pc-3']);
        expect(await ids({ role: 'addressee' })).to.deep.equal(['pc-2']);
        expect(await ids({ messageIds: ['pc-3', 'pc-x'] })).to.deep.equal(['pc-3']);
        expect(await ids({ receivedFrom: at('2025-07-02T00:00:00Z') })).to.deep.equal(['pc-2', 'pc-3']);
        expect(await ids({ receivedFrom: at('2025-07-02T00:00:00Z'), receivedTo: at('2025-07-03T00:00:00Z') })).to.deep.equal(['pc-2']);
        expect(await ids({ quantity: 2 })).to.deep.equal(['pc-1', 'pc-2']);

        await store.recordReception(['pc-1'], at('2025-08-02T00:00:00Z'));
        await store.recordForwarding('pc-3', at('2025-08-01T00:00:00Z'));
        expect(await ids({ modifiedSince: at('2025-07-15T00:00:00Z') })).to.deep.equal(['pc-3', 'pc-1']);
        expect(await ids({ noReception: true })).to.deep.equal(['pc-2', 'pc-3']);
        const [card] = await store.listProcessCards('erin', { messageIds: ['pc-1'] });
        expect(card?.subject).to.equal('eins');
        expect(card?.reception?.toISOString()).to.equal('2025-08-02T00:00:00.000Z');
        expect(card?.inspections).to.deep.equal([{ mathResult: 'ok' }]);
        expect(card?.parts).to.have.length(1);
        expect(card).to.not.have.property('soapXml');
        await expectOsciError(store.listProcessCards('dave', { quantity: 0 }), 'ERR_USAGE');
      });

      it('streams a 200 MB part with bounded memory, both ways', async function () {
        this.timeout(300_000);
        const block = randomBytes(64 * 1024);
        const total = 200 * 1024 * 1024;
        const expected = createHash('sha256');
        const base = process.memoryUsage().rss;
        let peak = base;
        async function* source(): AsyncGenerator<Uint8Array> {
          for (let off = 0, n = 0; off < total; off += block.length, n++) {
            const chunk = Buffer.from(block);
            chunk.writeUInt32BE(n, 0); // every chunk distinct, so a reordering would show
            expected.update(chunk);
            if (n % 64 === 0) peak = Math.max(peak, process.memoryUsage().rss);
            yield chunk;
          }
        }
        const w = await store.beginMessage('huge-1');
        const part = await w.addPart({ contentId: 'huge', contentType: 'application/octet-stream' }, source());
        await w.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<a/>') }, { creation: new Date(), inspections: null });
        const sha256Hex = expected.digest('hex');
        expect(part.size).to.equal(total);
        expect(part.sha256Hex).to.equal(sha256Hex);
        const readBack = createHash('sha256');
        let size = 0;
        let n = 0;
        for await (const c of await second.openPart('huge-1', 0)) {
          readBack.update(c as Buffer);
          size += (c as Buffer).length;
          if (n++ % 16 === 0) peak = Math.max(peak, process.memoryUsage().rss);
        }
        expect(size).to.equal(total);
        expect(readBack.digest('hex')).to.equal(sha256Hex);
        // Holding the part (200 MB) would exceed this; streaming stays far below.
        expect(peak - base, `rss grew by ${Math.round((peak - base) / 1e6)} MB`).to.be.lessThan(120 * 1024 * 1024);
      });

      it('recover() keeps every committed message readable', async function () {
        const before = await store.getMessage('msg-1');
        await second.recover();
        await store.recover();
        expect(await store.getMessage('msg-1')).to.deep.equal(before);
        expect((await readAll(await store.openPart('msg-1', 1))).toString()).to.equal('Hallo Gericht');
      });

      it('hides store internals behind "store failure" (no SQL on the wire)', async function () {
        const extra = await h.open();
        await extra.migrate();
        await extra.close();
        try {
          await extra.getMessage('msg-1');
          expect.fail('closed store answered');
        } catch (err) {
          expect(isOsciError(err)).to.equal(true);
          expect((err as Error & { code: string }).code).to.equal('ERR_INTERNAL');
          expect((err as Error).message).to.equal('store failure');
        }
      });
    });
  });
}

contract('sqlite', async () => sqliteHarness());
contract('postgres', pgHarness);

describe('store: openStore URLs', function () {
  it('rejects unusable URLs as ERR_USAGE', async function () {
    await expectOsciError(openStore('mysql://localhost/x'), 'ERR_USAGE');
    await expectOsciError(openStore('sqlite:'), 'ERR_USAGE');
    await expectOsciError(openStore(`${PG_URL}?schema=Bad-Name`), 'ERR_USAGE');
  });

  it('opens sqlite:<dir> and sqlite://<abs dir>', async function () {
    const h = await sqliteHarness();
    try {
      const a = await openStore(`sqlite://${h.dir}`);
      await a.migrate();
      await a.upsertParticipant({ id: 'x' });
      await a.close();
      const b = await openStore(`sqlite:${h.dir}`);
      expect(b.kind).to.equal('sqlite');
      expect((await b.getParticipant('x'))?.id).to.equal('x');
      await b.close();
    } finally {
      await h.destroy();
    }
  });
});

describe('store: SQLite crash leftovers', function () {
  it('recover() removes tmp files and payload dirs no committed row names, keeps committed ones', async function () {
    const h = await sqliteHarness();
    try {
      const store = await h.open();
      await store.migrate();
      const kept = await storeSample(store, { id: 'keep-1', parts: [randomBytes(5000)] });
      const payloads = join(h.dir, 'payloads');
      const { writeFile, mkdir } = await import('node:fs/promises');
      await writeFile(join(payloads, 'tmp', 'deadbeef'), 'half a part');
      await mkdir(join(payloads, `${'f'.repeat(64)}-0011223344556677`));
      await writeFile(join(payloads, `${'f'.repeat(64)}-0011223344556677`, '0'), 'renamed but never committed');
      // A live writer's tmp file in this process must survive recovery.
      const live = await store.beginMessage('live-1');
      await live.addPart({ contentId: 'a', contentType: 'text/plain' }, sliced(Buffer.from('live')));
      await store.recover();
      expect(await readdir(join(payloads, 'tmp'))).to.have.length(1);
      const dirs = (await readdir(payloads)).filter((n) => n !== 'tmp');
      expect(dirs).to.have.length(1);
      expect((await readAll(await store.openPart('keep-1', 0))).length).to.equal(kept.parts[0]?.size);
      await live.commit({ originatorId: 'alice', addresseeId: 'bob', soapXml: Buffer.from('<a/>') }, { creation: new Date(), inspections: null });
      expect(await readdir(join(payloads, 'tmp'))).to.have.length(0);
      expect((await readAll(await store.openPart('live-1', 0))).toString()).to.equal('live');
      await store.close();
    } finally {
      await h.destroy();
    }
  });
});

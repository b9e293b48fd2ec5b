/**
 * Clock skew between client and server (osci-protocol.md §2, §7): the intermediary runs as its own process with
 * the real clock, while the clients in this process run with a clock three years behind or ahead. Process card
 * timestamps (Creation, Forwarding, Reception, RecentModification, the InspectionReport's Timestamp) come from the
 * server clock only: a skewed client, its skewed selection times, an HTTP Date header and dateTime values it signs
 * into foreign header blocks never become Creation or Reception, and the order creation ≤ forwarding ≤ reception
 * holds. A skewed selection only selects (nothing or everything), it corrupts nothing.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProcessCardBundle } from '../../protocol/processcard.ts';
import type { OsciMessageOf } from '../../protocol/model.ts';
import { craft, decodeAnswer, post, storeDeliveryOrder } from '../helpers/attack.ts';
import { testIdentity, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { devServerConfig, osciClient, startServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.ts';

const YEAR = 365 * 86_400_000;
const RealDate = Date;

/** Runs `fn` with this process's clock moved by `offsetMs` (Date.now and new Date() only; the server has its own). */
async function withClock<T>(offsetMs: number, fn: () => Promise<T>): Promise<T> {
  class Skewed extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + offsetMs);
      else super(...(args as [string | number]));
    }
    static override now(): number {
      return RealDate.now() + offsetMs;
    }
  }
  globalThis.Date = Skewed as DateConstructor;
  try {
    return await fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

const time = (t: { kind: string; time?: string } | undefined): number => {
  if (t?.kind !== 'plain' || t.time === undefined) throw new Error(`not a plain timestamp: ${JSON.stringify(t)}`);
  return RealDate.parse(t.time);
};

describe('fault: clock skew between client and server', function () {
  this.timeout(120_000);
  let tmp: string;
  let server: ServerProcess;
  let ag: TestIdentity;
  let stadt: TestIdentity;
  let intermediary: TestIdentity;
  /** Real-clock window of the whole test: every server timestamp must lie in it. */
  let windowStart: number;

  before(async () => {
    const pki = await testPki();
    [ag, stadt, intermediary] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('intermediary')]);
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-skew-'));
    server = await startServerProcess(writeServerConfig(tmp, devServerConfig(pki.dir, join(tmp, 'data'))), { args: ['--workers', '1'] });
    windowStart = RealDate.now() - 1000;
  });
  after(async () => {
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const inWindow = (t: number, what: string) => expect(t, `${what} ${new RealDate(t).toISOString()} is server time`).to.be.within(windowStart, RealDate.now() + 1000);

  function expectServerTimes(b: ProcessCardBundle | undefined, what: string) {
    const pc = b?.processCard;
    expect(pc, what).to.not.equal(undefined);
    inWindow(time(pc?.creation), `${what}: Creation`);
    inWindow(RealDate.parse(pc?.recentModification as string), `${what}: RecentModification`);
    if (pc?.forwarding) inWindow(time(pc.forwarding), `${what}: Forwarding`);
    if (pc?.reception) inWindow(time(pc.reception), `${what}: Reception`);
    for (const i of b?.inspectionReport ?? []) inWindow(time(i.timestamp), `${what}: Inspection Timestamp`);
  }

  let behind: string;
  let ahead: string;

  it('a sender three years behind and one three years ahead: Creation and the Inspection times are the server’s', async () => {
    for (const [offset, label] of [[-3 * YEAR, 'behind'], [3 * YEAR, 'ahead']] as const) {
      const receipt = await withClock(offset, async () => {
        const o = await storeDeliveryOrder(ag, stadt, { tmpDir: tmp, subject: `skew ${label}` });
        await o.sealed.dispose();
        return osciClient(server.osciUrl, ag, intermediary, tmp).storeDelivery({ addresseeCipher: stadt.cipher.cert, subject: `skew ${label}`, contentPackage: o.message.contentPackage, certificates: o.sealed.certificates });
      });
      expect(receipt.feedback[0]?.code).to.equal('0800');
      expectServerTimes(receipt.processCardBundle, `sender ${label}`);
      if (label === 'behind') behind = receipt.messageId;
      else ahead = receipt.messageId;
    }
  });

  it('dateTime values the client signs into a foreign header block and an HTTP Date header do not become Creation', async () => {
    const o = await storeDeliveryOrder(ag, stadt, { tmpDir: tmp, subject: 'skew forged times' });
    await o.sealed.dispose();
    const forged = '2001-01-01T00:00:00.000Z';
    const message: OsciMessageOf<'storeDelivery'> = {
      ...o.message,
      extraHeaders: [`<mm:Zeitangaben xmlns:mm="urn:example:metadata" Id="zeitangaben"><mm:Creation>${forged}</mm:Creation><mm:Reception>${forged}</mm:Reception><mm:RecentModification>${forged}</mm:RecentModification></mm:Zeitangaben>`],
    };
    const wire = await craft(message, { signer: ag.signature, encryptFor: intermediary.cipher.cert });
    const ans = await post(server.osciUrl, wire, undefined, { date: 'Fri, 01 Jan 1999 00:00:00 GMT' });
    const m = (await decodeAnswer(ans, { pinned: intermediary.signature.cert, tmpDir: tmp, who: ag })) as OsciMessageOf<'responseToStoreDelivery'>;
    expect(m.feedback[0]?.code).to.equal('0800');
    expectServerTimes(m.processCardBundle, 'forged times');
    expect(JSON.stringify(m.processCardBundle)).to.not.contain('2001-01-01');
  });

  it('an addressee three years ahead: its future selection finds nothing; what it fetches gets the server’s Forwarding and Reception', async () => {
    const seen = await withClock(3 * YEAR, async () => {
      const d = await osciClient(server.osciUrl, stadt, intermediary, tmp).openDialog();
      // "Delivered since yesterday" by the skewed clock is in the real future: nothing, and nothing changes.
      expect(await d.fetchDelivery({ by: 'receptionOfDelivery', dateTime: new Date(Date.now() - 86_400_000).toISOString() })).to.equal(undefined);
      const ids: string[] = [];
      for (;;) {
        const got = await d.fetchDelivery();
        if (!got) break;
        ids.push(got.response.processCardBundle?.messageId as string);
        expectServerTimes(got.response.processCardBundle, 'fetched');
        await got.decoded.dispose();
      }
      await d.close(); // records the Reception of the last one (§2)
      return ids;
    });
    expect(seen).to.include.members([behind, ahead]);
  });

  it('a sender three years behind reads process cards by its own “since yesterday”: all server times, creation ≤ forwarding ≤ reception', async () => {
    const cards = await withClock(-3 * YEAR, async () => {
      const d = await osciClient(server.osciUrl, ag, intermediary, tmp).openDialog();
      const list = await d.fetchProcessCards({ by: 'recentModification', dateTime: new Date(Date.now() - 86_400_000).toISOString() });
      await d.close();
      return list;
    });
    const mine = cards.filter((b) => b.messageId === behind || b.messageId === ahead);
    expect(mine.map((b) => b.messageId)).to.have.members([behind, ahead]);
    for (const b of mine) {
      expectServerTimes(b, `card ${b.processCard.subject ?? ''}`);
      const pc = b.processCard;
      expect(pc.reception, 'received').to.not.equal(undefined);
      expect(time(pc.creation)).to.be.at.most(time(pc.forwarding));
      expect(time(pc.forwarding)).to.be.at.most(time(pc.reception));
    }
  });
});

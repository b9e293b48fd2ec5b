/**
 * Dialogs and replay against the running intermediary (osci-protocol.md §2): an old SequenceNumber, a Challenge
 * answered twice, a skipped SequenceNumber, a missing Response, a ConversationId used with another client's
 * certificate, a closed or unknown dialog, byte-identical replays of recorded requests (by a man in the middle who
 * cannot read them), a replayed storeDelivery (the same MessageId stores once, also when sent 10 times at once),
 * a MessageId issued to one client brought by another as its own, and a replayed response shown to the client.
 * Refusals are 9400 faults with the standard text (9801 for the MessageId, order level), the dialog's state is
 * untouched by every refusal, nothing is stored twice.
 */
import { expect } from 'chai';
import type { OsciClient } from '../../adapters/osci/client.ts';
import { checkResponse, clientNext, type ClientDialogState, type ControlBlock, type DialogMessageType } from '../../protocol/dialog.ts';
import { OsciError } from '../../protocol/errors.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import type { OsciMessage } from '../../protocol/model.ts';
import { OSCI_NS } from '../../protocol/namespaces.ts';
import type { TestIdentity } from '../helpers/devpki.ts';
import {
  cast,
  clientOf,
  craft,
  expectFault,
  expectOrderFeedback,
  post,
  readAnswer,
  recordingProxy,
  spillLeft,
  startAttackServer,
  storeDeliveryOrder,
  type AttackServer,
  type Cast,
  type Recorder,
} from '../helpers/attack.ts';

/** An explicit dialog driven by hand, so that each ControlBlock field can be set as an attacker would. */
class RawDialog {
  constructor(
    private readonly client: OsciClient,
    private readonly who: TestIdentity,
    public state: ClientDialogState,
  ) {}

  static async open(client: OsciClient, who: TestIdentity): Promise<RawDialog> {
    const cb = clientNext(undefined, 'initDialog');
    const d = await client.exchange({
      type: 'initDialog',
      controlBlock: cb,
      desiredLanguages: ['de'],
      certificates: [certificate('originator', 'cipher', who.cipher.cert.raw), certificate('originator', 'signature', who.signature.cert.raw)],
    });
    await d.dispose();
    const r = checkResponse(cb, (d.message as { controlBlock: ControlBlock }).controlBlock, 'initDialog');
    if (!r.ok || !r.next) throw new Error('initDialog failed');
    return new RawDialog(client, who, r.next);
  }

  /** The next request of `type` with this ControlBlock (default: the correct one); the state advances on success. */
  async send(type: 'fetchDelivery' | 'fetchProcessCard' | 'exitDialog', cb: ControlBlock = clientNext(this.state, type), via: OsciClient = this.client, as: TestIdentity = this.who): Promise<OsciMessage> {
    const msg = { type, controlBlock: cb, desiredLanguages: ['de'], certificates: [certificate('originator', 'signature', as.signature.cert.raw)] } as OsciMessage;
    const d = await via.exchange(msg);
    await d.dispose();
    const r = checkResponse(cb, (d.message as { controlBlock: ControlBlock }).controlBlock, type as DialogMessageType);
    if (!r.ok) throw r.error;
    if (r.next) this.state = r.next;
    else this.state = { ...this.state, open: false };
    return d.message;
  }
}

/** The OSCI code of a refusal, or 'ACCEPTED'. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ACCEPTED';
  } catch (e) {
    if (e instanceof OsciError) return e.feedback;
    throw e;
  }
}

describe('security: dialogs and replay against the running intermediary', function () {
  this.timeout(120_000);
  let srv: AttackServer;
  let c: Cast;

  before(async () => {
    [srv, c] = await Promise.all([startAttackServer(), cast()]);
  });
  after(async () => {
    await srv?.stop();
  });
  afterEach(() => {
    expect(spillLeft(srv)).to.deep.equal([]);
  });

  describe('ControlBlock rules (§2), each refusal leaving the dialog usable', () => {
    let d: RawDialog;
    beforeEach(async () => {
      d = await RawDialog.open(clientOf(srv, c.ag), c.ag);
      await d.send('fetchDelivery'); // SequenceNumber 0
      await d.send('fetchProcessCard'); // SequenceNumber 1
    });
    afterEach(async () => {
      // The legitimate client continues exactly where it was.
      await d.send('exitDialog');
    });

    it('an old SequenceNumber (with the current Response) → 9400', async () => {
      const cb = { ...clientNext(d.state, 'fetchDelivery'), sequenceNumber: d.state.sequenceNumber - 1 };
      expect(await outcome(d.send('fetchDelivery', cb))).to.equal('9400');
    });

    it('the same SequenceNumber again (a re-sent request) → 9400', async () => {
      const cb = { ...clientNext(d.state, 'fetchDelivery'), sequenceNumber: d.state.sequenceNumber };
      expect(await outcome(d.send('fetchDelivery', cb))).to.equal('9400');
    });

    it('a Challenge answered twice: the right SequenceNumber with a Response the server already consumed → 9400', async () => {
      const stale = d.state.lastChallenge as string;
      await d.send('fetchDelivery'); // consumes `stale`
      const cb = { ...clientNext(d.state, 'fetchDelivery'), response: stale };
      expect(await outcome(d.send('fetchDelivery', cb))).to.equal('9400');
    });

    it('a guessed Response → 9400', async () => {
      expect(await outcome(d.send('fetchDelivery', { ...clientNext(d.state, 'fetchDelivery'), response: Buffer.alloc(10).toString('base64') }))).to.equal('9400');
    });

    it('a skipped SequenceNumber → 9400', async () => {
      const cb = { ...clientNext(d.state, 'fetchDelivery'), sequenceNumber: d.state.sequenceNumber + 2 };
      expect(await outcome(d.send('fetchDelivery', cb))).to.equal('9400');
    });

    it('no Response in an explicit dialog (signed as it is) → 9400', async () => {
      const msg = { type: 'fetchDelivery', controlBlock: clientNext(d.state, 'fetchDelivery'), desiredLanguages: ['de'], certificates: [] } as OsciMessage;
      const wire = await craft(msg, {
        signer: c.ag.signature,
        encryptFor: srv.server.identity.ciphers[0]?.cert,
        prepare: (doc) => {
          const r = doc.getElementsByTagNameNS(OSCI_NS, 'Response')[0];
          r?.parentNode?.removeChild(r);
        },
      });
      await expectFault(srv, await post(srv.osci, wire), '9400');
    });

    it("the ConversationId, SequenceNumber and Response of ag-lemgo's dialog sent with kanzlei-mustermann's certificate → 9400", async () => {
      const cb = clientNext(d.state, 'fetchDelivery');
      expect(await outcome(d.send('fetchDelivery', cb, clientOf(srv, c.kanzlei), c.kanzlei))).to.equal('9400');
    });

    it('an unknown ConversationId → 9400', async () => {
      expect(await outcome(d.send('fetchDelivery', { ...clientNext(d.state, 'fetchDelivery'), conversationId: '123456789012345' }))).to.equal('9400');
    });
  });

  it('a closed dialog cannot be continued → 9400', async () => {
    const d = await RawDialog.open(clientOf(srv, c.ag), c.ag);
    const before = d.state;
    await d.send('exitDialog');
    expect(await outcome(d.send('fetchDelivery', clientNext({ ...before, sequenceNumber: before.sequenceNumber + 1, lastChallenge: 'x' }, 'fetchDelivery')))).to.equal('9400');
  });

  describe('byte-identical replays by a man in the middle', () => {
    let mitm: Recorder;
    beforeEach(async () => {
      mitm = await recordingProxy(srv.osci);
    });
    afterEach(async () => {
      await mitm.close();
    });

    it('a replayed fetchDelivery, exitDialog or fetchProcessCard → 9400; the delivery is fetched and received once', async () => {
      const receipt = await clientOf(srv, c.ag).storeDelivery(await sealedFor(c.stadt));
      const dialog = await clientOf(srv, c.stadt, mitm.url).openDialog();
      const got = await dialog.fetchDelivery();
      expect(got?.response.processCardBundle?.messageId).to.equal(receipt.messageId);
      await got?.decoded.dispose();
      const fetchRequest = mitm.requests[1];
      expect(await dialog.fetchProcessCards({ by: 'messageId', messageIds: [receipt.messageId] })).to.have.length(1);
      const cardRequest = mitm.requests[2];
      await dialog.close();
      const exitRequest = mitm.requests[3];
      for (const replay of [fetchRequest, cardRequest, exitRequest, fetchRequest]) await expectFault(srv, await post(srv.osci, replay!), '9400');
      const card = await srv.server.store.getMessage(receipt.messageId);
      expect(card?.reception, 'reception recorded by the honest close').to.be.instanceOf(Date);
      expect(await srv.server.store.listWaiting('stadt-lemgo')).to.deep.equal([]);
      // A replayed initDialog opens a fresh dialog the attacker cannot continue (he cannot read its Challenge).
      const init = await readAnswer(srv, await post(srv.osci, mitm.requests[0]!), c.stadt);
      expect(init.type).to.equal('responseToInitDialog');
    });

    it('a replayed storeDelivery (same MessageId) is answered 9801 and stores nothing new', async () => {
      const before = (await srv.server.store.listWaiting('stadt-lemgo')).length;
      const receipt = await clientOf(srv, c.ag, mitm.url).storeDelivery(await sealedFor(c.stadt));
      const store = mitm.requests.at(-1)!;
      for (let i = 0; i < 3; i++) await expectOrderFeedback(srv, await post(srv.osci, store), c.ag, '9801');
      const waiting = await srv.server.store.listWaiting('stadt-lemgo');
      expect(waiting.map((m) => m.messageId).filter((id) => id === receipt.messageId)).to.have.length(1);
      expect(waiting).to.have.length(before + 1);
      await clearMailbox(c.stadt);
    });

    it('a response replayed to the client (an old Challenge echo) is refused by the client', async () => {
      const client = clientOf(srv, c.ag, mitm.url);
      await client.getMessageId();
      const old = mitm.responses.at(-1)!;
      mitm.answerWith = () => old;
      let err: unknown;
      try {
        await client.getMessageId();
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(OsciError);
      expect((err as OsciError).code).to.equal('ERR_CONTROLBLOCK');
    });
  });

  it("a MessageId issued to ag-lemgo, brought by kanzlei-mustermann as its own → 9801; ag-lemgo's storeDelivery with it still succeeds", async () => {
    const issued = await clientOf(srv, c.ag).getMessageId();
    let refused: unknown;
    try {
      await clientOf(srv, c.kanzlei).storeDelivery({ ...(await sealedFor(c.stadt, c.kanzlei)), messageId: issued });
    } catch (e) {
      refused = e;
    }
    expect(String(refused)).to.match(/9801/);
    expect(await srv.server.store.getMessage(issued)).to.equal(undefined);
    const receipt = await clientOf(srv, c.ag).storeDelivery({ ...(await sealedFor(c.stadt)), messageId: issued });
    expect(receipt.messageId).to.equal(issued);
    expect((await srv.server.store.getMessage(issued))?.originatorId).to.equal('ag-lemgo');
    await clearMailbox(c.stadt);
  });

  it('the same storeDelivery sent 10 times at once: exactly one receipt (0800), nine 9801, stored once', async () => {
    const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp, attachments: [{ contentId: 'anlage.pdf', data: Buffer.alloc(300_000, 3) }] });
    await o.sealed.dispose();
    const wire = await craft(o.message, { signer: c.ag.signature, attachments: o.attachments, encryptFor: srv.server.identity.ciphers[0]?.cert });
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(srv.osci, wire)));
    const codes: string[] = [];
    for (const a of answers) {
      const m = await readAnswer(srv, a, c.ag);
      codes.push((m as { feedback?: Array<{ code: string }> }).feedback?.[0]?.code ?? m.type);
    }
    expect(codes.sort()).to.deep.equal(['0800', ...Array<string>(9).fill('9801')]);
    const stored = (await srv.server.store.listWaiting('stadt-lemgo')).filter((m) => m.messageId === o.message.messageId);
    expect(stored).to.have.length(1);
    expect(stored[0]?.parts.map((p) => p.size)).to.deep.equal([300_000 + 28]);
    await clearMailbox(c.stadt);
  });

  async function sealedFor(to: TestIdentity, from: TestIdentity = c.ag) {
    const o = await storeDeliveryOrder(from, to, { tmpDir: srv.tmp });
    await o.sealed.dispose();
    const m = o.message;
    return { addresseeCipher: to.cipher.cert, subject: m.subject, contentPackage: m.contentPackage, certificates: m.certificates.filter((x) => x.role !== 'originator' || x.usage !== 'cipher') };
  }

  /** Fetches everything waiting for `who` (so that later tests start from an empty mailbox). */
  async function clearMailbox(who: TestIdentity) {
    const d = await clientOf(srv, who).openDialog();
    for (;;) {
      const got = await d.fetchDelivery();
      if (!got) break;
      await got.decoded.dispose();
    }
    await d.close();
  }
});

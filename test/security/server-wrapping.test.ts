/**
 * Signature wrapping against the running intermediary (osci-protocol.md §6; dependencies-and-security.md §2): a
 * storeDelivery correctly signed by ag-lemgo is altered on its way, with and without transport encryption, and
 * posted over HTTP. Every variant is refused with its specific OSCI code in a soap:Fault that carries only the
 * standard text; nothing is stored, no temporary file is left. The codec-level variants are in
 * signature-wrapping.test.ts and envelope-tampering.test.ts; here the whole server path is under test.
 */
import { expect } from 'chai';
import { generateKeyPairSync } from 'node:crypto';
import { createCertificate, DEV_ORGANIZATION } from '../../crypto/devpki.ts';
import { childElements, indexIds, type Document, type Element } from '../../crypto/xml.ts';
import type { FeedbackCode } from '../../protocol/feedback.ts';
import type { MultipartPartInput } from '../../protocol/mime.ts';
import { DS_NS, SOAP_NS } from '../../protocol/namespaces.ts';
import {
  cast,
  craft,
  expectFault,
  expectNothingStored,
  expectOrderFeedback,
  expectStillServing,
  post,
  startAttackServer,
  storeDeliveryOrder,
  type AttackServer,
  type Cast,
  type CraftAttachment,
  type CraftOptions,
  newMessageId,
} from '../helpers/attack.ts';

const ATTACKER_NS = 'urn:example:attacker';

function byId(doc: Document, id: string): Element {
  const el = indexIds(doc).get(id);
  if (!el) throw new Error(`fixture has no element #${id}`);
  return el;
}
const headerOf = (doc: Document) => childElements(doc.documentElement as Element, SOAP_NS, 'Header')[0] as Element;
const signatureOf = (doc: Document) => (doc.getElementsByTagNameNS(DS_NS, 'Signature')[0] as Element | undefined) ?? (() => { throw new Error('no ds:Signature'); })();

/** A foreign header block (no mustUnderstand) holding `child`. */
function wrapperHeader(doc: Document, child?: Element): Element {
  const w = doc.createElementNS(ATTACKER_NS, 'x:Wrapper');
  if (child) w.appendChild(child);
  headerOf(doc).appendChild(w);
  return w;
}

/** A forged copy of `el`: its first longer text changed, inner Ids renamed. */
function forge(el: Element): Element {
  const copy = el.cloneNode(true) as Element;
  const walk = (n: Element): boolean => {
    for (let c = n.firstChild; c; c = c.nextSibling) {
      if (c.nodeType === 3 && (c as unknown as { data: string }).data.trim().length > 8) {
        const t = c as unknown as { data: string };
        t.data = `${t.data.slice(0, 4)}${t.data[4] === 'A' ? 'B' : 'A'}${t.data.slice(5)}`;
        return true;
      }
      if (c.nodeType === 1 && walk(c as Element)) return true;
    }
    return false;
  };
  if (!walk(copy)) throw new Error('nothing to forge');
  // The attacker's own content carries its own inner Ids, not copies of the signed ones.
  for (const inner of [...indexIds(copy).values()]) if (inner !== copy) inner.setAttribute('Id', `forged_${inner.getAttribute('Id')}`);
  return copy;
}

interface Variant {
  name: string;
  code: FeedbackCode;
  opts: (c: Cast, atts: CraftAttachment[]) => Partial<CraftOptions>;
}

const swapCids = (parts: MultipartPartInput[]) => {
  const [soap, a, b] = parts as [MultipartPartInput, MultipartPartInput, MultipartPartInput];
  return [soap, { headers: { ...a.headers, 'Content-ID': b.headers['Content-ID'] as string }, body: a.body }, { headers: { ...b.headers, 'Content-ID': a.headers['Content-ID'] as string }, body: b.body }];
};

const VARIANTS: Variant[] = [
  {
    name: 'the signed Body moved into a foreign header block, a forged Body with the same Id in its place',
    code: '9100', // ERR_XML_DUPLICATE_ID: Ids are indexed once, duplicates refused before any reference is resolved
    opts: () => ({
      mutate: (doc) => {
        const body = byId(doc, 'body');
        const forged = forge(body);
        body.parentNode?.replaceChild(forged, body);
        wrapperHeader(doc, body);
      },
    }),
  },
  {
    name: 'the signed Body moved into a foreign header block, a forged Body under another Id in its place',
    code: '9601', // the Reference #body now points outside what the parser reads: unexpected reference
    opts: () => ({
      mutate: (doc) => {
        const body = byId(doc, 'body');
        const forged = forge(body);
        forged.setAttribute('Id', 'body2');
        body.parentNode?.replaceChild(forged, body);
        wrapperHeader(doc, body);
      },
    }),
  },
  {
    name: 'a forged storeDelivery block (other Subject) with the signed Id beside the signed one',
    code: '9100',
    opts: () => ({
      mutate: (doc) => {
        const block = byId(doc, 'storedelivery');
        const forged = forge(block);
        block.parentNode?.insertBefore(forged, block);
      },
    }),
  },
  {
    name: 'the signed storeDelivery block wrapped into a foreign header, a forged one under another Id in its place',
    code: '9601',
    opts: () => ({
      mutate: (doc) => {
        const block = byId(doc, 'storedelivery');
        const forged = forge(block);
        forged.setAttribute('Id', 'storedelivery2');
        block.parentNode?.replaceChild(forged, block);
        wrapperHeader(doc, block);
      },
    }),
  },
  {
    name: 'the signed Body wrapped into a ds:Object of the Signature, a forged Body under another Id in its place',
    code: '9601',
    opts: () => ({
      mutate: (doc) => {
        const body = byId(doc, 'body');
        const forged = forge(body);
        forged.setAttribute('Id', 'forgedbody');
        body.parentNode?.replaceChild(forged, body);
        const obj = doc.createElementNS(DS_NS, 'ds:Object');
        obj.appendChild(body);
        signatureOf(doc).appendChild(obj);
      },
    }),
  },
  {
    name: 'a second ds:Signature (a copy) in a foreign header block',
    code: '9601',
    opts: () => ({ mutate: (doc) => void wrapperHeader(doc, signatureOf(doc).cloneNode(true) as Element) }),
  },
  {
    name: 'a second SignedInfo in the Signature',
    code: '9601',
    opts: () => ({
      mutate: (doc) => {
        const sig = signatureOf(doc);
        const si = childElements(sig, DS_NS, 'SignedInfo')[0] as Element;
        sig.insertBefore(si.cloneNode(true), si.nextSibling);
      },
    }),
  },
  {
    name: 'a comment inside a DigestValue (CVE-2025-29775 shape)',
    code: '9601',
    opts: () => ({ mutateXml: (xml) => xml.replace(/<ds:DigestValue>(.{10})/, '<ds:DigestValue>$1<!--x-->') }),
  },
  {
    name: 'a signed Reference to an element inside the Body',
    code: '9601',
    opts: () => ({
      references: (ids, atts, doc) => {
        const inner = [...indexIds(doc).entries()].find(([, el]) => hasAncestor(el, byId(doc, 'body')) && el !== byId(doc, 'body'));
        if (!inner) throw new Error('no Id inside the Body');
        return [...ids.filter((i) => !i.startsWith('cid:')).map((id) => ({ id })), { id: inner[0] }, ...atts.map((a) => ({ uri: `cid:${a.contentId}`, data: a.data }))];
      },
    }),
  },
  {
    name: 'the type block (MessageId, Subject) left out of the signature',
    code: '9602',
    opts: () => ({
      references: (ids, atts) => [...ids.filter((i) => i !== 'storedelivery' && !i.startsWith('cid:')).map((id) => ({ id })), ...atts.map((a) => ({ uri: `cid:${a.contentId}`, data: a.data }))],
    }),
  },
  {
    name: 'two attachments with their Content-IDs swapped',
    code: '9601', // ERR_SIG_DIGEST: each cid: digest covers the raw part bytes (§6)
    opts: () => ({ mutateParts: swapCids }),
  },
  {
    name: 'an attachment substituted by other bytes of the same length',
    code: '9601',
    opts: () => ({
      mutateParts: (parts) => parts.map((p, i) => (i === 1 ? { headers: p.headers, body: Buffer.from((p.body as Buffer).map((b) => b ^ 0x55)) } : p)),
    }),
  },
  {
    name: 'an unsigned attachment added',
    code: '9602',
    opts: () => ({ mutateParts: (parts) => [...parts, { headers: { 'Content-Type': 'application/pdf', 'Content-ID': '<extra.pdf>' }, body: Buffer.from('%PDF-1.7 forged') }] }),
  },
  {
    name: "signed by kanzlei-mustermann's key, carrying ag-lemgo's signature certificate",
    code: '9601', // the key is the carried certificate's: ERR_SIG_INVALID
    opts: (c) => ({ signer: c.kanzlei.signature, signerCert: c.ag.signature.cert }),
  },
  {
    name: "signed with ag-lemgo's cipher key, its cipher certificate in the signature slot",
    code: '9700', // a cipher certificate is not a signature certificate (keyUsage), and not registered as one
    opts: (c) => ({ signer: c.ag.cipher }),
  },
  {
    name: 'a self-made certificate with ag-lemgo’s name',
    code: '9700',
    opts: () => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const cert = createCertificate({
        subject: { CN: 'ag-lemgo', O: DEV_ORGANIZATION },
        publicKey,
        signingKey: privateKey,
        notBefore: new Date(Date.now() - 3_600_000),
        notAfter: new Date(Date.now() + 86_400_000),
        keyUsage: ['digitalSignature', 'nonRepudiation'],
      });
      return { signer: { key: privateKey, cert } };
    },
  },
  {
    name: "KeyInfo pointing at the addressee's cipher certificate element",
    code: '9601',
    opts: () => ({
      mutateXml: (xml) => xml.replace(/<ds:RetrievalMethod URI="#originator_signature_[0-9a-f]+"/, () => `<ds:RetrievalMethod URI="#${addresseeCipherId(xml)}"`),
    }),
  },
];

function addresseeCipherId(xml: string): string {
  const m = /Id="(addressee_cipher_[0-9a-f]+)"/.exec(xml);
  if (!m) throw new Error('no addressee cipher certificate');
  return m[1] as string;
}

function hasAncestor(el: Element, anc: Element): boolean {
  for (let p = el.parentNode; p; p = p.parentNode) if (p === anc) return true;
  return false;
}

describe('security: signature wrapping against the running intermediary', function () {
  this.timeout(120_000);
  let srv: AttackServer;
  let c: Cast;

  before(async () => {
    [srv, c] = await Promise.all([startAttackServer(), cast()]);
  });
  after(async () => {
    await srv?.stop();
  });

  async function order(attachments = 2) {
    const o = await storeDeliveryOrder(c.ag, c.stadt, {
      tmpDir: srv.tmp,
      attachments: Array.from({ length: attachments }, (_, i) => ({ contentId: `anlage_${i + 1}.pdf`, data: Buffer.alloc(2000 + i, i + 1) })),
    });
    await o.sealed.dispose();
    return o;
  }

  it('control: the hand-built order, signed and framed as in the attacks, is accepted (0800) with and without transport encryption', async () => {
    // kanzlei-mustermann → kreis-lippe, so that the attacks' mailboxes stay empty.
    const o = await storeDeliveryOrder(c.kanzlei, c.kreis, { tmpDir: srv.tmp, attachments: [{ contentId: 'a.pdf', data: Buffer.alloc(500, 7) }, { contentId: 'b.pdf', data: Buffer.alloc(600, 8) }] });
    await o.sealed.dispose();
    for (const encryptFor of [srv.server.identity.ciphers[0]?.cert, undefined]) {
      const wire = await craft({ ...o.message, messageId: newMessageId() }, { signer: c.kanzlei.signature, attachments: o.attachments, ...(encryptFor ? { encryptFor } : {}) });
      await expectOrderFeedback(srv, await post(srv.osci, wire), c.kanzlei, '0800');
    }
    expect(await srv.server.store.listWaiting('kreis-lippe')).to.have.length(2);
  });

  for (const transport of ['transport-encrypted', 'plaintext'] as const) {
    describe(transport, () => {
      for (const v of VARIANTS) {
        it(`${v.name} → ${v.code}, nothing stored`, async () => {
          const o = await order();
          const extra = v.opts(c, o.attachments);
          const encryptFor = transport === 'transport-encrypted' ? srv.server.identity.ciphers[0]?.cert : undefined;
          const wire = await craft(o.message, { signer: c.ag.signature, attachments: o.attachments, ...extra, ...(encryptFor ? { encryptFor } : {}) });
          await expectFault(srv, await post(srv.osci, wire), v.code);
          await expectNothingStored(srv);
        });
      }
    });
  }

  describe('afterwards', () => {
    it('the intermediary still serves honest orders', async () => {
      await expectStillServing(srv, c.ag);
      await expectNothingStored(srv);
    });
  });
});

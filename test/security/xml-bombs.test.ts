/**
 * XML attacks against the running intermediary (dependencies-and-security.md §2 step 1): DOCTYPE/XXE and entity
 * expansion, external DTDs and XInclude that must never be fetched, deep nesting, floods of tiny elements and of
 * attributes (xmldom is slow per node: crypto/xml.ts bounds the shape before parsing), huge attribute and text
 * nodes, and namespace confusion. Each is a soap:Fault with its specific code and the standard text only, nothing
 * is stored, and the server keeps serving. Codec-level DOCTYPE cases are in signature-wrapping.test.ts and
 * encryption-attacks.test.ts.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { XML_LIMITS } from '../../crypto/xml.ts';
import type { FeedbackCode } from '../../protocol/feedback.ts';
import { buildSoap } from '../../protocol/soap-build.ts';
import {
  cast,
  craft,
  expectFault,
  expectNothingStored,
  expectStillServing,
  frame,
  post,
  soapWire,
  startAttackServer,
  storeDeliveryOrder,
  type AttackServer,
  type Cast,
  type Wire,
} from '../helpers/attack.ts';
import { soapPartHeaders } from '../../protocol/mime.ts';

const IN_MEMORY_LIMIT = 2 * 1024 * 1024;

describe('security: XML attacks against the running intermediary', function () {
  this.timeout(120_000);
  let srv: AttackServer;
  let c: Cast;
  /** An unsigned storeDelivery envelope (ag-lemgo → stadt-lemgo) as text, for attacks that precede any signature check. */
  let template: string;
  /** Counts requests to a would-be DTD/XInclude host. */
  let trap: Server;
  let trapUrl: string;
  let trapHits = 0;

  before(async () => {
    [srv, c] = await Promise.all([startAttackServer({ config: { limits: { maxMessageBytes: 64 * 1024 * 1024, maxAttachments: 10, maxInMemoryPartBytes: IN_MEMORY_LIMIT } } }), cast()]);
    const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp });
    await o.sealed.dispose();
    template = buildSoap(o.message).xml();
    trap = createServer((_req, res) => {
      trapHits++;
      res.end('<!ENTITY leak "trap">');
    });
    trap.listen(0, '127.0.0.1');
    await once(trap, 'listening');
    trapUrl = `http://127.0.0.1:${(trap.address() as AddressInfo).port}`;
  });
  after(async () => {
    trap?.close();
    await srv?.stop();
  });
  afterEach(async () => {
    await expectNothingStored(srv);
  });

  const envelopeOpen = () => template.slice(template.indexOf('<soap:Envelope'));
  const withDoctype = (doctype: string) => `<?xml version="1.0" encoding="UTF-8"?>\n${doctype}\n${envelopeOpen()}`;
  /** Puts `xml` as a foreign header block at the end of the template's soap:Header. */
  const withHeaderBlock = (xml: string) => template.replace('</soap:Header>', `${xml}</soap:Header>`);

  async function refused(wire: Wire, code: FeedbackCode | FeedbackCode[]): Promise<string> {
    const ans = await post(srv.osci, wire);
    await expectFault(srv, ans, code);
    return ans.body.toString('latin1');
  }

  describe('DOCTYPE, entities, external resources', () => {
    it('XXE: an external entity naming /etc/passwd → 9100, the file is never read into the answer', async () => {
      const xml = withDoctype('<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>').replace('Klage 12 C 1000/26', '&xxe;');
      const body = await refused(await soapWire(xml), '9100');
      expect(body).to.not.match(/root:|daemon:|\/bin\/(ba)?sh/);
    });

    it('entity expansion (billion laughs) → 9100 without expanding', async () => {
      const lol = ['<!ENTITY lol0 "lol">', ...Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`)].join('');
      await refused(await soapWire(withDoctype(`<!DOCTYPE soap:Envelope [${lol}]>`).replace('Klage 12 C 1000/26', '&lol9;')), '9100');
    });

    it('an external DTD and a parameter entity on a reachable host → 9100, and the host is never contacted', async () => {
      const before = trapHits;
      await refused(await soapWire(withDoctype(`<!DOCTYPE soap:Envelope SYSTEM "${trapUrl}/evil.dtd">`)), '9100');
      await refused(await soapWire(withDoctype(`<!DOCTYPE soap:Envelope [<!ENTITY % ext SYSTEM "${trapUrl}/p.dtd"> %ext;]>`)), '9100');
      expect(trapHits - before).to.equal(0);
    });

    it('XInclude is not processed: the include stays an unsigned foreign element and the host is never contacted', async () => {
      const before = trapHits;
      const xml = withHeaderBlock(`<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="${trapUrl}/inc.xml" parse="text"/><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" parse="text"/>`);
      const body = await refused(await soapWire(xml), '9600'); // the envelope is unsigned: nothing else happens
      expect(body).to.not.match(/root:/);
      expect(trapHits - before).to.equal(0);
    });

    it('DOCTYPE inside the transport-encrypted inner message (behind a valid GCM tag) → 9100', async () => {
      const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const wire = await craft(o.message, {
        signer: c.ag.signature,
        encryptFor: srv.server.identity.ciphers[0]?.cert,
        mutateXml: (xml) => xml.replace('<soap:Envelope', '<!DOCTYPE soap:Envelope [<!ENTITY x "y">]><soap:Envelope'),
      });
      await refused(wire, '9100');
    });

    it('a UTF-16 envelope hiding a DOCTYPE from a byte-level check → 9100', async () => {
      const xml = `<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>${envelopeOpen()}`;
      const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(xml, 'utf16le')]);
      const body = await refused(await frame([{ headers: soapPartHeaders(), body: utf16 }]), '9100');
      expect(body).to.not.match(/root:/);
    });
  });

  describe('size and shape', () => {
    it(`nesting deeper than ${XML_LIMITS.maxDepth} levels (100 000 in a header block) → 9100`, async () => {
      const n = 100_000;
      await refused(await soapWire(withHeaderBlock(`<x:W xmlns:x="urn:x">${'<x:a>'.repeat(n)}${'</x:a>'.repeat(n)}</x:W>`)), '9100');
    });

    it(`a flood of tiny elements (400 000, more than ${XML_LIMITS.maxMarkup} tags) → 9100 before a DOM is built`, async function () {
      this.timeout(30_000); // hang guard: without the shape bound this took minutes of blocked event loop
      const flood = `<W xmlns="urn:x">${'<b/>'.repeat(400_000)}</W>`;
      expect(flood.length, 'under the in-memory limit: the shape bound refuses it, not the MIME limit').to.be.below(IN_MEMORY_LIMIT);
      await refused(await soapWire(withHeaderBlock(flood)), '9100');
    });

    it(`a flood of attributes (more than ${XML_LIMITS.maxAttributesPerElement} on one element, more than ${XML_LIMITS.maxAttributes} in all) → 9100`, async () => {
      const attrs = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${i}="v"`).join(' ');
      await refused(await soapWire(withHeaderBlock(`<x:W xmlns:x="urn:x" ${attrs(1000, 'a')}/>`)), '9100');
      await refused(await soapWire(withHeaderBlock(`<x:W xmlns:x="urn:x">${`<x:b ${attrs(200, 'a')}/>`.repeat(600)}</x:W>`)), '9100');
      await refused(await soapWire(withHeaderBlock(`<x:W xmlns:x="urn:x">${`<x:b ${attrs(190, 'xmlns:p')}/>`.repeat(550)}</x:W>`)), '9100');
    });

    it('a SOAP part over the in-memory limit (a huge attribute) → 9100 while streaming', async () => {
      await refused(await soapWire(withHeaderBlock(`<x:W xmlns:x="urn:x" big="${'A'.repeat(IN_MEMORY_LIMIT + 1024)}"/>`)), '9100');
    });

    it('a huge attribute on a signed header block (under the limit) → 9601, the digest no longer matches', async () => {
      const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const wire = await craft(o.message, {
        signer: c.ag.signature,
        encryptFor: srv.server.identity.ciphers[0]?.cert,
        mutate: (doc) => (doc.getElementsByTagNameNS('http://www.osci.de/2002/04/osci', 'ControlBlock')[0] as unknown as { setAttribute(n: string, v: string): void }).setAttribute('x', 'A'.repeat(IN_MEMORY_LIMIT / 2)),
      });
      await refused(wire, '9601');
    });

    it('a huge comment node in the Body of an unsigned order → 9600, nothing of it reaches the model', async () => {
      const xml = template.replace(/(<soap:Body[^>]*>)/, `$1<!-- ${'x'.repeat(IN_MEMORY_LIMIT / 2)} -->`);
      await refused(await soapWire(xml), '9600');
    });
  });

  describe('namespace confusion', () => {
    it('soap:Envelope in the SOAP 1.2 namespace → 9100', async () => {
      await refused(await soapWire(template.replaceAll('http://schemas.xmlsoap.org/soap/envelope/', 'http://www.w3.org/2003/05/soap-envelope')), '9100');
    });

    it('the OSCI namespace with a trailing slash on every block → 9100 (no OSCI message)', async () => {
      await refused(await soapWire(template.replaceAll('http://www.osci.de/2002/04/osci"', 'http://www.osci.de/2002/04/osci/"')), '9100');
    });

    it('the ds prefix of the ClientSignature rebound to a look-alike namespace → 9100, never taken for a signature', async () => {
      const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const wire = await craft(o.message, {
        signer: c.ag.signature,
        encryptFor: srv.server.identity.ciphers[0]?.cert,
        mutateXml: (xml) => xml.replace('<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">', '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#/">'),
      });
      await refused(wire, '9100');
    });

    it('the Body Id moved into a namespace (x:Id) → 9100, an Id in a namespace is no Id', async () => {
      const o = await storeDeliveryOrder(c.ag, c.stadt, { tmpDir: srv.tmp });
      await o.sealed.dispose();
      const wire = await craft(o.message, {
        signer: c.ag.signature,
        encryptFor: srv.server.identity.ciphers[0]?.cert,
        mutateXml: (xml) => xml.replace(/<soap:Body([^>]*) Id="body"/, '<soap:Body$1 xmlns:x="urn:x" x:Id="body"'),
      });
      await refused(wire, '9100');
    });

    it('an OSCI block redeclaring its prefix to a foreign namespace becomes a foreign block: the order misses it → 9100', async () => {
      const xml = template.replace(/<osci:storeDelivery xmlns:ds="[^"]*" xmlns:osci="[^"]*"/, (m) => m.replace(/xmlns:osci="[^"]*"/, 'xmlns:osci="urn:not-osci"'));
      expect(xml).to.contain('urn:not-osci');
      await refused(await soapWire(xml), '9100');
    });
  });

  describe('afterwards', () => {
    it('the intermediary still serves honest orders', async () => {
      await expectStillServing(srv, c.ag);
    });
  });
});

import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOMParser } from '@xmldom/xmldom';
import { C14nCanonicalization, C14nCanonicalizationWithComments, ExclusiveCanonicalization, findAncestorNs } from 'xml-crypto';
import { canonicalize } from '../../crypto/c14n.ts';
import { isCryptoError } from '../../crypto/errors.ts';
import { parseXml, type Document, type Element } from '../../crypto/xml.ts';
import { requireShared, requireTool, shared } from '../helpers/env.ts';

const DS = 'http://www.w3.org/2000/09/xmldsig#';
const XML_NS = 'http://www.w3.org/XML/1998/namespace';

const inc = { exclusive: false, withComments: false };
const incC = { exclusive: false, withComments: true };
const exc = { exclusive: true, withComments: false };
const excC = { exclusive: true, withComments: true };

function allElements(doc: Document): Element[] {
  return Array.from(doc.getElementsByTagName('*'));
}

/** Test-local: the SOAP part (Content-ID <osci@message>) of an OSCI MIME message, as raw bytes. */
function soapPartOf(mime: Buffer): Buffer {
  const head = mime.subarray(0, mime.indexOf('\r\n\r\n')).toString('latin1');
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(head)?.[1];
  if (!boundary) throw new Error('test fixture has no boundary');
  const at = mime.indexOf('Content-ID: <osci@message>');
  const bodyStart = mime.indexOf('\r\n\r\n', at) + 4;
  return mime.subarray(bodyStart, mime.indexOf('\r\n--' + boundary, bodyStart));
}

// Comparisons with xml-crypto avoid the places where it departs from the C14N recommendation: xml:* attribute
// inheritance into document subsets, processing instructions, and comment text with special characters.
const HANDMADE = [
  '<a xmlns="urn:a" xmlns:p="urn:p"><p:b p:x="1" y="2" xmlns:q="urn:q" q:z="3"><c xmlns=""><d xmlns="urn:d" Id="d"/></c></p:b></a>',
  '<r xmlns:p="urn:p"><p:e xmlns:p="urn:p2" Id="e"><f xmlns:p="urn:p" Id="f"><p:g/></f></p:e></r>',
  '<doc b="2" a="1" c:z="3" xmlns:c="urn:c" d:y="4" xmlns:d="urn:b">text &amp; &lt;&gt; " \' &#13; tail</doc>',
  '<doc attr="&#9;&#10;&#13; &quot;&lt;&amp;\'&gt;" other="a\tb\nc">x</doc>',
  '<doc><![CDATA[ <cdata> & ]]> and >]]&gt;</doc>',
  '<x:root xmlns:x="urn:x" xmlns="urn:default"><child attr="v" Id="c1"><x:inner/></child><other xmlns="" Id="o1">t<deeper xmlns="urn:default"/></other></x:root>',
  '<d xmlns:unused="urn:unused">Ümlaut — 😀 &#x10000; ∑</d>',
  '<a>\n  <b>  </b>\n\t<!-- a comment -->\n</a>',
  '<s:Envelope xmlns:s="urn:s" xmlns:w="urn:w"><s:Header><w:Sec s:mustUnderstand="1" Id="h"><w:T xmlns:w="urn:w">v</w:T></w:Sec></s:Header><s:Body Id="b" xmlns:z="urn:z"><z:p/></s:Body></s:Envelope>',
];

describe('crypto/c14n', () => {
  describe('merlin-exc-c14n-one (xmlsec interop set)', () => {
    // The four references select the Object by xpointer (comments kept) and digest its exclusive C14N with SHA-1.
    const cases = [
      { name: 'exc-c14n', opts: exc, digest: '7yOTjUu+9oEhShgyIIXDLjQ08aY=' },
      { name: 'exc-c14n, PrefixList "bar #default"', opts: { ...exc, inclusivePrefixes: ['bar', '#default'] }, digest: '09xMy0RTQM1Q91demYe/0F6AGXo=' },
      { name: 'exc-c14n#WithComments', opts: excC, digest: 'ZQH+SkCN8c5y0feAr+aRTZDwyvY=' },
      { name: 'exc-c14n#WithComments, PrefixList', opts: { ...excC, inclusivePrefixes: ['bar', '#default'] }, digest: 'a1cTqBgbqpUt6bMJN4C6zFtnoyo=' },
    ];
    for (const c of cases) {
      it(`reproduces the ${c.name} digest`, function () {
        requireShared(this);
        const doc = parseXml(readFileSync(shared('vectors/xmlsec-tests/merlin-exc-c14n-one/exc-signature.xml')));
        const obj = doc.getElementsByTagNameNS(DS, 'Object')[0] as Element;
        expect(createHash('sha1').update(canonicalize(obj, c.opts)).digest('base64')).to.equal(c.digest);
      });
    }
  });

  describe('escaping and ordering (C14N 1.0 §2.3)', () => {
    it('escapes text: & < > and CR; leaves quotes alone', () => {
      const doc = parseXml('<d>a &amp; b &lt; c &gt; d " \' &#13;e</d>');
      expect(canonicalize(doc, inc)).to.equal('<d>a &amp; b &lt; c &gt; d " \' &#xD;e</d>');
    });
    it('escapes attributes: & < " TAB LF CR; leaves > alone; literal whitespace was normalized by the parser', () => {
      const doc = parseXml('<d a="&amp;&lt;&gt;&quot;&#9;&#10;&#13;\'" b="x\ty\nz"/>');
      expect(canonicalize(doc, inc)).to.equal('<d a="&amp;&lt;>&quot;&#x9;&#xA;&#xD;\'" b="x y z"></d>');
    });
    it('normalizes CRLF line ends in text to LF (XML 1.0 §2.11) and writes CDATA as escaped text', () => {
      const doc = parseXml('<d>l1\r\nl2\rl3<![CDATA[<&>]]></d>');
      expect(canonicalize(doc, inc)).to.equal('<d>l1\nl2\nl3&lt;&amp;&gt;</d>');
    });
    it('puts namespace declarations first (by prefix, default first), then attributes by namespace URI and local name', () => {
      const doc = parseXml('<e xmlns:z="urn:a" xmlns:b="urn:z" xmlns="urn:d" z:k="1" b:a="2" c="3" a="4"/>');
      expect(canonicalize(doc, inc)).to.equal(
        '<e xmlns="urn:d" xmlns:b="urn:z" xmlns:z="urn:a" a="4" c="3" z:k="1" b:a="2"></e>',
      );
    });
    it('writes empty elements as start/end pairs and drops the XML declaration', () => {
      expect(canonicalize(parseXml('<?xml version="1.0" encoding="UTF-8"?>\n<a><b/></a>'), inc)).to.equal('<a><b></b></a>');
    });
    it('keeps comments only with comments; comment text is not escaped', () => {
      const doc = parseXml('<r><!-- a & b < c --></r>');
      expect(canonicalize(doc, incC)).to.equal('<r><!-- a & b < c --></r>');
      expect(canonicalize(doc, inc)).to.equal('<r></r>');
    });
    it('renders PIs and comments outside the document element separated by LF (C14N §2.1)', () => {
      const doc = parseXml('<?pi-a x?>\n<!--c1-->\n<r><?in?></r>\n<!--c2-->\n<?pi-b  y z?>');
      expect(canonicalize(doc, incC)).to.equal('<?pi-a x?>\n<!--c1-->\n<r><?in?></r>\n<!--c2-->\n<?pi-b y z?>');
      expect(canonicalize(doc, inc)).to.equal('<?pi-a x?>\n<r><?in?></r>\n<?pi-b y z?>');
    });
  });

  describe('document subsets', () => {
    const src = '<a xmlns="urn:a" xmlns:p="urn:p" xmlns:u="urn:u" xml:lang="de" xml:space="preserve"><b xml:lang="en"><p:c x="1"><d/></p:c></b></a>';
    it('inclusive: the apex gets every namespace in scope and the inherited xml:* attributes', () => {
      const doc = parseXml(src);
      const c = doc.getElementsByTagNameNS('urn:p', 'c')[0] as Element;
      expect(canonicalize(c, inc)).to.equal(
        '<p:c xmlns="urn:a" xmlns:p="urn:p" xmlns:u="urn:u" x="1" xml:lang="en" xml:space="preserve"><d></d></p:c>',
      );
    });
    it('exclusive: the apex gets only visibly utilized namespaces and no xml:* inheritance', () => {
      const doc = parseXml(src);
      const c = doc.getElementsByTagNameNS('urn:p', 'c')[0] as Element;
      expect(canonicalize(c, exc)).to.equal('<p:c xmlns:p="urn:p" x="1"><d xmlns="urn:a"></d></p:c>');
      expect(canonicalize(c, { ...exc, inclusivePrefixes: ['u', '#default'] })).to.equal(
        '<p:c xmlns="urn:a" xmlns:p="urn:p" xmlns:u="urn:u" x="1"><d></d></p:c>',
      );
    });
    it('an apex with its own xml:* attribute keeps it over the inherited one', () => {
      const doc = parseXml(src);
      const b = doc.getElementsByTagName('b')[0] as Element;
      expect(canonicalize(b, inc)).to.match(/^<b xmlns="urn:a" xmlns:p="urn:p" xmlns:u="urn:u" xml:lang="en" xml:space="preserve">/);
    });
    it('emits xmlns="" only where the output parent had a non-empty default namespace', () => {
      const doc = parseXml('<a xmlns="urn:a"><b xmlns=""><c/></b><d><e xmlns=""/></d></a>');
      const b = doc.getElementsByTagName('b')[0] as Element;
      expect(canonicalize(b, inc)).to.equal('<b><c></c></b>');
      expect(canonicalize(doc, inc)).to.equal('<a xmlns="urn:a"><b xmlns=""><c></c></b><d><e xmlns=""></e></d></a>');
      expect(canonicalize(doc, exc)).to.equal('<a xmlns="urn:a"><b xmlns=""><c></c></b><d><e xmlns=""></e></d></a>');
    });
    it('drops superfluous redeclarations and keeps real rebindings', () => {
      const doc = parseXml('<r xmlns:p="urn:p"><p:e xmlns:p="urn:p"><p:f xmlns:p="urn:q"/></p:e></r>');
      expect(canonicalize(doc, inc)).to.equal('<r xmlns:p="urn:p"><p:e><p:f xmlns:p="urn:q"></p:f></p:e></r>');
    });
    it('leaves out the excluded subtree (enveloped signature)', () => {
      const doc = parseXml('<a Id="a"><b/><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><x/></ds:Signature><c/></a>');
      const sig = doc.getElementsByTagNameNS(DS, 'Signature')[0] as Element;
      expect(canonicalize(doc.documentElement as Element, { ...inc, excludeNode: sig })).to.equal('<a Id="a"><b></b><c></c></a>');
    });
    it('declares namespaces of programmatically built elements that lack xmlns attributes (namespace fixup)', () => {
      const doc = parseXml('<r xmlns="urn:r"/>');
      const el = doc.createElementNS('urn:n', 'n:child');
      el.setAttributeNS('urn:m', 'm:att', 'v');
      doc.documentElement?.appendChild(el);
      expect(canonicalize(doc, inc)).to.equal('<r xmlns="urn:r"><n:child xmlns:m="urn:m" xmlns:n="urn:n" m:att="v"></n:child></r>');
      expect(canonicalize(el, exc)).to.equal('<n:child xmlns:m="urn:m" xmlns:n="urn:n" m:att="v"></n:child>');
    });
    it('handles very deep documents without recursion', () => {
      const depth = 20000;
      const doc = parseXml('<r/>');
      let cur = doc.documentElement as Element;
      for (let i = 0; i < depth; i++) cur = cur.appendChild(doc.createElement('e')) as Element;
      const out = canonicalize(doc, inc);
      expect(out.length).to.equal('<r></r>'.length + depth * '<e></e>'.length);
    });
    it('refuses nodes it cannot canonicalize with a CryptoError', () => {
      const doc = parseXml('<r a="1"/>');
      const attr = (doc.documentElement as Element).getAttributeNode('a');
      expect(() => canonicalize(attr as never, inc)).to.throw().that.satisfies(isCryptoError);
    });
  });

  describe('agrees with xml-crypto C14nCanonicalization / ExclusiveCanonicalization', () => {
    function sources(): Array<{ name: string; xml: string }> {
      const out = HANDMADE.map((xml, i) => ({ name: `handmade #${i}`, xml }));
      for (const f of readdirSync(shared('osci-reference/messages')).filter((f) => f.endsWith('.plain.mime'))) {
        out.push({ name: f, xml: soapPartOf(readFileSync(shared('osci-reference/messages', f))).toString('utf8') });
      }
      for (const f of ['doc.xml', 'signed.xml', 'jdk-signed-pss.xml', 'enc.xml', 'santuario-enc-oaep11.xml', 'xc-signed-rsa-MGF1.xml']) {
        out.push({ name: f, xml: readFileSync(shared('vectors/local-interop', f), 'utf8') });
      }
      for (const f of readdirSync(shared('vectors/xml-crypto-static')).filter((f) => f.endsWith('.xml'))) {
        out.push({ name: f, xml: readFileSync(shared('vectors/xml-crypto-static', f), 'utf8') });
      }
      for (const f of readdirSync(shared('vectors/xmlsec-tests/aleksey-xmldsig-01'))) {
        out.push({ name: f, xml: readFileSync(shared('vectors/xmlsec-tests/aleksey-xmldsig-01', f), 'utf8') });
      }
      return out;
    }
    const hasXmlAttrAbove = (el: Element): boolean => {
      for (let n = el.parentNode; n && n.nodeType === 1; n = n.parentNode) {
        const attrs = (n as Element).attributes;
        for (let i = 0; i < attrs.length; i++) if (attrs[i]?.namespaceURI === XML_NS) return true;
      }
      return false;
    };

    it('on every element of the OSCI SOAP parts, the vectors and hand-made documents (both methods)', function () {
      requireShared(this);
      let compared = 0;
      for (const { name, xml } of sources()) {
        const doc = parseXml(xml);
        const elements = allElements(doc);
        elements.forEach((el, i) => {
          if (!hasXmlAttrAbove(el)) {
            // xml-crypto takes the apex's ancestor namespaces from an XPath selection of it (in a marked copy).
            const fresh = new DOMParser().parseFromString(xml, 'text/xml');
            fresh.getElementsByTagName('*')[i]?.setAttribute('c14n-test-apex', '1');
            const ancestorNamespaces = findAncestorNs(fresh as never, '//*[@c14n-test-apex]');
            const theirs = new C14nCanonicalization().process(el as never, { ancestorNamespaces });
            expect(canonicalize(el, inc), `${name} element ${i} <${el.tagName}> inclusive`).to.equal(theirs);
          }
          const theirsExc = new ExclusiveCanonicalization().process(el as never, {});
          expect(canonicalize(el, exc), `${name} element ${i} <${el.tagName}> exclusive`).to.equal(theirsExc);
          compared += 2;
        });
        const root = doc.documentElement as Element;
        expect(canonicalize(root, incC), `${name} with comments`).to.equal(new C14nCanonicalizationWithComments().process(root as never, {}));
      }
      expect(compared).to.be.greaterThan(1000);
    });
  });

  describe('agrees with xmllint --c14n / --exc-c14n on whole documents', () => {
    let dir = '';
    before(function () {
      requireTool(this, 'xmllint');
      dir = mkdtempSync(join(tmpdir(), 'amtsbote-c14n-'));
    });
    after(() => dir && rmSync(dir, { recursive: true, force: true }));
    const docs = [
      ...HANDMADE,
      '<?pi-a x?>\n<!--c1-->\n<r><?in  data?><!-- & < --></r>\n<!--c2-->',
      '<a xmlns="urn:a" xml:lang="de"><b xmlns=""><c xml:space="preserve">  x  </c></b></a>',
      // xml-crypto sorts attributes by namespace URI + local name concatenated (urn:by > urn:b2x); C14N §2.2 sorts
      // by URI first, as xmllint and we do.
      '<doc xmlns:d="urn:b" xmlns:e="urn:b2" e:x="5" d:y="4"/>',
    ];
    docs.forEach((xml, i) => {
      it(`document #${i}`, () => {
        const file = join(dir, `d${i}.xml`);
        writeFileSync(file, xml);
        const doc = parseXml(xml);
        expect(canonicalize(doc, incC), 'inclusive').to.equal(execFileSync('xmllint', ['--c14n', file], { encoding: 'utf8' }));
        expect(canonicalize(doc, excC), 'exclusive').to.equal(execFileSync('xmllint', ['--exc-c14n', file], { encoding: 'utf8' }));
      });
    });
    it('the OSCI SOAP parts', function () {
      requireShared(this);
      for (const f of readdirSync(shared('osci-reference/messages')).filter((f) => f.endsWith('.plain.mime'))) {
        const xml = soapPartOf(readFileSync(shared('osci-reference/messages', f)));
        const file = join(dir, 'soap.xml');
        writeFileSync(file, xml);
        const doc = parseXml(xml);
        expect(canonicalize(doc, incC), f).to.equal(execFileSync('xmllint', ['--c14n', file], { encoding: 'utf8' }));
        expect(canonicalize(doc, excC), f).to.equal(execFileSync('xmllint', ['--exc-c14n', file], { encoding: 'utf8' }));
      }
    });
  });
});

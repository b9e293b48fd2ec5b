/**
 * Interop with xmlsec1 1.2.37 (dependencies-and-security.md §6): our signatures verify there with a pinned
 * certificate (KeyInfo ignored), and xmlsec1's signature verifies here.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALIASES } from '../../crypto/algorithms.ts';
import { signXmlString, verifyXmlString } from '../../crypto/dsig.ts';
import { isCryptoError } from '../../crypto/errors.ts';
import { requireShared, requireTool, shared } from '../helpers/env.ts';

const V = (f: string) => shared('vectors/local-interop', f);
const OSCI = 'http://www.osci.de/2002/04/osci';
const SOAP = 'http://schemas.xmlsoap.org/soap/envelope/';

/** Namespaces declared on ancestors and redeclared on blocks, as OSCI messages do: a test of inclusive C14N's
 * namespace inheritance into each referenced subset. */
const OSCI_LIKE = `<soap:Envelope xmlns:soap="${SOAP}" xmlns:osci="${OSCI}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xml:lang="de"><soap:Header><osci:ControlBlock xmlns:osci="${OSCI}" Id="controlblock" SequenceNumber="1"><osci:Challenge>abc=</osci:Challenge></osci:ControlBlock><osci:ClientSignature Id="clientsignature"/></soap:Header><soap:Body Id="body"><osci:ContentPackage xmlns="urn:default"><x a="1&#13;&#10;2">T&amp;xt — Ümlaut &lt;tag&gt;</x><!-- c --></osci:ContentPackage></soap:Body></soap:Envelope>`;

function xmlsec1(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('xmlsec1', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('interop: xmlsec1 XML-DSig', () => {
  let dir = '';
  before(function () {
    requireShared(this);
    requireTool(this, 'xmlsec1');
    dir = mkdtempSync(join(tmpdir(), 'amtsbote-xmlsec1-'));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  const key = () => createPrivateKey(readFileSync(V('key.pem')));
  const verifyWithXmlsec1 = (file: string, idAttrs: string[]) =>
    xmlsec1(['--verify', '--pubkey-cert-pem', V('cert.pem'), '--enabled-key-data', 'rsa', ...idAttrs.flatMap((n) => ['--id-attr:Id', n]), file]);

  for (const signatureAlgorithm of [ALIASES['rsa-sha256'], ALIASES['rsa-sha512']]) {
    for (const [c14nName, c14nAlgorithm] of [
      ['inclusive', ALIASES.inclusive],
      ['exclusive', ALIASES.exclusive],
    ] as const) {
      const alg = signatureAlgorithm.split('#')[1];
      it(`our ${alg} / ${c14nName} signature of doc.xml verifies with xmlsec1, and a tampered copy does not`, async () => {
          const signed = await signXmlString(readFileSync(V('doc.xml')), {
            key: key(),
            signatureAlgorithm,
            c14nAlgorithm,
            references: [{ id: 'body1' }],
          });
          const file = join(dir, `doc-${alg}-${c14nName}.xml`);
          writeFileSync(file, signed);
          const ok = verifyWithXmlsec1(file, ['Body']);
          expect(ok.status, ok.out).to.equal(0);
          expect(ok.out).to.contain('SignedInfo References (ok/all): 1/1');
          const bad = join(dir, `doc-${alg}-${c14nName}-tampered.xml`);
          writeFileSync(bad, signed.replace('Geheimer', 'Gehiemer'));
          expect(verifyWithXmlsec1(bad, ['Body']).status).to.equal(1);
      });

      it(`our ${alg} / ${c14nName} signature over two OSCI-style blocks (inherited namespaces, xml:lang) verifies with xmlsec1`, async () => {
          const signed = await signXmlString(OSCI_LIKE, {
            key: key(),
            signatureAlgorithm,
            c14nAlgorithm,
            parentId: 'clientsignature',
            references: [{ id: 'controlblock' }, { id: 'body' }],
          });
          const file = join(dir, `osci-${alg}-${c14nName}.xml`);
          writeFileSync(file, signed);
          const ok = verifyWithXmlsec1(file, [`${OSCI}:ControlBlock`, `${SOAP}:Body`]);
          expect(ok.status, ok.out).to.equal(0);
          expect(ok.out).to.contain('SignedInfo References (ok/all): 2/2');
      });
    }
  }

  it('xmlsec1 --sign of sign-tmpl.xml verifies with ours; a tampered copy fails with ERR_SIG_DIGEST', async () => {
    const out = join(dir, 'xmlsec1-signed.xml');
    const r = xmlsec1(['--sign', '--privkey-pem', `${V('key.pem')},${V('cert.pem')}`, '--id-attr:Id', 'Body', '--output', out, V('sign-tmpl.xml')]);
    expect(r.status, r.out).to.equal(0);
    const xml = readFileSync(out, 'utf8');
    const trust = new X509Certificate(readFileSync(V('cert.pem')));
    const v = await verifyXmlString(xml, { trust, expectedReferences: { ids: ['body1'], exact: true } });
    expect(v.references.map((x) => x.uri)).to.deep.equal(['#body1']);
    expect(v.signedElements.get('body1')?.textContent).to.contain('Hallo Welt');
    try {
      await verifyXmlString(xml.replace('Hallo Welt', 'Hallo Welx'), { trust });
      expect.fail('tampered copy verified');
    } catch (e) {
      expect(isCryptoError(e) && e.code).to.equal('ERR_SIG_DIGEST');
    }
  });
});

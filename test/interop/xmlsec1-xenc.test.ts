/**
 * XML-Enc interop with xmlsec1 1.2.37 (dependencies-and-security.md §6): aes256-gcm with rsa-oaep-mgf1p/SHA-1,
 * the only key transport xmlsec1 1.2 can do, in both directions.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALIASES, NS } from '../../crypto/algorithms.ts';
import { canonicalize } from '../../crypto/c14n.ts';
import { childElements, parseXml, serializeXml } from '../../crypto/xml.ts';
import type { Element } from '../../crypto/xml.ts';
import { decryptInPlace, encryptElement } from '../../crypto/xenc.ts';
import type { Recipient } from '../../crypto/xenc.ts';
import { requireShared, requireTool, shared } from '../helpers/env.ts';

const SHA1 = 'http://www.w3.org/2000/09/xmldsig#sha1';
const inc = { exclusive: false, withComments: false };
const V = (f: string) => shared('vectors', 'local-interop', f);

describe('interop: xmlsec1 XML-Enc', function () {
  let tmp: string;
  before(function () {
    requireShared(this);
    requireTool(this, 'xmlsec1');
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-xmlsec1-'));
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const expectedC14n = () => canonicalize(parseXml(readFileSync(V('doc.xml'))), inc);

  function ourEncryption(recipient: Recipient, ivLengthElement: boolean): string {
    const doc = parseXml(readFileSync(V('doc.xml')));
    const body = childElements(doc.documentElement as Element)[0] as Element;
    encryptElement(doc, body, { recipients: [{ key: recipient }], type: 'element', keyTransport: ALIASES['rsa-oaep-mgf1p'], digest: SHA1, ivLengthElement });
    const xml = serializeXml(doc);
    expect(xml).not.to.contain('Geheimer');
    return xml;
  }

  const cases: Array<[string, () => Recipient, boolean]> = [
    ['certificate in KeyInfo', () => new X509Certificate(readFileSync(V('cert.pem'))), false],
    ['bare public key, with osci128:IvLength', () => new X509Certificate(readFileSync(V('cert.pem'))).publicKey, true],
  ];
  for (const [label, recipient, iv] of cases) {
    it(`ours (aes256-gcm + rsa-oaep-mgf1p/SHA-1, ${label}) decrypts with xmlsec1 --decrypt`, () => {
      const file = join(tmp, `ours-${iv}.xml`);
      const out = join(tmp, `ours-${iv}.dec.xml`);
      writeFileSync(file, ourEncryption(recipient(), iv));
      // Exit status 0 = decrypted; self-signed certificate warnings on stderr are harmless.
      execFileSync('xmlsec1', ['--decrypt', '--privkey-pem', V('key.pem'), '--output', out, file], { stdio: ['ignore', 'ignore', 'pipe'] });
      expect(canonicalize(parseXml(readFileSync(out)), inc)).to.equal(expectedC14n());
    });
  }

  it('xmlsec1 --encrypt output (enc-tmpl.xml) decrypts with ours', async () => {
    const out = join(tmp, 'xmlsec1-enc.xml');
    execFileSync(
      'xmlsec1',
      ['--encrypt', '--pubkey-cert-pem', V('cert.pem'), '--session-key', 'aes-256', '--xml-data', V('doc.xml'),
        '--node-id', 'body1', '--id-attr:Id', 'Body', '--output', out, V('enc-tmpl.xml')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const doc = parseXml(readFileSync(out));
    const ed = doc.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0) as Element;
    expect(serializeXml(doc)).not.to.contain('Geheimer');
    const { result } = await decryptInPlace(doc, ed, { privateKey: createPrivateKey(readFileSync(V('key.pem'))) });
    expect(result.cipher).to.equal(ALIASES['aes256-gcm']);
    // xmlsec1 omits the inherited xmlns in the plaintext: parsed in the parent context, it is urn:example:osci again.
    expect(canonicalize(doc, inc)).to.equal(expectedC14n());
  });
});

/**
 * XML-Enc interop with Apache Santuario through ../shared/tools/xmlsec-oracle (DecryptXenc / EncryptXenc):
 * OSCI's key transport xmlenc11 rsa-oaep SHA-256/MGF1-SHA256, and mixed OAEP hashes done by our own EME-OAEP.
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
import { decryptEncryptedData, decryptInPlace, encryptElement } from '../../crypto/xenc.ts';
import type { EncryptElementOptions } from '../../crypto/xenc.ts';
import { requireSantuario, requireShared, SANTUARIO_CP, shared } from '../helpers/env.ts';

const inc = { exclusive: false, withComments: false };
const V = (f: string) => shared('vectors', 'local-interop', f);
const ORACLE = (f: string) => shared('tools', 'xmlsec-oracle', f);

describe('interop: Santuario XML-Enc (xmlsec-oracle)', function () {
  this.timeout(120_000); // each java run compiles its single-file source
  let tmp: string;
  before(function () {
    requireShared(this);
    requireSantuario(this);
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-santuario-'));
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const key = () => createPrivateKey(readFileSync(V('key.pem')));
  const cert = () => new X509Certificate(readFileSync(V('cert.pem')));

  /** DecryptXenc prints the plaintext octets (UTF-8) and a newline; a non-zero exit throws. */
  function santuarioDecrypt(file: string): string {
    return execFileSync('java', ['-cp', SANTUARIO_CP, ORACLE('DecryptXenc.java'), V('key.p8.der'), file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  const cases: Array<[string, Partial<EncryptElementOptions>, string]> = [
    ['xmlenc11 rsa-oaep SHA-256/MGF1-SHA256 (OSCI profile, default), osci128:IvLength', { ivLengthElement: true }, 'default'],
    ['xmlenc11 rsa-oaep SHA-512 digest with MGF1-SHA1 (own EME-OAEP encode)', { digest: ALIASES.sha512, mgf: 'http://www.w3.org/2009/xmlenc11#mgf1sha1' }, 'mixed'],
  ];
  for (const [label, extra, name] of cases) {
    it(`ours (${label}) decrypts with DecryptXenc`, async () => {
      const doc = parseXml(readFileSync(V('doc.xml')));
      const body = childElements(doc.documentElement as Element)[0] as Element;
      const ed = encryptElement(doc, body, { recipients: [{ key: cert() }], type: 'element', ...extra });
      const file = join(tmp, `ours-${name}.xml`);
      writeFileSync(file, serializeXml(doc));
      // What we encrypted, as our own decryption reports it; Santuario must print the same octets (+ println).
      const ours = await decryptEncryptedData(doc, ed, { privateKey: key() });
      const stdout = santuarioDecrypt(file);
      expect(stdout).to.equal(ours.plaintext.toString('utf8') + '\n');
      expect(stdout).to.contain('Geheimer Inhalt — Ümlaut');
    });
  }

  it('EncryptXenc output decrypts with ours', async () => {
    const out = join(tmp, 'santuario-enc.xml');
    execFileSync('java', ['-cp', SANTUARIO_CP, ORACLE('EncryptXenc.java'), V('cert.pem'), V('doc.xml'), out], { stdio: ['ignore', 'ignore', 'pipe'] });
    const doc = parseXml(readFileSync(out));
    expect(serializeXml(doc)).not.to.contain('Geheimer');
    const ed = doc.getElementsByTagNameNS(NS.xenc, 'EncryptedData').item(0) as Element;
    const method = ed.getElementsByTagNameNS(NS.xenc11, 'MGF').item(0) as Element;
    expect(method.getAttribute('Algorithm')).to.equal(ALIASES.mgf1sha256);
    await decryptInPlace(doc, ed, { privateKey: key() });
    expect(canonicalize(doc, inc)).to.equal(canonicalize(parseXml(readFileSync(V('doc.xml'))), inc));
  });
});

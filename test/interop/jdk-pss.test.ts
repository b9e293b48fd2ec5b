/**
 * RSASSA-PSS interop with the JDK's javax.xml.crypto (shared/tools/xmlsec-oracle, secureValidation on):
 * our sha256-rsa-MGF1 / sha512-rsa-MGF1 signatures verify there, and the JDK's verify here.
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
const T = (f: string) => shared('tools/xmlsec-oracle', f);

function java(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('java', args, { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('interop: JDK RSA-PSS XML-DSig', function () {
  this.timeout(180_000);
  let dir = '';
  before(function () {
    requireShared(this);
    requireTool(this, 'java');
    dir = mkdtempSync(join(tmpdir(), 'amtsbote-jdk-pss-'));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  const cases = [
    ['sha256-rsa-MGF1', ALIASES['rsa-pss-sha256'], ALIASES.exclusive],
    ['sha512-rsa-MGF1', ALIASES['rsa-pss-sha512'], ALIASES.inclusive],
  ] as const;

  for (const [name, signatureAlgorithm, c14nAlgorithm] of cases) {
    it(`our ${name} signature verifies with VerifyDsig.java (and its tampered copy does not)`, async () => {
      const signed = await signXmlString(readFileSync(V('doc.xml')), {
        key: createPrivateKey(readFileSync(V('key.pem'))),
        signatureAlgorithm,
        c14nAlgorithm,
        references: [{ id: 'body1' }],
      });
      const file = join(dir, `ours-${name}.xml`);
      writeFileSync(file, signed);
      const ok = java([T('VerifyDsig.java'), V('cert.pem'), file, 'Id']);
      expect(ok.status, ok.out).to.equal(0);
      expect(ok.out).to.contain(`alg=${signatureAlgorithm} valid=true`);
      const bad = join(dir, `ours-${name}-tampered.xml`);
      writeFileSync(bad, signed.replace('Geheimer', 'Gehiemer'));
      const no = java([T('VerifyDsig.java'), V('cert.pem'), bad, 'Id']);
      expect(no.status, no.out).to.equal(1);
      expect(no.out).to.contain('valid=false');
    });

    it(`the JDK's ${name} signature (SignDsig.java) verifies with ours; tampered → ERR_SIG_DIGEST`, async () => {
      const out = join(dir, `jdk-${name}.xml`);
      const r = java([T('SignDsig.java'), V('key.p8.der'), V('doc.xml'), out, 'body1', signatureAlgorithm]);
      expect(r.status, r.out).to.equal(0);
      const xml = readFileSync(out, 'utf8');
      const trust = new X509Certificate(readFileSync(V('cert.pem')));
      const v = await verifyXmlString(xml, { trust, expectedReferences: { ids: ['body1'], exact: true } });
      expect(v.signatureAlgorithm).to.equal(signatureAlgorithm);
      expect(v.references.map((x) => x.uri)).to.deep.equal(['#body1']);
      try {
        await verifyXmlString(xml.replace('Geheimer', 'Gehiemer'), { trust });
        expect.fail('tampered copy verified');
      } catch (e) {
        expect(isCryptoError(e) && e.code).to.equal('ERR_SIG_DIGEST');
      }
    });
  }
});

/**
 * `amtsbote certs ...` end to end: the real CLI process against a dev PKI and the store of a running
 * intermediary (in-process, SQLite). Rotation without downtime: after the intermediary's cipher key is rotated,
 * requests encrypted for the old and for the new certificate are both accepted, and the directory announces
 * the new certificates first at once. CSR output is checked with OpenSSL and installed from an OpenSSL-signed
 * certificate; a revocation shows up as OnlineResult revoked in the server's InspectionReport.
 */
import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { constants, privateDecrypt, publicEncrypt, randomBytes, type X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OsciClient } from '../../adapters/osci/client.ts';
import { initDevPki } from '../../crypto/devpki.ts';
import { certificateSha256Hex, loadCertificate, loadPrivateKey } from '../../crypto/keys.ts';
import { certificateInfo } from '../../crypto/x509.ts';
import { loadIdentityDir } from '../../gateway/identity.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { Trust } from '../../gateway/trust.ts';
import { sealContent } from '../../protocol/envelope/index.ts';
import { REPO_ROOT, requireTool } from '../helpers/env.ts';
import { devConfig, testLogger } from '../helpers/devpki.ts';

const CLI = join(REPO_ROOT, 'bin', 'amtsbote.js');

interface Pair {
  key: ReturnType<typeof loadPrivateKey>;
  cert: X509Certificate;
}

describe('amtsbote certs (CLI)', function () {
  this.timeout(180_000);
  let root: string;
  let dir: string;
  let data: string;
  let server: RunningServer;
  const pair = (id: string, u: string): Pair => ({ key: loadPrivateKey(join(dir, id, `${u}.key.pem`)), cert: loadCertificate(join(dir, id, `${u}.cert.pem`)) });
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, 'certs', ...args], { encoding: 'utf8', cwd: root, env: { ...process.env, AMTSBOTE_LOG_LEVEL: 'silent' } });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  /** An admin command on the running server's folders and store. */
  const admin = (...args: string[]) => cli([...args, '--dir', dir, '--data', data]);
  const getJson = async (path: string) => (await fetch(`${server.url}${path}`)).json() as Promise<Record<string, unknown>>;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'amtsbote-cli-certs-'));
    dir = join(root, 'certs-dev');
    data = join(root, 'data');
    await initDevPki(dir, { bits: 2048 });
    server = await startServer(devConfig(dir, data), { log: testLogger() });
  });
  after(async () => {
    await server?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** storeDelivery from ag-lemgo to stadt-lemgo, transport-encrypted for `intermediaryCipher`. */
  async function deliver(intermediaryCipher: X509Certificate, subject: string) {
    const ag = { signature: pair('ag-lemgo', 'signature'), cipher: pair('ag-lemgo', 'cipher') };
    const stadtCipher = loadCertificate(join(dir, 'stadt-lemgo', 'cipher.cert.pem'));
    const client = new OsciClient({
      endpoint: `${server.url}/osci`,
      intermediary: { cipher: intermediaryCipher, signature: loadCertificate(join(dir, 'intermediary', 'signature.cert.pem')) },
      signer: ag.signature,
      cipher: ag.cipher,
      tmpDir: root,
    });
    const sealed = await sealContent({ author: ag.signature, readers: [stadtCipher], contents: [{ base64Content: Buffer.from(`<nachricht>${subject}</nachricht>`) }] });
    return client.storeDelivery({ addresseeCipher: stadtCipher, subject, contentPackage: sealed.contentPackage, certificates: sealed.certificates });
  }

  it('every certs command has --help with an example', () => {
    for (const c of ['init-dev', 'list', 'check', 'rotate', 'csr', 'install', 'import', 'revoke']) {
      const r = cli([c, '--help']);
      expect(r.code, c).to.equal(0);
      expect(r.out, c).to.match(/Example/);
      expect(r.out, c).to.contain(`amtsbote certs ${c}`);
    }
  });

  it('check exits 0 on the fresh PKI and 1 when --warn-days exceeds the remaining validity', () => {
    const ok = admin('check');
    expect(ok.code, ok.out + ok.err).to.equal(0);
    expect(ok.out).to.match(/^OK: 10 certificate/);
    const soon = admin('check', '--warn-days', '1000', '--json');
    expect(soon.code).to.equal(1);
    const j = JSON.parse(soon.out) as { ok: boolean; findings: Array<{ kind: string }> };
    expect(j.ok).to.equal(false);
    expect(j.findings).to.have.length(10);
    expect(j.findings.every((f) => f.kind === 'expires-soon')).to.equal(true);
    const bad = admin('check', '--warn-days', 'soon');
    expect(bad.code).to.equal(2);
    expect(bad.err).to.match(/ERR_USAGE/);
  });

  it('list --json shows every certificate in use, from the folders and the store', () => {
    const r = admin('list', '--json');
    expect(r.code, r.err).to.equal(0);
    const j = JSON.parse(r.out) as { store: boolean; certificates: Array<{ identity: string; usage: string; state: string; inStore: boolean; fingerprint: string }> };
    expect(j.store).to.equal(true);
    expect(j.certificates.map((c) => `${c.identity}/${c.usage}/${c.state}/${c.inStore}`)).to.deep.equal([
      'ag-lemgo/cipher/current/true', 'ag-lemgo/signature/current/true', 'intermediary/cipher/current/false',
      'intermediary/signature/current/false', 'kanzlei-mustermann/cipher/current/true', 'kanzlei-mustermann/signature/current/true',
      'kreis-lippe/cipher/current/true', 'kreis-lippe/signature/current/true', 'stadt-lemgo/cipher/current/true', 'stadt-lemgo/signature/current/true',
    ]);
  });

  it('rotates the intermediary cipher key without downtime: old and new certificate both accepted, new one announced first', async () => {
    const oldCipher = server.identity.ciphers[0]!.cert;
    const before = await deliver(oldCipher, 'vor der Rotation');
    expect(before.feedback[0]?.code).to.equal('0800');

    const r = admin('rotate', '--identity', 'intermediary', '--usage', 'cipher', '--overlap-days', '7', '--bits', '2048', '--json');
    expect(r.code, r.err).to.equal(0);
    const rot = JSON.parse(r.out) as { current: { fingerprint: string }; previous: { fingerprint: string; retireAt: string }; store: string };
    expect(rot.previous.fingerprint).to.equal(certificateSha256Hex(oldCipher));
    expect(rot.store).to.equal('not-a-mailbox');
    const newCipher = loadCertificate(join(dir, 'intermediary', 'cipher.cert.pem'));
    expect(certificateSha256Hex(newCipher)).to.equal(rot.current.fingerprint);

    // The running server follows its identity folder: no restart.
    const dirJson = (await getJson('/directory')) as { cipherCertificates: Array<{ fingerprint: string }> };
    expect(dirJson.cipherCertificates.map((c) => c.fingerprint)).to.deep.equal([rot.current.fingerprint, rot.previous.fingerprint]);
    const toOld = await deliver(oldCipher, 'an das alte Zertifikat');
    expect(toOld.feedback[0]?.code).to.equal('0800');
    const toNew = await deliver(newCipher, 'an das neue Zertifikat');
    expect(toNew.feedback[0]?.code).to.equal('0800');

    // Both keys stay loadable from the folder, and both decrypt.
    const id = loadIdentityDir(join(dir, 'intermediary'));
    expect(id.ciphers.map((c) => certificateSha256Hex(c.cert))).to.deep.equal([rot.current.fingerprint, rot.previous.fingerprint]);
    for (const c of id.ciphers) {
      const secret = randomBytes(32);
      const wrapped = publicEncrypt({ key: c.cert.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret);
      expect(privateDecrypt({ key: c.key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped).equals(secret)).to.equal(true);
    }
    const l = JSON.parse(admin('list', '--json').out) as { certificates: Array<{ identity: string; usage: string; state: string; retireAt?: string }> };
    expect(l.certificates.filter((c) => c.identity === 'intermediary' && c.usage === 'cipher').map((c) => [c.state, c.retireAt])).to.deep.equal([
      ['current', undefined],
      ['overlap', rot.previous.retireAt],
    ]);
  });

  it('rotates a mailbox cipher key: GET /directory/{id} lists both at once, the new one first; mail sealed before the rotation is not stranded', async () => {
    const old = certificateSha256Hex(loadCertificate(join(dir, 'stadt-lemgo', 'cipher.cert.pem')));
    // In flight across the rotation: sealed for the old certificate, fetched after it.
    const before = await deliver(server.identity.ciphers[0]!.cert, 'vor der Rotation');
    expect(before.feedback[0]?.code).to.equal('0800');
    const r = admin('rotate', '--identity', 'stadt-lemgo', '--usage', 'cipher', '--bits', '2048', '--json');
    expect(r.code, r.err).to.equal(0);
    const rot = JSON.parse(r.out) as { current: { fingerprint: string }; store: string };
    expect(rot.store).to.equal('registered');
    const d = (await getJson('/directory/stadt-lemgo')) as { cipherCertificates: Array<{ fingerprint: string }> };
    expect(d.cipherCertificates.map((c) => c.fingerprint)).to.deep.equal([rot.current.fingerprint, old]);
    // Senders encrypting content for the new certificate get through.
    const receipt = await deliver(server.identity.ciphers[0]!.cert, 'an die neue Stadt-Lemgo-Adresse');
    expect(receipt.feedback[0]?.code).to.equal('0800');
    const check = admin('check');
    expect(check.code, check.out).to.equal(0);
    // The mailbox fetches with the CLI: the old key kept in its folder opens what was sealed before the rotation.
    const out = join(root, 'inbox-stadt');
    // Asynchronously: the server runs in this very process.
    const f = await promisify(execFile)(process.execPath, [CLI, 'fetch', '--server', server.url, '--as', 'stadt-lemgo', '--identity-root', dir, '--out', out, '--json'], {
      encoding: 'utf8',
      env: { ...process.env, AMTSBOTE_LOG_LEVEL: 'silent' },
    });
    const fetched = (JSON.parse(f.stdout) as { fetched: Array<{ messageId: string; verified: boolean }> }).fetched;
    const ids = fetched.map((m) => m.messageId);
    expect(ids).to.include.members([before.messageId, receipt.messageId]);
    expect(fetched.every((m) => m.verified)).to.equal(true);
  });

  it('csr writes a PKCS#10 request OpenSSL verifies; install takes the certificate OpenSSL issued for it and refuses another', function () {
    requireTool(this, 'openssl');
    const c = admin('csr', '--identity', 'stadt-lemgo', '--usage', 'signature', '--subject', 'CN=Stadt Lemgo Signatur,O=Stadt Lemgo,C=DE', '--bits', '2048', '--json');
    expect(c.code, c.err).to.equal(0);
    const { csrFile, keyFile } = JSON.parse(c.out) as { csrFile: string; keyFile: string };
    const v = spawnSync('openssl', ['req', '-verify', '-noout', '-in', csrFile], { encoding: 'utf8' });
    expect(v.status, v.stderr).to.equal(0);
    expect(`${v.stdout}${v.stderr}`).to.match(/verify OK|self-signature ok/i);

    const issued = join(root, 'issued.pem');
    const s = spawnSync('openssl', ['x509', '-req', '-in', csrFile, '-CA', join(dir, 'ca', 'ca.cert.pem'), '-CAkey', join(dir, 'ca', 'ca.key.pem'), '-set_serial', '0x5EED', '-days', '365', '-copy_extensions', 'copy', '-out', issued], { encoding: 'utf8' });
    expect(s.status, s.stderr).to.equal(0);

    const wrong = admin('install', '--identity', 'stadt-lemgo', '--usage', 'signature', '--cert', join(dir, 'ag-lemgo', 'signature.cert.pem'));
    expect(wrong.code).to.equal(2);
    expect(wrong.err).to.match(/ERR_KEY_INVALID: no certificate given matches the pending key/);

    const ok = admin('install', '--identity', 'stadt-lemgo', '--usage', 'signature', '--cert', issued, '--json');
    expect(ok.code, ok.err).to.equal(0);
    const inst = JSON.parse(ok.out) as { current: { serial: string; subject: string }; store: string };
    expect(inst.current.serial).to.equal('5EED');
    expect(inst.current.subject).to.equal('CN=Stadt Lemgo Signatur,O=Stadt Lemgo,C=DE');
    expect(inst.store).to.equal('registered');
    const installed = pair('stadt-lemgo', 'signature');
    expect(installed.cert.serialNumber).to.equal('5EED');
    expect(spawnSync('test', ['-e', keyFile]).status, 'pending key consumed').to.equal(1);
  });

  it('revoke puts the certificate on the dev CA CRL: Trust reports OnlineResult revoked, the running server refuses it (9502), check exits 1', async () => {
    const agCipher = loadCertificate(join(dir, 'ag-lemgo', 'cipher.cert.pem'));
    const r = admin('revoke', '--cert', join(dir, 'ag-lemgo', 'cipher.cert.pem'), '--json');
    expect(r.code, r.err).to.equal(0);
    const rev = JSON.parse(r.out) as { serial: string; crlFile: string; store: Array<{ identity: string }> };
    expect(rev.serial).to.equal(certificateInfo(agCipher).serialHex);
    expect(rev.store.map((x) => x.identity)).to.deep.equal(['ag-lemgo']);

    // The server's trust decisions, as startServer builds them (dev CA anchor + its CRL, re-read per check).
    const trust = new Trust(server.store, { anchors: [loadCertificate(join(dir, 'ca', 'ca.cert.pem'))], crlFiles: [rev.crlFile], trustRegistered: true, minRsaBits: 2048 });
    expect(trust.inspect(agCipher, 'cipher', new Date(Date.now() + 1000)).onlineResult?.result).to.equal('revoked');
    // And the running server itself picks the CRL up without restart: ag-lemgo's revoked cipher certificate travels
    // with the request as CipherCertificateOriginator, so the answer cannot be encrypted for it: 9502.
    let refused: unknown;
    try {
      await deliver(server.identity.ciphers[0]!.cert, 'nach dem Widerruf');
    } catch (e) {
      refused = e;
    }
    expect(String(refused)).to.match(/9502/);

    const check = admin('check', '--json');
    expect(check.code).to.equal(1);
    const j = JSON.parse(check.out) as { findings: Array<{ kind: string; identity: string; usage: string }> };
    expect(j.findings.map((f) => `${f.kind}:${f.identity}/${f.usage}`)).to.deep.equal(['revoked:ag-lemgo/cipher']);
  });

  it('import registers a foreign mailbox certificate, announced by the directory at once', async function () {
    requireTool(this, 'openssl');
    const key = join(root, 'court.key.pem');
    const cert = join(root, 'court.cert.pem');
    const g = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/C=DE/O=Justiz NRW/CN=AG Detmold', '-keyout', key, '-out', cert, '-days', '400', '-addext', 'keyUsage=critical,keyEncipherment'], { encoding: 'utf8' });
    expect(g.status, g.stderr).to.equal(0);
    const imp = admin('import', '--identity', 'ag-detmold', '--usage', 'cipher', '--cert', cert, '--name', 'AG Detmold', '--json');
    expect(imp.code, imp.err).to.equal(0);
    const j = JSON.parse(imp.out) as { createdMailbox: boolean; chainOk: boolean; certificate: { fingerprint: string } };
    expect(j.createdMailbox).to.equal(true);
    expect(j.chainOk).to.equal(false);
    const d = (await getJson('/directory/ag-detmold')) as { name: string; cipherCertificates: Array<{ fingerprint: string }> };
    expect(d.name).to.equal('AG Detmold');
    expect(d.cipherCertificates.map((c) => c.fingerprint)).to.deep.equal([j.certificate.fingerprint]);
    // Not chained to the dev CA: check reports it, unless its certificate is given as a trust anchor.
    const untrusted = JSON.parse(admin('check', '--json').out) as { findings: Array<{ kind: string; identity: string }> };
    expect(untrusted.findings.filter((f) => f.identity === 'ag-detmold').map((f) => f.kind)).to.deep.equal(['untrusted']);
    const anchored = JSON.parse(admin('check', '--json', '--trust-anchor', cert).out) as { findings: Array<{ kind: string; identity: string }> };
    expect(anchored.findings.filter((f) => f.identity === 'ag-detmold')).to.deep.equal([]);
  });

  it('import refuses a certificate registered for another mailbox; usage errors and unreadable input exit 2', () => {
    const imp = admin('import', '--identity', 'ag-detmold', '--usage', 'cipher', '--cert', join(dir, 'stadt-lemgo', 'cipher.cert.pem'));
    // Already registered for stadt-lemgo: the store refuses a second owner.
    expect(imp.code).to.equal(2);
    expect(imp.err).to.match(/ERR_USAGE/);
    expect(admin('rotate', '--identity', 'stadt-lemgo').code).to.equal(2);
    expect(admin('revoke').code).to.equal(2);
    const missing = admin('import', '--identity', 'x', '--usage', 'cipher', '--cert', join(root, 'nope.pem'));
    expect(missing.code).to.equal(2);
    expect(missing.err).to.match(/ERR_KEY_INVALID/);
    const noStore = cli(['import', '--identity', 'x', '--usage', 'cipher', '--cert', join(dir, 'intermediary', 'cipher.cert.pem'), '--dir', dir, '--data', join(root, 'no-data')]);
    expect(noStore.code).to.equal(2);
    expect(noStore.err).to.match(/no store/);
  });
});

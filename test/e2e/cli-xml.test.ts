/** `amtsbote xml` end to end: the real CLI process, checked against xmlsec1 and our own exit-code table. */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, requireShared, requireTool, shared } from '../helpers/env.ts';

const CLI = join(REPO_ROOT, 'bin', 'amtsbote.js');
function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('amtsbote xml (CLI)', function () {
  let dir: string;
  let key: string;
  let cert: string;
  before(function () {
    requireShared(this);
    dir = mkdtempSync(join(tmpdir(), 'amtsbote-cli-xml-'));
    key = shared('vectors', 'local-interop', 'key.pem');
    cert = shared('vectors', 'local-interop', 'cert.pem');
    writeFileSync(join(dir, 'doc.xml'), '<Message xmlns="urn:x" Id="m"><Body Id="body">Frist läuft — 26.11.2026</Body></Message>');
  });

  for (const [alg, c14n] of [
    ['rsa-sha256', 'inclusive'],
    ['rsa-sha512', 'exclusive'],
  ] as const) {
    it(`sign --alg ${alg} --c14n ${c14n} verifies with xmlsec1 and with verify --json`, function () {
      requireTool(this, 'xmlsec1');
      const s = cli(['xml', 'sign', '--key', key, '--cert', cert, '--ref', 'body', '--alg', alg, '--c14n', c14n, join(dir, 'doc.xml')]);
      expect(s.code, s.err).to.equal(0);
      const signed = join(dir, `signed-${alg}.xml`);
      writeFileSync(signed, s.out);
      const x = spawnSync('xmlsec1', ['--verify', '--pubkey-cert-pem', cert, '--enabled-key-data', 'rsa', '--id-attr:Id', 'Body', signed], { encoding: 'utf8' });
      expect(x.status, x.stderr).to.equal(0);
      const v = cli(['xml', 'verify', '--cert', cert, '--json', signed]);
      expect(v.code, v.err).to.equal(0);
      const j = JSON.parse(v.out) as { references: Array<{ uri: string }>; signer: string };
      expect(j.references.map((r) => r.uri)).to.deep.equal(['#body']);
      expect(j.signer).to.contain('eGVP Interop Test');
    });
  }

  it('verify exits 1 on a tampered document and 2 on unreadable input, with the error code on stderr', function () {
    const s = cli(['xml', 'sign', '--key', key, '--cert', cert, '--ref', 'body', join(dir, 'doc.xml')]);
    const tampered = join(dir, 'tampered.xml');
    writeFileSync(tampered, s.out.replace('Frist', 'Frost'));
    const v = cli(['xml', 'verify', '--cert', cert, tampered]);
    expect(v.code).to.equal(1);
    expect(v.err).to.match(/ERR_SIG_DIGEST/);
    const bad = join(dir, 'bad.xml');
    writeFileSync(bad, '<a><b></a>');
    const m = cli(['xml', 'verify', '--cert', cert, bad]);
    expect(m.code).to.equal(2);
    expect(m.err).to.match(/ERR_XML_MALFORMED/);
  });

  it('verify rejects a stranger signature carrying its own KeyInfo certificate (exit 1)', function () {
    const v = cli(['xml', 'verify', '--cert', cert, shared('vectors', 'local-interop', 'stranger-signed.xml')]);
    expect(v.code).to.equal(1);
    expect(v.err).to.match(/ERR_SIG_INVALID|ERR_KEY_TOO_SMALL/);
  });

  it('encrypt (gcm + rsa-oaep-mgf1p) decrypts with xmlsec1; decrypt opens xmlsec1 output', function () {
    requireTool(this, 'xmlsec1');
    const e = cli(['xml', 'encrypt', '--cert', cert, '--node-id', 'body', '--key-transport', 'rsa-oaep-mgf1p', join(dir, 'doc.xml')]);
    expect(e.code, e.err).to.equal(0);
    expect(e.out).to.not.contain('Frist');
    writeFileSync(join(dir, 'enc.xml'), e.out);
    const x = spawnSync('xmlsec1', ['--decrypt', '--privkey-pem', key, join(dir, 'enc.xml')], { encoding: 'utf8' });
    expect(x.status, x.stderr).to.equal(0);
    // xmlsec1 writes non-ASCII characters as character references.
    expect(x.stdout).to.contain('Frist l&#xE4;uft &#x2014; 26.11.2026');
    const d = cli(['xml', 'decrypt', '--key', key, shared('vectors', 'local-interop', 'enc.xml')]);
    expect(d.code, d.err).to.equal(0);
    expect(d.out).to.contain('Geheimer Inhalt — Ümlaut');
  });

  it('decrypt takes a PKCS#12 key with the PIN from --pin-env, and refuses a wrong PIN with exit 2', function () {
    const bobCert = shared('osci-reference', 'certs', 'bob_cipher_4096.cer');
    const e = cli(['xml', 'encrypt', '--cert', bobCert, '--whole', join(dir, 'doc.xml')]);
    expect(e.code, e.err).to.equal(0);
    writeFileSync(join(dir, 'bob.xml'), e.out);
    const p12 = shared('osci-reference', 'certs', 'bob_cipher_4096.p12');
    const ok = cli(['xml', 'decrypt', '--key', p12, '--pin-env', 'TEST_PIN', join(dir, 'bob.xml')], { TEST_PIN: '123456' });
    expect(ok.code, ok.err).to.equal(0);
    expect(ok.out).to.contain('Frist läuft');
    const wrong = cli(['xml', 'decrypt', '--key', p12, '--pin-env', 'TEST_PIN', join(dir, 'bob.xml')], { TEST_PIN: '000000' });
    expect(wrong.code).to.equal(2);
    expect(wrong.err).to.match(/ERR_KEY_INVALID/);
    expect(wrong.err).to.not.contain('000000');
  });

  it('refuses an unknown algorithm alias with a usage error (exit 2)', function () {
    const s = cli(['xml', 'sign', '--key', key, '--cert', cert, '--ref', 'body', '--alg', 'rsa-sha1', join(dir, 'doc.xml')]);
    expect(s.code).to.equal(2);
    expect(s.err).to.match(/ERR_USAGE/);
    expect(readFileSync(join(dir, 'doc.xml'), 'utf8')).to.contain('Frist');
  });
});

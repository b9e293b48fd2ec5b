/**
 * Admin API (/admin) and `amtsbote mailbox` end to end: a running intermediary (in-process, SQLite, test dev PKI)
 * driven over HTTP and by the real CLI as child processes. Off without a configured token (404), 401 without or
 * with a wrong token, certificates checked against the server's trust anchors and key usage, a registered mailbox
 * receives real deliveries, a disabled one receives none and leaves the directory while its owner still fetches
 * waiting mail. Certificate expiry: days-to-expiry gauge per certificate and start-up warnings.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { randomBytes, type X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { OsciClient } from '../../adapters/osci/client.ts';
import { initDevPki, issueDevCertificate } from '../../crypto/devpki.ts';
import { certificateSha256Hex, loadPrivateKey } from '../../crypto/keys.ts';
import { OWN_PARTICIPANT } from '../../gateway/cert-expiry.ts';
import { loadConfigFile, resolveConfig } from '../../gateway/config.ts';
import { resolveAdminToken } from '../../gateway/http/admin.ts';
import { silentLogger, type Logger } from '../../gateway/log.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { sealContent } from '../../protocol/envelope/index.ts';
import { devConfig, testIdentity, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { REPO_ROOT } from '../helpers/env.ts';
import { devServerConfig, osciClient, startServerProcess, writeServerConfig } from '../helpers/server-process.ts';

const CLI = join(REPO_ROOT, 'bin', 'amtsbote.js');
const TOKEN_ENV = 'AMTSBOTE_TEST_ADMIN_TOKEN';
const TOKEN = randomBytes(32).toString('hex');
const DAY = 86_400_000;

interface CliResult {
  code: number | null;
  out: string;
  err: string;
}

/** The real CLI as a child process (asynchronous: the in-process server must keep answering). */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env: { ...process.env, AMTSBOTE_LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code, out, err }));
  });
}

const baseConfig = devConfig;

/** A logger whose JSON lines are kept for assertions. */
function capturingLogger(): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log: Logger = pino({ level: 'info' }, sink) as unknown as Logger;
  return {
    log,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('admin API and amtsbote mailbox', function () {
  this.timeout(180_000);
  let root: string;
  let pkiDir: string;
  let server: RunningServer;
  let ag: TestIdentity;
  let intermediary: TestIdentity;
  const env = { [TOKEN_ENV]: TOKEN };
  const mailbox = (...args: string[]) => cli(['mailbox', ...args, '--server', server.url, '--token-env', TOKEN_ENV], env);
  const api = (path: string, init: RequestInit = {}, token: string | null = TOKEN) =>
    fetch(`${server.url}/admin${path}`, { ...init, headers: { ...(token !== null ? { authorization: `Bearer ${token}` } : {}), 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) } });
  const client = (who: TestIdentity): OsciClient => osciClient(`${server.url}/osci`, who, intermediary, root);

  async function send(from: TestIdentity, toCipher: X509Certificate, subject: string) {
    const sealed = await sealContent({ author: from.signature, readers: [toCipher], contents: [{ base64Content: Buffer.from(`<nachricht>${subject}</nachricht>`) }] });
    return client(from).storeDelivery({ addresseeCipher: toCipher, subject, contentPackage: sealed.contentPackage, certificates: sealed.certificates });
  }

  async function fetchAll(who: TestIdentity): Promise<string[]> {
    const dialog = await client(who).openDialog();
    const ids: string[] = [];
    for (;;) {
      const got = await dialog.fetchDelivery();
      if (!got) break;
      ids.push(got.response.processCardBundle?.messageId ?? '?');
      await got.decoded.dispose();
    }
    await dialog.close();
    return ids;
  }

  /** A new identity `id` issued by the test dev CA, written to <root>/<id>/{usage}.{key,cert}.pem. */
  async function issue(id: string, opts: { notAfter?: Date; notBefore?: Date } = {}): Promise<TestIdentity & { dir: string }> {
    const dir = join(root, id);
    const pair = async (usage: 'signature' | 'cipher') => {
      const c = await issueDevCertificate(join(pkiDir, 'ca'), { id, usage, bits: 2048, outDir: dir, ...opts });
      return { key: loadPrivateKey(c.keyPath as string), cert: c.certificate };
    };
    return { id, dir, signature: await pair('signature'), cipher: await pair('cipher') };
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'amtsbote-admin-'));
    pkiDir = (await testPki()).dir;
    ag = await testIdentity('ag-lemgo');
    intermediary = await testIdentity('intermediary');
    process.env[TOKEN_ENV] = TOKEN;
    server = await startServer(baseConfig(pkiDir, join(root, 'data'), { admin: { tokenEnv: TOKEN_ENV } }), { log: silentLogger });
  });
  after(async () => {
    await server?.stop();
    delete process.env[TOKEN_ENV];
    if (root) rmSync(root, { recursive: true, force: true });
  });

  describe('access', () => {
    it('is off without a configured token: every /admin route answers 404, with or without a token', async () => {
      const off = await startServer(baseConfig(pkiDir, join(root, 'data-off')), { log: silentLogger });
      try {
        for (const [method, path] of [['GET', '/admin/mailboxes'], ['GET', '/admin/mailboxes/ag-lemgo'], ['POST', '/admin/mailboxes'], ['POST', '/admin/mailboxes/ag-lemgo/disable'], ['GET', '/admin']] as const) {
          for (const auth of [undefined, `Bearer ${TOKEN}`]) {
            const r = await fetch(`${off.url}${path}`, { method, headers: auth ? { authorization: auth } : {} });
            expect(r.status, `${method} ${path}`).to.equal(404);
          }
        }
        const r = await cli(['mailbox', 'list', '--server', off.url, '--token-env', TOKEN_ENV], env);
        expect(r.code, r.err).to.equal(1);
        expect(r.err).to.match(/ERR_NOT_FOUND: .*has no admin API/);
      } finally {
        await off.stop();
      }
    });

    it('refuses to start with a configured admin token that is missing or too short', async () => {
      expect(() => resolveAdminToken({ tokenEnv: 'AMTSBOTE_TEST_UNSET_TOKEN' }, {})).to.throw(/AMTSBOTE_TEST_UNSET_TOKEN is not set/);
      expect(() => resolveAdminToken({ tokenEnv: 'T' }, { T: 'short' })).to.throw(/at least 32 characters/);
      expect(resolveAdminToken(undefined, { AMTSBOTE_ADMIN_TOKEN: TOKEN })).to.equal(undefined);
      const file = join(root, 'admin.token');
      writeFileSync(file, `${TOKEN}\n`);
      chmodSync(file, 0o600);
      expect(resolveAdminToken({ tokenFile: file })).to.equal(TOKEN);
      let err: unknown;
      try {
        await startServer(baseConfig(pkiDir, join(root, 'data-bad'), { admin: { tokenEnv: 'AMTSBOTE_TEST_UNSET_TOKEN' } }), { log: silentLogger });
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string } | undefined)?.code).to.equal('ERR_USAGE');
    });

    it('a serve process (2 workers) reads admin.tokenFile from its configuration file; unknown admin keys are refused', async () => {
      const dir = mkdtempSync(join(root, 'serve-'));
      writeFileSync(join(dir, 'admin.token'), `${TOKEN}\n`, { mode: 0o600 });
      const cfg = { ...devServerConfig(pkiDir, join(dir, 'data')), admin: { tokenFile: 'admin.token' } };
      const proc = await startServerProcess(writeServerConfig(dir, cfg), { args: ['--workers', '2'] });
      try {
        const ok = await fetch(`${proc.url}/admin/mailboxes`, { headers: { authorization: `Bearer ${TOKEN}` } });
        expect(ok.status).to.equal(200);
        expect(((await ok.json()) as { mailboxes: unknown[] }).mailboxes).to.have.length(4);
        expect((await fetch(`${proc.url}/admin/mailboxes`)).status).to.equal(401);
      } finally {
        await proc.stop();
      }
      const badFile = writeServerConfig(dir, { ...cfg, admin: { tokenFile: 'admin.token', token: TOKEN } as never }, 'bad.json');
      expect(() => loadConfigFile(badFile)).to.throw(/unknown key "admin.token"/);
      expect(() => resolveConfig({ admin: { tokenEnv: 'A', tokenFile: 'b' } })).to.throw(/exactly one of tokenEnv, tokenFile/);
    });

    it('answers 401 without credentials, with a wrong token or another scheme, and leaks nothing', async () => {
      const wrong = [null, TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase(), ''];
      for (const t of wrong) {
        const r = await api('/mailboxes', {}, t);
        expect(r.status, String(t)).to.equal(401);
        expect(r.headers.get('www-authenticate')).to.match(/^Bearer/);
        expect(await r.json()).to.deep.equal({ error: 'ERR_UNAUTHORISED', message: 'authentication required' });
      }
      const basic = await fetch(`${server.url}/admin/mailboxes`, { headers: { authorization: `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}` } });
      expect(basic.status).to.equal(401);
      // Authentication comes before the body is even parsed, and before routing.
      const post = await api('/mailboxes', { method: 'POST', body: '{not json' }, 'wrong');
      expect(post.status).to.equal(401);
      const unknown = await api('/no-such-route', {}, null);
      expect(unknown.status).to.equal(401);
      const r = await cli(['mailbox', 'list', '--server', server.url, '--token-env', TOKEN_ENV], { [TOKEN_ENV]: 'x'.repeat(64) });
      expect(r.code).to.equal(4);
      expect(r.err).to.match(/ERR_UNAUTHORISED/);
      const unset = await cli(['mailbox', 'list', '--server', server.url, '--token-env', 'AMTSBOTE_TEST_UNSET_TOKEN']);
      expect(unset.code).to.equal(2);
      expect(unset.err).to.match(/AMTSBOTE_TEST_UNSET_TOKEN/);
    });

    it('every mailbox command has --help with an example; usage errors exit 2; an unreachable server exits 3', async () => {
      for (const c of ['add', 'list', 'show', 'disable']) {
        const r = await cli(['mailbox', c, '--help']);
        expect(r.code, c).to.equal(0);
        expect(r.out, c).to.match(/Example:\n.*amtsbote mailbox /);
        expect(r.out, c).to.contain('--json');
      }
      expect((await cli(['mailbox', 'show', '--server', server.url], env)).code).to.equal(2);
      const down = await cli(['mailbox', 'list', '--server', 'http://127.0.0.1:1', '--token-env', TOKEN_ENV], env);
      expect(down.code, down.err).to.equal(3);
    });
  });

  describe('mailboxes', () => {
    it('lists the registered mailboxes as active (CLI --json)', async () => {
      const r = await mailbox('list', '--json');
      expect(r.code, r.err).to.equal(0);
      const j = JSON.parse(r.out) as { mailboxes: Array<{ id: string; state: string; validCertificates: { signature: number; cipher: number } }> };
      expect(j.mailboxes.map((m) => m.id)).to.include.members(['ag-lemgo', 'kanzlei-mustermann', 'kreis-lippe', 'stadt-lemgo']);
      for (const m of j.mailboxes) {
        expect(m.state, m.id).to.equal('active');
        expect(m.validCertificates, m.id).to.deep.equal({ signature: 1, cipher: 1 });
      }
    });

    it('adds a mailbox from certificate files; it is in the directory and receives and fetches real mail', async () => {
      const detmold = await issue('ag-detmold');
      const r = await mailbox('add', '--id', 'ag-detmold', '--name', 'AG Detmold', '--signature-cert', join(detmold.dir, 'signature.cert.pem'), '--cipher-cert', join(detmold.dir, 'cipher.cert.pem'), '--json');
      expect(r.code, r.err).to.equal(0);
      const added = JSON.parse(r.out) as { id: string; name: string; state: string; newMailbox: boolean; certificates: Array<{ usage: string; fingerprint: string; state: string }> };
      expect(added).to.include({ id: 'ag-detmold', name: 'AG Detmold', state: 'active', newMailbox: true });
      expect(added.certificates.map((c) => `${c.usage}:${c.fingerprint}:${c.state}`)).to.have.members([
        `signature:${certificateSha256Hex(detmold.signature.cert)}:valid`,
        `cipher:${certificateSha256Hex(detmold.cipher.cert)}:valid`,
      ]);
      const dir = (await (await fetch(`${server.url}/directory/ag-detmold`)).json()) as { cipherCertificates: Array<{ fingerprint: string }> };
      expect(dir.cipherCertificates.map((c) => c.fingerprint)).to.deep.equal([certificateSha256Hex(detmold.cipher.cert)]);

      const sent = await send(ag, detmold.cipher.cert, 'an das AG Detmold');
      expect(sent.feedback[0]?.code).to.equal('0800');
      expect(await fetchAll(detmold)).to.deep.equal([sent.messageId]);

      // Again with the same certificates: an idempotent update, 200 and no new mailbox.
      const again = await mailbox('add', '--id', 'ag-detmold', '--cipher-cert', join(detmold.dir, 'cipher.cert.pem'), '--json');
      expect(again.code, again.err).to.equal(0);
      expect((JSON.parse(again.out) as { newMailbox: boolean; name: string }).newMailbox).to.equal(false);
    });

    it('refuses untrusted, expired, wrongly used, unreadable or foreign certificates with 400 and writes nothing', async () => {
      const foreignPki = await initDevPki(join(root, 'foreign-pki'), { bits: 2048, identities: ['ag-lemgo'] });
      const foreign = foreignPki.identities.find((i) => i.id === 'ag-lemgo');
      if (!foreign) throw new Error('foreign PKI without ag-lemgo');
      const expired = await issue('abgelaufen', { notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - DAY) });
      const good = await issue('gut');
      const pem = (c: X509Certificate) => c.toString();
      const cases: Array<[string, Record<string, unknown>, string]> = [
        ['untrusted CA', { id: 'neu', signatureCerts: [pem(foreign.signature.certificate)], cipherCerts: [pem(good.cipher.cert)] }, 'ERR_CERT_UNTRUSTED'],
        ['expired', { id: 'neu', signatureCerts: [pem(good.signature.cert)], cipherCerts: [pem(expired.cipher.cert)] }, 'ERR_CERT_EXPIRED'],
        ['signature certificate as cipher', { id: 'neu', signatureCerts: [pem(good.signature.cert)], cipherCerts: [pem(good.signature.cert)] }, 'ERR_USAGE'],
        ['cipher key usage on a signature certificate', { id: 'neu', signatureCerts: [pem(good.cipher.cert)], cipherCerts: [pem(expired.cipher.cert)] }, 'ERR_CERT_KEY_USAGE'],
        ['garbage PEM', { id: 'neu', signatureCerts: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'], cipherCerts: [pem(good.cipher.cert)] }, 'ERR_KEY_INVALID'],
        ['a file name instead of PEM', { id: 'neu', signatureCerts: [join(good.dir, 'signature.cert.pem')], cipherCerts: [pem(good.cipher.cert)] }, 'ERR_USAGE'],
        ['registered to another mailbox', { id: 'neu', signatureCerts: [pem(ag.signature.cert)], cipherCerts: [pem(good.cipher.cert)] }, 'ERR_USAGE'],
        ['no cipher certificate for a new mailbox', { id: 'neu', signatureCerts: [pem(good.signature.cert)] }, 'ERR_USAGE'],
        ['bad id', { id: '../etc', signatureCerts: [pem(good.signature.cert)], cipherCerts: [pem(good.cipher.cert)] }, 'ERR_USAGE'],
        ['unknown field', { id: 'neu', signatureCerts: [pem(good.signature.cert)], cipherCerts: [pem(good.cipher.cert)], disabled: false }, 'ERR_USAGE'],
        ['endpoint with credentials', { id: 'neu', endpointUrl: 'http://u:p@127.0.0.1:9/osci', signatureCerts: [pem(good.signature.cert)], cipherCerts: [pem(good.cipher.cert)] }, 'ERR_USAGE'],
      ];
      for (const [what, body, code] of cases) {
        const r = await api('/mailboxes', { method: 'POST', body: JSON.stringify(body) });
        const j = (await r.json()) as { error: string; message: string };
        expect(r.status, what).to.equal(400);
        expect(j.error, `${what}: ${j.message}`).to.equal(code);
      }
      const notJson = await api('/mailboxes', { method: 'POST', body: '{"id": ' });
      expect(notJson.status).to.equal(400);
      expect(((await notJson.json()) as { error: string }).error).to.equal('ERR_USAGE');
      expect(await server.store.getParticipant('neu')).to.equal(undefined);
      expect(await server.store.findCertificate(certificateSha256Hex(good.cipher.cert))).to.equal(undefined);

      // The CLI maps the refusal to the table's exit code: untrusted → 1.
      writeFileSync(join(root, 'foreign.pem'), pem(foreign.signature.certificate));
      const r = await mailbox('add', '--id', 'neu', '--signature-cert', join(root, 'foreign.pem'), '--cipher-cert', join(good.dir, 'cipher.cert.pem'));
      expect(r.code, r.err).to.equal(1);
      expect(r.err).to.match(/ERR_CERT_UNTRUSTED/);
      const missing = await mailbox('add', '--id', 'neu', '--signature-cert', join(root, 'no-such.pem'));
      expect(missing.code).to.equal(2);
    });

    it('show reports the certificates with validity; an unknown mailbox exits 1', async () => {
      const r = await mailbox('show', '--id', 'stadt-lemgo', '--json');
      expect(r.code, r.err).to.equal(0);
      const j = JSON.parse(r.out) as { id: string; state: string; certificates: Array<{ usage: string; state: string; notAfter: string; daysToExpiry: number; subject: string }> };
      expect(j.id).to.equal('stadt-lemgo');
      expect(j.state).to.equal('active');
      expect(j.certificates.map((c) => `${c.usage}:${c.state}`)).to.have.members(['signature:valid', 'cipher:valid']);
      for (const c of j.certificates) {
        expect(c.subject).to.match(/CN=stadt-lemgo/);
        expect(c.daysToExpiry).to.equal(Math.floor((Date.parse(c.notAfter) - Date.now()) / DAY));
      }
      const text = await mailbox('show', '--id', 'stadt-lemgo');
      expect(text.out).to.match(/State\s+active/);
      const unknown = await mailbox('show', '--id', 'niemand');
      expect(unknown.code).to.equal(1);
      expect(unknown.err).to.match(/ERR_NOT_FOUND/);
      expect((await api('/mailboxes/niemand')).status).to.equal(404);
    });

    it('disable: no new deliveries, gone from the directory, waiting mail still fetched by the owner; a new cipher certificate re-enables', async () => {
      const lippe = await testIdentity('kreis-lippe');
      const waiting = await send(ag, lippe.cipher.cert, 'vor der Abschaltung');
      expect(waiting.feedback[0]?.code).to.equal('0800');

      const r = await mailbox('disable', '--id', 'kreis-lippe', '--json');
      expect(r.code, r.err).to.equal(0);
      const j = JSON.parse(r.out) as { id: string; state: string; revokedCipherCertificates: string[] };
      expect(j).to.deep.equal({ id: 'kreis-lippe', state: 'disabled', revokedCipherCertificates: [certificateSha256Hex(lippe.cipher.cert)] });

      expect((await fetch(`${server.url}/directory/kreis-lippe`)).status).to.equal(404);
      let refused: unknown;
      try {
        await send(ag, lippe.cipher.cert, 'nach der Abschaltung');
      } catch (e) {
        refused = e;
      }
      expect(String((refused as Error | undefined)?.message)).to.match(/9707/);
      // Its owner authenticates by signature certificate: the waiting message is still delivered.
      expect(await fetchAll(lippe)).to.deep.equal([waiting.messageId]);

      const shown = JSON.parse((await mailbox('show', '--id', 'kreis-lippe', '--json')).out) as { state: string; certificates: Array<{ usage: string; state: string; revoked?: string }> };
      expect(shown.state).to.equal('disabled');
      expect(shown.certificates.map((c) => `${c.usage}:${c.state}`)).to.have.members(['signature:valid', 'cipher:revoked']);
      const listed = JSON.parse((await mailbox('list', '--json')).out) as { mailboxes: Array<{ id: string; state: string }> };
      expect(listed.mailboxes.find((m) => m.id === 'kreis-lippe')?.state).to.equal('disabled');
      // Disabling twice changes nothing.
      const again = JSON.parse((await mailbox('disable', '--id', 'kreis-lippe', '--json')).out) as { revokedCipherCertificates: string[] };
      expect(again.revokedCipherCertificates).to.deep.equal([]);

      const renewed = await issue('kreis-lippe-neu');
      const add = await mailbox('add', '--id', 'kreis-lippe', '--cipher-cert', join(renewed.dir, 'cipher.cert.pem'), '--json');
      expect(add.code, add.err).to.equal(0);
      expect((JSON.parse(add.out) as { state: string }).state).to.equal('active');
      const dir = (await (await fetch(`${server.url}/directory/kreis-lippe`)).json()) as { cipherCertificates: Array<{ fingerprint: string }> };
      expect(dir.cipherCertificates.map((c) => c.fingerprint)).to.deep.equal([certificateSha256Hex(renewed.cipher.cert)]);
    });
  });

  describe('certificate expiry visibility', () => {
    async function metricsOf(url: string): Promise<Map<string, number>> {
      const text = await (await fetch(`${url}/metrics`)).text();
      const out = new Map<string, number>();
      for (const line of text.split('\n')) {
        const m = /^amtsbote_certificate_days_to_expiry\{(.*)\} (\S+)$/.exec(line);
        if (m) out.set(m[1] as string, Number(m[2]));
      }
      return out;
    }

    it('a gauge per certificate with days to expiry, and a start-up warning for current certificates expiring within the warning period', async () => {
      const soon = await issue('bald-ablaufend', { notAfter: new Date(Date.now() + 10 * DAY) });
      const gone = await issue('abgelaufen-2', { notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - 2 * DAY) });
      const participants = [
        { id: 'bald-ablaufend', signatureCerts: [join(soon.dir, 'signature.cert.pem')], cipherCerts: [join(soon.dir, 'cipher.cert.pem')] },
        { id: 'abgelaufen-2', signatureCerts: [join(gone.dir, 'signature.cert.pem')], cipherCerts: [join(gone.dir, 'cipher.cert.pem')] },
      ];
      const cap = capturingLogger();
      const s = await startServer(baseConfig(pkiDir, join(root, 'data-expiry'), { participants }), { log: cap.log });
      try {
        const warnings = cap.lines().filter((l) => l.level === 40 && typeof l.participant === 'string');
        expect(warnings.map((w) => `${String(w.participant)}/${String(w.usage)}/${String(w.msg)}`)).to.have.members([
          'bald-ablaufend/signature/certificate expires soon; rotate it (amtsbote certs rotate)',
          'bald-ablaufend/cipher/certificate expires soon; rotate it (amtsbote certs rotate)',
          'abgelaufen-2/signature/certificate has expired',
          'abgelaufen-2/cipher/certificate has expired',
        ]);
        const soonWarning = warnings.find((w) => w.participant === 'bald-ablaufend' && w.usage === 'cipher');
        expect(soonWarning).to.include({ fingerprint: certificateSha256Hex(soon.cipher.cert), days: 9, warnDays: 30 });

        const g = await metricsOf(s.url);
        const key = (participant: string, usage: string, cert: X509Certificate, current = true) =>
          `participant="${participant}",usage="${usage}",fingerprint="${certificateSha256Hex(cert)}",current="${String(current)}"`;
        expect(g.get(key('bald-ablaufend', 'cipher', soon.cipher.cert))).to.be.within(9.9, 10);
        expect(g.get(key('abgelaufen-2', 'signature', gone.signature.cert))).to.be.within(-2.1, -1.9);
        expect(g.get(key(OWN_PARTICIPANT, 'cipher', intermediary.cipher.cert))).to.be.above(300);
        expect(g.get(key(OWN_PARTICIPANT, 'signature', intermediary.signature.cert))).to.be.above(300);
        expect(g.get(key('stadt-lemgo', 'cipher', (await testIdentity('stadt-lemgo')).cipher.cert))).to.be.above(300);
      } finally {
        await s.stop();
      }

      // certificateWarnDays is configurable: with 5 days only the expired ones warn.
      const cap2 = capturingLogger();
      const s2 = await startServer(baseConfig(pkiDir, join(root, 'data-expiry'), { participants, certificateWarnDays: 5 }), { log: cap2.log });
      await s2.stop();
      const w2 = cap2.lines().filter((l) => l.level === 40 && typeof l.participant === 'string');
      expect(w2.map((w) => String(w.participant))).to.deep.equal(['abgelaufen-2', 'abgelaufen-2']);
    });

    it('revoked certificates are not reported; after disable and renewal the mailbox has one current certificate per usage', async () => {
      const g = await metricsOf(server.url);
      expect(g.size).to.be.greaterThan(0);
      // The main server's gauge was set at start-up; refreshes happen every 6 h, so check the readings directly.
      const { readCertificateExpiry } = await import('../../gateway/cert-expiry.ts');
      const readings = await readCertificateExpiry(server.store, server.identity);
      const lippe = readings.filter((r) => r.participant === 'kreis-lippe');
      // kreis-lippe: old cipher certificate revoked by the disable, the renewed one and the signature certificate count.
      expect(lippe.map((r) => `${r.usage}:${String(r.current)}`)).to.have.members(['signature:true', 'cipher:true']);
      const revoked = certificateSha256Hex((await testIdentity('kreis-lippe')).cipher.cert);
      expect(readings.some((r) => r.fingerprint === revoked)).to.equal(false);
    });
  });
});

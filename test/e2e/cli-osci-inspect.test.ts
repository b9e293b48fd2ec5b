/**
 * `amtsbote osci inspect` end to end: the real CLI process on the reference library's messages (transport and
 * content decryption, ClientSignatures with the senders' certificates, attachments, the trust marking) and on a
 * response with process cards that we encode ourselves. Exit codes from the error table: 0 / 1 / 2.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createCertificate } from '../../crypto/devpki.ts';
import { encodeMessage } from '../../protocol/envelope/index.ts';
import type { ProcessCardBundle } from '../../protocol/model.ts';
import { REPO_ROOT, requireShared, shared } from '../helpers/env.ts';
import { CAPTURED_SENDERS } from '../helpers/reference.ts';

const CLI = join(REPO_ROOT, 'bin', 'amtsbote.js');
const PIN = { AMTSBOTE_TEST_PIN: '123456' };
function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, 'osci', 'inspect', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const C = (f: string) => shared('osci-reference', 'certs', f);
const M = (f: string) => shared('osci-reference', 'messages', f);
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface Report {
  ok: boolean;
  type: string;
  transport: { encrypted: boolean; opened: boolean; recipient?: string; error?: { code: string } };
  messageIds: Array<{ base64: string; text?: string }>;
  subject?: string;
  controlBlock?: Record<string, string | number>;
  signature: { present: boolean; block?: string; valid?: boolean; trusted?: boolean; note?: string; signer?: string; signedAttachments?: string[]; error?: { code: string } };
  attachments: Array<{ name: string; size: number; sha256: string }>;
  contentContainers: Array<{
    id?: string;
    encrypted: boolean;
    signatureValid: boolean;
    signatures: Array<{ valid: boolean; trusted: boolean; signer?: string; note?: string }>;
    contents: Array<{ kind: string; name?: string; size: number; sha256?: string; text?: string }>;
  }>;
  undecryptedContent: Array<{ id?: string; code: string }>;
  processCards: Array<{ messageId: string; creation?: string; reception?: string; subject?: string; inspections: number }>;
}

const json = (r: { out: string; err: string }): Report => {
  try {
    return JSON.parse(r.out) as Report;
  } catch {
    throw new Error(`no JSON on stdout; stderr: ${r.err}`);
  }
};

const SENDER = CAPTURED_SENDERS;

describe('amtsbote osci inspect (CLI)', function () {
  this.timeout(120_000);
  let dir: string;
  before(function () {
    requireShared(this);
    dir = mkdtempSync(join(tmpdir(), 'amtsbote-cli-inspect-'));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  const manager = ['--key', C('osci_manager_cipher_4096.p12')];
  const bob = ['--key', C('bob_cipher_4096.p12')];

  it('03_storeDelivery: transport and content decrypted, both signatures verified with Alice’s certificate, attachment and contents listed', () => {
    const r = cli([...manager, ...bob, '--pin-env', 'AMTSBOTE_TEST_PIN', '--cert', C('alice_signature_4096.cer'), '--json', M('03_storeDelivery.wire.mime')], PIN);
    expect(r.code, r.err).to.equal(0);
    const j = json(r);
    expect(j.ok).to.equal(true);
    expect(j.type).to.equal('storeDelivery');
    expect(j.transport).to.include({ encrypted: true, opened: true });
    expect(j.transport.recipient).to.contain('OSCI-Manager Cipher 4096');
    expect(j.messageIds).to.deep.equal([{ base64: 'b3NjaS1qYXZhLW9yYWNsZS1tc2dpZC0wMDAx', text: 'osci-java-oracle-msgid-0001' }]);
    expect(j.subject).to.equal('osci-java-oracle storeDelivery');
    expect(j.controlBlock).to.deep.equal({ sequenceNumber: 0, challenge: '1slMaMEEzhu4zA==' });
    expect(j.signature).to.include({ present: true, block: 'ClientSignature', valid: true, trusted: true });
    expect(j.signature.signer).to.contain('Alice Signature 4096');
    expect(j.signature.signedAttachments).to.deep.equal(['attachment1.txt']);
    expect(j.attachments).to.have.length(1);
    expect(j.attachments[0]).to.include({ name: 'attachment1.txt', size: 66 });
    const plain = readFileSync(M('03_storeDelivery.plain.mime'));
    const at = plain.indexOf('Content-Length: 66\r\n\r\n') + 'Content-Length: 66\r\n\r\n'.length;
    expect(j.attachments[0]?.sha256).to.equal(sha(plain.subarray(at, at + 66)));
    expect(j.contentContainers).to.have.length(1);
    const c = j.contentContainers[0]!;
    expect(c).to.include({ id: 'contentcontainer0', encrypted: true, signatureValid: true });
    expect(c.signatures).to.have.length(1);
    expect(c.signatures[0]).to.include({ valid: true, trusted: true });
    expect(c.signatures[0]?.signer).to.contain('Alice Signature 4096');
    expect(c.contents[0]).to.deep.equal({ kind: 'base64', size: 65, text: 'Hello Bob, this is a Base64Content from Alice (osci-java-oracle).' });
    expect(c.contents[1]).to.deep.equal({ kind: 'attachment', name: 'attachment1.txt', size: 38, sha256: sha('Attachment payload from Alice to Bob.\n') });
    expect(j.undecryptedContent).to.deep.equal([]);
  });

  it('the same as text', () => {
    const r = cli([...manager, ...bob, '--pin-env', 'AMTSBOTE_TEST_PIN', '--cert', C('alice_signature_4096.cer'), M('03_storeDelivery.wire.mime')], PIN);
    expect(r.code, r.err).to.equal(0);
    expect(r.out).to.match(/^Message:\s+storeDelivery$/m);
    expect(r.out).to.match(/^MessageId:\s+b3NjaS1qYXZhLW9yYWNsZS1tc2dpZC0wMDAx \(osci-java-oracle-msgid-0001\)$/m);
    expect(r.out).to.match(/^ClientSignature: VALID .*Alice Signature 4096.*\[trusted: given --cert\]$/m);
    expect(r.out).to.match(/^ {2}attachment1\.txt {2}66 bytes {2}sha256 [0-9a-f]{64}$/m);
    expect(r.out).to.contain('Hello Bob, this is a Base64Content from Alice');
    expect(r.out).to.match(/^ {2}attachment attachment1\.txt {2}38 bytes/m);
    expect(r.out).to.match(/^Result:\s+OK$/m);
  });

  for (const [name, who] of Object.entries(SENDER)) {
    it(`${name}: ClientSignature verifies with ${who}’s certificate`, () => {
      const r = cli([...manager, '--pin-env', 'AMTSBOTE_TEST_PIN', '--cert', C(`${who}_signature_4096.cer`), '--json', M(`${name}.wire.mime`)], PIN);
      expect(r.code, r.err).to.equal(0);
      const j = json(r);
      expect(j.signature).to.include({ valid: true, trusted: true });
      expect(j.signature.signer?.toLowerCase()).to.contain(`${who} signature 4096`);
      expect(j.transport.encrypted).to.equal(!name.startsWith('06'));
    });
  }

  it('without --cert: verified with the carried certificate and marked as not trusted (exit 0)', () => {
    const r = cli([...manager, '--pin-env', 'AMTSBOTE_TEST_PIN', '--json', M('04_fetchDelivery.wire.mime')], PIN);
    expect(r.code, r.err).to.equal(0);
    const j = json(r);
    expect(j.signature).to.include({ valid: true, trusted: false, note: 'verified with the certificate carried in the message, not trusted' });
    const t = cli([...manager, '--pin-env', 'AMTSBOTE_TEST_PIN', M('04_fetchDelivery.wire.mime')], PIN);
    expect(t.out).to.contain('[verified with the certificate carried in the message, not trusted]');
  });

  it('with a --cert that is not the signer’s: still marked not trusted, exit 1', () => {
    const r = cli([...manager, '--pin-env', 'AMTSBOTE_TEST_PIN', '--cert', C('bob_signature_4096.cer'), '--json', M('02_getMessageId.wire.mime')], PIN);
    expect(r.code).to.equal(1);
    expect(json(r).signature).to.include({ valid: true, trusted: false });
  });

  it('without the intermediary’s key the transport is not opened (exit 1); without Bob’s key the content is listed as not opened (exit 0)', () => {
    const locked = cli(['--json', M('03_storeDelivery.wire.mime')]);
    expect(locked.code).to.equal(1);
    const l = json(locked);
    expect(l.ok).to.equal(false);
    expect(l.transport).to.include({ encrypted: true, opened: false });
    expect(l.transport.error?.code).to.equal('ERR_TRANSPORT_KEY_UNKNOWN');
    const r = cli([...manager, '--pin-env', 'AMTSBOTE_TEST_PIN', '--cert', C('alice_signature_4096.cer'), '--json', M('03_storeDelivery.wire.mime')], PIN);
    expect(r.code, r.err).to.equal(0);
    const j = json(r);
    expect(j.contentContainers).to.deep.equal([]);
    expect(j.undecryptedContent.map((u) => [u.id, u.code])).to.deep.equal([['encdata_0', 'ERR_DECRYPT']]);
  });

  it('a tampered GCM tag: ERR_DECRYPT, exit 1', () => {
    const wire = Buffer.from(readFileSync(M('02_getMessageId.wire.mime')));
    const end = wire.lastIndexOf('\r\n--MIME_boundary_');
    wire[end - 1] = (wire[end - 1] as number) ^ 1;
    const f = join(dir, 'tampered.mime');
    writeFileSync(f, wire);
    const r = cli([...manager, '--pin-env', 'AMTSBOTE_TEST_PIN', '--json', f], PIN);
    expect(r.code).to.equal(1);
    expect(json(r).transport.error?.code).to.equal('ERR_DECRYPT');
  });

  it('unreadable input exits 2 with the error code on stderr; so do a missing file and mismatched --pin-env', () => {
    const f = join(dir, 'junk.mime');
    writeFileSync(f, 'MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello');
    const r = cli([f]);
    expect(r.code).to.equal(2);
    expect(r.err).to.match(/ERR_MIME_MALFORMED/);
    expect(cli([join(dir, 'missing.mime')]).code).to.equal(2);
    const pins = cli([...manager, ...bob, '--pin-env', 'A', '--pin-env', 'B', '--pin-env', 'C', M('01_initDialog.wire.mime')], { A: '1', B: '2', C: '3' });
    expect(pins.code).to.equal(2);
    expect(pins.err).to.match(/ERR_USAGE/);
  });

  it('one --pin-env per --key pairs up in order', () => {
    const r = cli([...manager, ...bob, '--pin-env', 'P1', '--pin-env', 'P2', '--json', M('03_storeDelivery.wire.mime')], { P1: '123456', P2: '123456' });
    expect(r.code, r.err).to.equal(0);
    expect(json(r).contentContainers).to.have.length(1);
  });

  it('a response with process cards (PEM key and certificate files)', async () => {
    const mk = (cn: string) => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
      const cert = createCertificate({ subject: { CN: cn }, publicKey, signingKey: privateKey, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000), keyUsage: ['digitalSignature', 'keyEncipherment'] });
      return { key: privateKey, cert };
    };
    const im = mk('Test Intermediary Signature');
    const client = mk('Test Client Cipher');
    writeFileSync(join(dir, 'client.key.pem'), client.key.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(join(dir, 'client.cert.pem'), client.cert.toString());
    writeFileSync(join(dir, 'im.cert.pem'), im.cert.toString());
    const msgId = Buffer.from('msg-0042').toString('base64');
    const card = (subject: string, reception?: string): ProcessCardBundle => ({
      messageId: msgId,
      processCard: { recentModification: '2026-01-15T10:03:00Z', creation: { kind: 'plain', time: '2026-01-15T10:00:00Z' }, ...(reception ? { reception: { kind: 'plain', time: reception } } : {}), subject },
      inspectionReport: [],
    });
    const enc = await encodeMessage(
      {
        type: 'responseToFetchProcessCard',
        controlBlock: { conversationId: '4712', sequenceNumber: 1, response: 'OUx6dGlESlhQeTB6', challenge: 'SW50ZXJtZWRBMg==' },
        feedback: [{ lang: 'de', code: '0801', text: 'Auftrag ausgeführt, Dialog weiterhin geöffnet.' }],
        selection: { by: 'messageId', messageIds: [msgId] },
        processCardBundles: [card('Klage'), card('Klage', '2026-01-15T10:03:00Z')],
        certificates: [],
      },
      { signer: im, encryptFor: client.cert },
    );
    const chunks: Buffer[] = [];
    for await (const ch of enc.stream as Readable) chunks.push(ch as Buffer);
    const f = join(dir, 'response.mime');
    writeFileSync(f, Buffer.concat(chunks));
    const r = cli(['--key', join(dir, 'client.key.pem'), '--cert', join(dir, 'client.cert.pem'), '--cert', join(dir, 'im.cert.pem'), '--json', f]);
    expect(r.code, r.err).to.equal(0);
    const j = json(r);
    expect(j.type).to.equal('responseToFetchProcessCard');
    expect(j.signature).to.include({ block: 'SupplierSignature', valid: true, trusted: true });
    expect(j.processCards).to.deep.equal([
      { messageId: 'msg-0042', recentModification: '2026-01-15T10:03:00Z', creation: '2026-01-15T10:00:00Z', subject: 'Klage', inspections: 0 },
      { messageId: 'msg-0042', recentModification: '2026-01-15T10:03:00Z', creation: '2026-01-15T10:00:00Z', reception: '2026-01-15T10:03:00Z', subject: 'Klage', inspections: 0 },
    ]);
    const t = cli(['--key', join(dir, 'client.key.pem'), '--cert', join(dir, 'im.cert.pem'), f]);
    expect(t.out).to.match(/^ProcessCard: MessageId msg-0042, .*received 2026-01-15T10:03:00Z, subject "Klage", 0 inspection\(s\)$/m);
  });
});

/**
 * The mailbox agent end to end against the real intermediary (in-process, as test/e2e/intermediary.test.ts):
 * ag-lemgo sends two messages to stadt-lemgo; the agent (`buildAgent` from a configuration, as `amtsbote agent`
 * does) fetches, decrypts, routes by the XJustiz file number and delivers to a hot folder (watched by a
 * concurrent reader process that must never see a partial folder), to an HTTP DMS double (Idempotency-Key, HMAC,
 * multipart content) and to a real SMTP server on 127.0.0.1 (smtp-server, STARTTLS + AUTH; headers checked, no
 * confidential content). Reception is acknowledged, a second round delivers nothing twice, and a folder dropped
 * into the outgoing hot folder is sent over OSCI with its result file written beside it.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import type { MailboxAgent } from '../../adapters/agent.ts';
import { parseAgentConfig } from '../../adapters/config.ts';
import { IDEMPOTENCY_HEADER, SIGNATURE_HEADER } from '../../adapters/http/dms.ts';
import { verifyDmsSignature } from '../../adapters/http/verify.ts';
import { writeDeliveryFolder, type MessageMeta } from '../../adapters/inbox.ts';
import { createCertificate } from '../../crypto/devpki.ts';
import { buildAgent } from '../../gateway/cli/agent.ts';
import { silentLogger } from '../../gateway/log.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { sealContent } from '../../protocol/envelope/index.ts';
import { clientFor, devConfig, testIdentity, testLogger, testPki, type TestIdentity } from '../helpers/devpki.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const SECRET = 'e2e-dms-secret-0123456789abcdef';
const SMTP_USER = 'amtsbote';
const SMTP_PASS = 'smtp-pass-e2e';
const CONFIDENTIAL = 'VERTRAULICH: Der Betroffene hat am 3. März die Zahlung verweigert.';

interface Part {
  name: string;
  filename: string;
  data: Buffer;
}

function parseMultipart(body: Buffer, contentType: string): Part[] {
  const boundary = /boundary=([^;]+)/.exec(contentType)?.[1];
  if (!boundary) throw new Error('no boundary');
  const sep = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let pos = body.indexOf(sep);
  while (pos >= 0) {
    const start = pos + sep.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const next = body.indexOf(sep, start);
    const chunk = body.subarray(start + 2, next - 2);
    const headEnd = chunk.indexOf('\r\n\r\n');
    const head = chunk.subarray(0, headEnd).toString();
    parts.push({ name: /name="([^"]+)"/.exec(head)?.[1] ?? '', filename: /filename="([^"]+)"/.exec(head)?.[1] ?? '', data: chunk.subarray(headEnd + 4) });
    pos = next;
  }
  return parts;
}

/** Test TLS certificate for 127.0.0.1 (subjectAltName iPAddress) from a throw-away CA. */
function tlsFor127(): { caPem: string; keyPem: string; certPem: string } {
  const ca = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const leaf = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const now = Date.now();
  const caCert = createCertificate({ subject: { CN: 'amtsbote e2e smtp CA' }, publicKey: ca.publicKey, signingKey: ca.privateKey, notBefore: new Date(now - 3600_000), notAfter: new Date(now + 86400_000), basicConstraints: { ca: true }, keyUsage: ['keyCertSign', 'cRLSign'] });
  const san = Buffer.from([0x30, 0x06, 0x87, 0x04, 127, 0, 0, 1]);
  const cert = createCertificate({
    subject: { CN: '127.0.0.1' },
    publicKey: leaf.publicKey,
    issuer: { certificate: caCert, key: ca.privateKey },
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 86400_000),
    keyUsage: ['digitalSignature', 'keyEncipherment'],
    extraExtensions: [{ oid: '2.5.29.17', critical: false, value: san }],
  });
  return { caPem: caCert.toString(), keyPem: leaf.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), certPem: cert.toString() };
}

/** A reader in its own process: lists the export folder in a tight loop and checks every visible folder is complete. */
const READER = `
const fs = require('fs'), path = require('path');
const [dir, stop] = process.argv.slice(1);
let checks = 0; const seen = new Set(); const bad = [];
function check() {
  for (const n of fs.readdirSync(dir)) {
    if (n.startsWith('.')) continue;
    const f = path.join(dir, n);
    let meta;
    try { meta = JSON.parse(fs.readFileSync(path.join(f, 'message.json'), 'utf8')); } catch (e) { bad.push(n + ': message.json ' + (e.code || e.message)); continue; }
    for (const need of ['process-card.xml', 'inspection-report.json', ...meta.attachments.map((a) => a.name)]) {
      let st; try { st = fs.statSync(path.join(f, need)); } catch (e) { bad.push(n + ': ' + need + ' missing'); continue; }
      const a = meta.attachments.find((x) => x.name === need);
      if (a && st.size !== a.size) bad.push(n + ': ' + need + ' has ' + st.size + ' of ' + a.size + ' bytes');
    }
    seen.add(n); checks++;
  }
}
(function loop() {
  check();
  if (fs.existsSync(stop)) { check(); process.stdout.write(JSON.stringify({ checks, seen: [...seen], bad })); return; }
  setImmediate(loop);
})();
`;

describe('mailbox agent end to end: intermediary → hot folder, HTTP DMS, SMTP; outgoing hot folder → intermediary', function () {
  this.timeout(180_000);
  let server: RunningServer;
  let tmp: string;
  let ag: TestIdentity;
  let stadt: TestIdentity;
  let agent: MailboxAgent;
  let dmsServer: Server;
  let smtp: SMTPServer;
  const dmsRequests: Array<{ key: string | undefined; signatureValid: boolean; parts: Part[] }> = [];
  const dmsImports = new Map<string, number>();
  const mails: Array<{ parsed: ParsedMail; secure: boolean; user: string | undefined; rcpt: string[]; raw: string }> = [];
  let exportDir: string;
  let outgoingDir: string;

  const xjustiz = Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>
<tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005 xmlns:tns="http://www.xjustiz.de">
  <tns:nachrichtenkopf xjustizVersion="3.4.1">
    <tns:aktenzeichen.empfaenger>32 OWi 77/26</tns:aktenzeichen.empfaenger>
    <tns:auswahl_empfaenger><tns:empfaenger.gericht><code>R3201</code></tns:empfaenger.gericht></tns:auswahl_empfaenger>
    <tns:eigeneNachrichtenID>e2e-1</tns:eigeneNachrichtenID>
  </tns:nachrichtenkopf>
  <tns:grunddaten/>
  <tns:schriftgutobjekte/>
</tns:nachricht.gds.uebermittlungSchriftgutobjekte.0005005>`);
  const bescheid = randomBytes(3 * 1024 * 1024 + 17);
  const anlage = randomBytes(40_000);
  let midA: string;
  let midB: string;

  const client = (who: TestIdentity) => clientFor(server, who, tmp);

  before(async () => {
    const pki = await testPki();
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-e2e-adapters-'));
    server = await startServer(devConfig(pki.dir, join(tmp, 'im')), { log: testLogger() });
    [ag, stadt] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo')]);

    dmsServer = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const key = req.headers[IDEMPOTENCY_HEADER] as string | undefined;
        const signatureValid = verifyDmsSignature(body, req.headers[SIGNATURE_HEADER] as string | undefined, Buffer.from(SECRET));
        dmsRequests.push({ key, signatureValid, parts: parseMultipart(body, req.headers['content-type'] ?? '') });
        if (!signatureValid || !key) return void res.writeHead(401).end();
        const first = !dmsImports.has(key);
        if (first) dmsImports.set(key, 1);
        res.writeHead(first ? 201 : 200).end();
      });
    });
    await new Promise<void>((r) => dmsServer.listen(0, '127.0.0.1', r));
    const dmsPort = (dmsServer.address() as { port: number }).port;

    const tls = tlsFor127();
    writeFileSync(join(tmp, 'smtp-ca.pem'), tls.caPem);
    smtp = new SMTPServer({
      key: tls.keyPem,
      cert: tls.certPem,
      authMethods: ['PLAIN', 'LOGIN'],
      logger: false,
      onAuth(auth, _session, cb) {
        if (auth.username === SMTP_USER && auth.password === SMTP_PASS) cb(null, { user: auth.username });
        else cb(new Error('invalid credentials'));
      },
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks);
          void simpleParser(raw).then((parsed) => {
            mails.push({ parsed, secure: session.secure, user: session.user as string | undefined, rcpt: session.envelope.rcptTo.map((r) => r.address), raw: raw.toString('utf8') });
            cb();
          }, cb);
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
    const smtpPort = (smtp.server.address() as { port: number }).port;

    exportDir = join(tmp, 'dms-eingang');
    outgoingDir = join(tmp, 'dms-ausgang');
    mkdirSync(exportDir);
    mkdirSync(outgoingDir);
    const cfg = parseAgentConfig(
      {
        dataDir: 'agent',
        server: server.url,
        pollIntervalSeconds: 1,
        receptionTracking: { intervalSeconds: 0.05 },
        retry: { maxAttempts: 3, baseDelaySeconds: 1, maxDelaySeconds: 2 },
        mailboxes: [{ id: 'stadt-lemgo', identity: join(pki.dir, 'stadt-lemgo'), outgoing: 'dms-ausgang' }],
        adapters: {
          archiv: { type: 'hotfolder', dir: 'dms-eingang' },
          dms: { type: 'http', url: `http://127.0.0.1:${dmsPort}/api/import`, secretEnv: 'DMS_SECRET', timeoutSeconds: 20 },
          ordnungsamt: {
            type: 'smtp',
            host: '127.0.0.1',
            port: smtpPort,
            security: 'starttls',
            auth: { user: SMTP_USER, passEnv: 'SMTP_PASS' },
            ca: ['smtp-ca.pem'],
            from: 'amtsbote@stadt-lemgo.example',
            to: ['ordnungsamt@stadt-lemgo.example'],
          },
        },
        routes: [{ name: 'bussgeld', match: { mailbox: 'stadt-lemgo', fileNumber: '\\bOWi\\b' }, to: ['archiv', 'dms', 'ordnungsamt'] }],
        defaultRoute: ['archiv'],
      },
      tmp,
    );
    agent = await buildAgent(cfg, silentLogger, { env: { DMS_SECRET: SECRET, SMTP_PASS } });
    await agent.recover();
  });

  after(async () => {
    await agent?.close();
    await server?.stop();
    dmsServer?.closeAllConnections();
    await new Promise<void>((r) => (dmsServer ? dmsServer.close(() => r()) : r()));
    await new Promise<void>((r) => (smtp ? smtp.close(() => r()) : r()));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('ag-lemgo sends an OWi message with an XJustiz record and a general enquiry to stadt-lemgo', async () => {
    const a = await sealContent({
      author: ag.signature,
      readers: [stadt.cipher.cert],
      tmpDir: tmp,
      contents: [
        { base64Content: Buffer.from(CONFIDENTIAL) },
        { attachment: { contentId: 'xjustiz_nachricht.xml', size: xjustiz.length, open: () => Readable.from([xjustiz]) } },
        { attachment: { contentId: 'Bescheid+Anlage=1~final.pdf', size: bescheid.length, open: () => Readable.from([bescheid]) } },
        { attachment: { contentId: 'anlage.pdf', size: anlage.length, open: () => Readable.from([anlage]) } },
        { attachment: { contentId: 'ANLAGE.pdf', size: 3, open: () => Readable.from([Buffer.from('abc')]) } },
      ],
    });
    midA = (await client(ag).storeDelivery({ addresseeCipher: stadt.cipher.cert, subject: 'Bußgeldverfahren 32 OWi 77/26', contentPackage: a.contentPackage, certificates: a.certificates, attachments: a.attachments })).messageId;
    await a.dispose();
    const b = await sealContent({ author: ag.signature, readers: [stadt.cipher.cert], tmpDir: tmp, contents: [{ attachment: { contentId: 'anfrage.pdf', size: anlage.length, open: () => Readable.from([anlage]) } }] });
    midB = (await client(ag).storeDelivery({ addresseeCipher: stadt.cipher.cert, subject: 'Allgemeine Anfrage', contentPackage: b.contentPackage, certificates: b.certificates, attachments: b.attachments })).messageId;
    await b.dispose();
  });

  it('the agent fetches both, routes them, delivers every job, and no partial export folder is ever visible', async () => {
    const stop = join(tmp, 'reader.stop');
    const reader = spawn(process.execPath, ['-e', READER, exportDir, stop], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    reader.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const done = new Promise<void>((r) => reader.on('exit', () => r()));
    const round = await agent.runOnce();
    writeFileSync(stop, '');
    await done;

    expect(round.polls).to.have.length(1);
    expect(round.polls[0]!.error).to.equal(undefined);
    expect(round.polls[0]!.stored.sort()).to.deep.equal([midA, midB].sort());
    const outcomes = round.jobs.map((j) => `${j.job.adapter}:${j.job.messageId === midA ? 'A' : 'B'}:${j.outcome}`).sort();
    expect(outcomes).to.deep.equal(['archiv:A:ok', 'archiv:B:ok', 'dms:A:ok', 'ordnungsamt:A:ok']);

    const seen = JSON.parse(out) as { checks: number; seen: string[]; bad: string[] };
    expect(seen.bad, 'a partial folder was visible').to.deep.equal([]);
    expect(seen.seen).to.have.length(2);
    expect(seen.checks).to.be.greaterThan(0);
  });

  it('the hot folder holds one complete folder per message: XJustiz record, safe attachment names, process card XML, inspection report, message.json', () => {
    const folders = readdirSync(exportDir).filter((n) => !n.startsWith('.'));
    expect(folders).to.have.length(2);
    const metas = folders.map((f) => ({ f, meta: JSON.parse(readFileSync(join(exportDir, f, 'message.json'), 'utf8')) as MessageMeta }));
    const a = metas.find((m) => m.meta.messageId === midA)!;
    expect(a.meta.route).to.deep.equal({ rule: 'bussgeld', adapters: ['archiv', 'dms', 'ordnungsamt'] });
    expect(a.meta.xjustiz).to.include({ file: 'xjustiz_nachricht.xml', messageType: '0005005', recipientCourt: 'R3201' });
    expect(a.meta.xjustiz?.fileNumbers).to.deep.equal(['32 OWi 77/26']);
    expect(a.meta.verification.allValid).to.equal(true);
    const dir = join(exportDir, a.f);
    const names = readdirSync(dir).sort();
    expect(names).to.deep.equal(['ANLAGE_2.pdf', 'Bescheid_Anlage_1_final.pdf', 'anlage.pdf', 'inspection-report.json', 'message.json', 'process-card.json', 'process-card.xml', 'text.txt', 'xjustiz_nachricht.xml'].sort());
    expect(sha(readFileSync(join(dir, 'Bescheid_Anlage_1_final.pdf')))).to.equal(sha(bescheid));
    expect(readFileSync(join(dir, 'ANLAGE_2.pdf'), 'utf8')).to.equal('abc');
    expect(readFileSync(join(dir, 'xjustiz_nachricht.xml')).equals(xjustiz)).to.equal(true);
    expect(a.meta.attachments.find((x) => x.name === 'Bescheid_Anlage_1_final.pdf')?.contentId).to.equal('Bescheid+Anlage=1~final.pdf');
    const card = readFileSync(join(dir, 'process-card.xml'), 'utf8');
    expect(card).to.contain('ProcessCardBundle').and.to.contain('Creation').and.to.contain('Forwarding');
    expect(JSON.parse(readFileSync(join(dir, 'inspection-report.json'), 'utf8'))).to.be.an('array').with.length.greaterThan(0);
    const b = metas.find((m) => m.meta.messageId === midB)!;
    expect(b.meta.route).to.deep.equal({ rule: 'default', adapters: ['archiv'] });
  });

  it('the HTTP DMS received one signed multipart POST keyed by the MessageId with the same content', () => {
    expect(dmsRequests).to.have.length(1);
    const r = dmsRequests[0]!;
    expect(r.key).to.equal(midA);
    expect(r.signatureValid).to.equal(true);
    expect(dmsImports.get(midA)).to.equal(1);
    const byName = (n: string) => r.parts.filter((p) => p.name === n);
    expect((JSON.parse(byName('message')[0]!.data.toString()) as MessageMeta).messageId).to.equal(midA);
    expect(byName('xjustiz')[0]!.data.equals(xjustiz)).to.equal(true);
    expect(byName('processCard')[0]!.data.toString()).to.contain('ProcessCardBundle');
    expect(byName('inspectionReport')).to.have.length(1);
    expect(byName('text')[0]!.data.toString()).to.equal(CONFIDENTIAL);
    const att = byName('attachment');
    expect(att.map((p) => p.filename).sort()).to.deep.equal(['ANLAGE_2.pdf', 'Bescheid_Anlage_1_final.pdf', 'anlage.pdf']);
    expect(sha(att.find((p) => p.filename === 'Bescheid_Anlage_1_final.pdf')!.data)).to.equal(sha(bescheid));
  });

  it('the SMTP notification arrived over STARTTLS with authentication, the expected headers, and no confidential content', () => {
    expect(mails).to.have.length(1);
    const m = mails[0]!;
    expect(m.secure, 'STARTTLS').to.equal(true);
    expect(m.user).to.equal(SMTP_USER);
    expect(m.rcpt).to.deep.equal(['ordnungsamt@stadt-lemgo.example']);
    const p = m.parsed;
    expect(p.from?.value[0]?.address).to.equal('amtsbote@stadt-lemgo.example');
    expect(p.subject).to.equal('Neue Nachricht für stadt-lemgo, Az. 32 OWi 77/26: Bußgeldverfahren 32 OWi 77/26');
    expect(p.headers.get('auto-submitted')).to.equal('auto-generated');
    expect(p.headers.get('x-amtsbote-message-id')).to.equal(midA);
    expect(p.messageId).to.match(/^<[0-9a-f]{40}@amtsbote\.invalid>$/);
    expect(p.attachments).to.have.length(0);
    const text = p.text ?? '';
    expect(text).to.contain('ag-lemgo'); // sender
    expect(text).to.contain('32 OWi 77/26'); // file number
    expect(text).to.match(/Eingang:\s+\d{4}-\d{2}-\d{2}T/); // reception time at the intermediary
    expect(text).to.contain(exportDir); // where to find it
    expect(text).to.contain(midA);
    expect(m.raw).to.not.contain('VERTRAULICH');
    expect(m.raw).to.not.contain(Buffer.from(CONFIDENTIAL).toString('base64').slice(0, 40));
    expect(m.raw).to.not.contain(bescheid.subarray(0, 48).toString('base64'));
  });

  it('reception is acknowledged at the intermediary only now, and a second round delivers nothing twice', async () => {
    const d = await client(ag).openDialog();
    const cards = await d.fetchProcessCards({ by: 'messageId', messageIds: [midA, midB] });
    await d.close();
    expect(cards).to.have.length(2);
    for (const c of cards) expect(c.processCard.reception, `reception of ${c.messageId}`).to.not.equal(undefined);
    const again = await agent.runOnce();
    expect(again.polls[0]!.stored).to.deep.equal([]);
    expect(again.jobs).to.deep.equal([]);
    expect(dmsRequests).to.have.length(1);
    expect(mails).to.have.length(1);
  });

  it('outgoing: a dropped folder is sent over OSCI to ag-lemgo and its result file is written beside it; a bad one gets the error', async () => {
    const stellungnahme = randomBytes(70_000);
    const ok = join(outgoingDir, 'antwort-1');
    mkdirSync(ok);
    writeFileSync(join(ok, 'stellungnahme.pdf'), stellungnahme);
    writeFileSync(join(ok, 'send.json'), JSON.stringify({ to: 'ag-lemgo', subject: 'Stellungnahme zu 32 OWi 77/26', text: 'Anbei unsere Stellungnahme.' }));
    const badFolder = join(outgoingDir, 'kaputt');
    mkdirSync(badFolder);
    writeFileSync(join(badFolder, 'send.json'), JSON.stringify({ to: 'ag-lemgo', subject: 'x', files: ['../../etc/passwd'] }));
    mkdirSync(join(outgoingDir, 'noch-nicht-fertig')); // no send.json yet: not picked up

    const round = await agent.runOnce();
    expect(round.queuedOutgoing).to.equal(2);
    // Sent, then waiting for the reception (ag-lemgo has not fetched it yet); the bad folder is parked.
    expect(round.jobs.map((j) => j.outcome).sort()).to.deep.equal(['park', 'wait']);
    const result = JSON.parse(readFileSync(join(outgoingDir, 'antwort-1.result.json'), 'utf8')) as { status: string; messageId: string; receivedAt: string | null; processCard: { creation: string }; processCardXml: string };
    expect(result.status).to.equal('sent');
    expect(result.receivedAt).to.equal(null);
    expect(result.processCard.creation).to.match(/^\d{4}-/);
    expect(result.processCardXml).to.contain(result.messageId);
    const failed = JSON.parse(readFileSync(join(outgoingDir, 'kaputt.result.json'), 'utf8')) as { status: string; error: string };
    expect(failed.status).to.equal('failed');
    expect(failed.error).to.match(/would be refused by courts/);
    expect(existsSync(join(outgoingDir, 'noch-nicht-fertig.result.json'))).to.equal(false);

    // ag-lemgo receives it, signed by stadt-lemgo, with the file intact.
    const inbox = join(tmp, 'ag-inbox');
    mkdirSync(inbox);
    const d = await client(ag).openDialog();
    const got = await d.fetchDelivery({ by: 'messageId', messageId: result.messageId });
    expect(got).to.not.equal(undefined);
    const w = await writeDeliveryFolder({ parent: inbox, response: got!.response, decoded: got!.decoded, readerKeys: [ag.cipher.key], anchors: [], tmpDir: tmp });
    await got!.decoded.dispose();
    await d.close();
    expect(w.meta.subject).to.equal('Stellungnahme zu 32 OWi 77/26');
    expect(w.meta.from[0]).to.contain('stadt-lemgo');
    expect(w.meta.verification.containers[0]?.signatureValid).to.equal(true);
    expect(sha(readFileSync(join(w.folder, 'stellungnahme.pdf')))).to.equal(sha(stellungnahme));
    expect(readFileSync(join(w.folder, 'text.txt'), 'utf8')).to.equal('Anbei unsere Stellungnahme.');

    // Scanned again: nothing is sent twice; the process card now has the reception and the result file says so.
    await sleep(100);
    const third = await agent.runOnce();
    expect(third.queuedOutgoing).to.equal(0);
    expect(third.jobs.map((j) => [j.job.kind, j.outcome])).to.deep.equal([['send', 'ok']]);
    expect(third.jobs[0]!.detail).to.match(/received at \d{4}-/);
    const received = JSON.parse(readFileSync(join(outgoingDir, 'antwort-1.result.json'), 'utf8')) as typeof result & { processCard: { reception: string } };
    expect(received.status).to.equal('received');
    expect(received.receivedAt).to.equal(received.processCard.reception);
    expect(received.processCardXml).to.contain('Reception');
    await sleep(100);
    expect((await agent.runOnce()).jobs, 'the job is done').to.deep.equal([]);
  });

  it('a message the mailbox key cannot open is kept encrypted and delivered to the default route, not dropped', async () => {
    const kreis = await testIdentity('kreis-lippe');
    // Addressed to stadt-lemgo, but the content is encrypted for kreis-lippe only.
    const s = await sealContent({ author: ag.signature, readers: [kreis.cipher.cert], tmpDir: tmp, contents: [{ attachment: { contentId: 'geheim.pdf', size: anlage.length, open: () => Readable.from([anlage]) } }] });
    const mid = (await client(ag).storeDelivery({ addresseeCipher: stadt.cipher.cert, subject: 'Falsch verschlüsselt', contentPackage: s.contentPackage, certificates: s.certificates.filter((c) => c.role !== 'addressee'), attachments: s.attachments })).messageId;
    await s.dispose();
    const round = await agent.runOnce();
    expect(round.polls[0]!.stored).to.deep.equal([mid]);
    expect(round.jobs.map((j) => `${j.job.adapter}:${j.outcome}`)).to.deep.equal(['archiv:ok']);
    const folder = readdirSync(exportDir)
      .filter((n) => !n.startsWith('.'))
      .map((n) => join(exportDir, n))
      .find((f) => (JSON.parse(readFileSync(join(f, 'message.json'), 'utf8')) as MessageMeta).messageId === mid)!;
    const meta = JSON.parse(readFileSync(join(folder, 'message.json'), 'utf8')) as MessageMeta;
    expect(meta.error?.code).to.match(/^ERR_/);
    expect(meta.route?.rule).to.equal('default');
    expect(readdirSync(join(folder, 'encrypted')).sort()).to.include.members(['message.xml', 'parts.json']);
    const parts = JSON.parse(readFileSync(join(folder, 'encrypted', 'parts.json'), 'utf8')) as Array<{ name: string; contentId: string }>;
    expect(parts).to.have.length(1);
    const d = await client(ag).openDialog();
    const cards = await d.fetchProcessCards({ by: 'messageId', messageIds: [mid] });
    await d.close();
    expect(cards[0]?.processCard.reception, 'acknowledged once durably stored').to.not.equal(undefined);
  });
});

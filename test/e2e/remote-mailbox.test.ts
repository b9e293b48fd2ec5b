/**
 * Remote mailboxes (issue 9) with two real `amtsbote serve` processes on 127.0.0.1: A is the central intermediary
 * where stadt-lemgo's and the court's mailboxes live; B is the municipal gateway, configured with stadt-lemgo as a
 * remote mailbox on A (pinned endpoint and certificates). A recording proxy sits between B and A: it lets the test
 * hold a request, play "A is down", and keeps every request B sent for the wire-form comparison with the reference
 * library's captured messages (osci-reference/messages) and the XSDs.
 *
 * Reception semantics (osci-protocol.md §2): the request after a fetchDelivery acknowledges it; B sends it only
 * after the message is stored and written to the hot folder.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SendResult } from '../../adapters/hotfolder/import.ts';
import { writeDeliveryFolder, type MessageMeta } from '../../adapters/inbox.ts';
import type { OsciClient } from '../../adapters/osci/client.ts';
import { initDevPki } from '../../crypto/devpki.ts';
import { loadCertificate, loadPrivateKey, writePkcs12 } from '../../crypto/keys.ts';
import { decryptTransportPayload, sealContent } from '../../protocol/envelope/index.ts';
import { parseMultipartBuffer } from '../../protocol/mime.ts';
import { parseSoap } from '../../protocol/soap-parse.ts';
import { testIdentity, testPki, type TestIdentity } from '../helpers/devpki.ts';
import { REPO_ROOT, requireShared, requireTool, shared } from '../helpers/env.ts';
import { devServerConfig, osciClient, startServerProcess, writeServerConfig, type ServerProcess } from '../helpers/server-process.ts';
import { wireShape, type WireShape } from '../helpers/wire-shape.ts';
import { firstMimePart, validateXsd } from '../helpers/xsd.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Waits until `probe` returns a value (not undefined/false), polling every `everyMs`. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 150): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(everyMs);
  }
}

/** Forwards POSTs to A; records them; can hold the n-th one unanswered; refuses connections while A is "down". */
class RecordingProxy {
  target = '';
  readonly requests: Array<{ body: Buffer; contentType: string }> = [];
  private holdNth?: { n: number; reached: () => void };
  private readonly held: ServerResponse[] = [];
  readonly server: Server;
  url = '';

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** Resolves when the n-th request (1-based, counted from now on) arrives; it is never forwarded. */
  hold(n: number): Promise<void> {
    return new Promise((reached) => (this.holdNth = { n: this.requests.length + n, reached }));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      this.requests.push({ body, contentType: String(req.headers['content-type'] ?? '') });
      if (this.holdNth && this.requests.length === this.holdNth.n) {
        this.held.push(res);
        this.holdNth.reached();
        this.holdNth = undefined;
        return;
      }
      const up = request(`${this.target}${req.url ?? '/osci'}`, { method: req.method, headers: { 'content-type': req.headers['content-type'] ?? '', 'content-length': body.length } }, (r) => {
        res.writeHead(r.statusCode ?? 502, { 'content-type': r.headers['content-type'] ?? 'application/octet-stream' });
        r.pipe(res);
      });
      up.on('error', () => res.destroy()); // A is down: the connection just breaks, as for B talking to A directly
      up.end(body);
    });
  }

  async close(): Promise<void> {
    for (const r of this.held) r.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** An identity of a dev PKI folder. */
async function identityOf(dir: string, id: string): Promise<TestIdentity> {
  const pair = (u: string) => ({ key: loadPrivateKey(join(dir, id, `${u}.key.pem`)), cert: loadCertificate(join(dir, id, `${u}.cert.pem`)) });
  return { id, signature: pair('signature'), cipher: pair('cipher') };
}

/** Message folders in the hot folder, by MessageId. */
function exported(dir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!existsSync(dir)) return out;
  for (const n of readdirSync(dir)) {
    if (n.startsWith('.')) continue;
    const meta = JSON.parse(readFileSync(join(dir, n, 'message.json'), 'utf8')) as MessageMeta;
    out.set(meta.messageId, [...(out.get(meta.messageId) ?? []), n]);
  }
  return out;
}

/** `amtsbote …` as a child process (asynchronous: the proxy lives in this process). */
function runCli(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'amtsbote.js'), ...args], { env: { ...process.env, AMTSBOTE_LOG_LEVEL: 'silent' } });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** B's /metrics value of one series (undefined when absent). */
async function metric(b: ServerProcess, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${b.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('remote mailboxes: B fetches stadt-lemgo from the central intermediary A and sends replies through it', function () {
  this.timeout(300_000);
  let tmp: string;
  let pkiDir: string;
  let pkiBDir: string;
  let bPort: number;
  let a: ServerProcess;
  let b: ServerProcess | undefined;
  let aConfig: string;
  let bConfig: string;
  let ag: TestIdentity;
  let stadt: TestIdentity;
  let im: TestIdentity;
  const proxy = new RecordingProxy();
  let exportDir: string;
  let outDir: string;
  const mids: string[] = [];
  const xjustiz = Buffer.from('<?xml version="1.0" encoding="UTF-8"?><nachricht.gds.uebermittlungSchriftgutobjekte.0005005/>');

  const client = (who: TestIdentity): OsciClient => osciClient(a.osciUrl, who, im, tmp);

  async function courtSends(subject: string, body: Buffer): Promise<string> {
    const s = await sealContent({
      author: ag.signature,
      readers: [stadt.cipher.cert],
      tmpDir: tmp,
      contents: [{ base64Content: Buffer.from(`Zustellung: ${subject}`) }, { attachment: { contentId: 'xjustiz_nachricht.xml', size: xjustiz.length, open: () => Readable.from([xjustiz]) } }, { attachment: { contentId: 'schriftsatz.pdf', size: body.length, open: () => Readable.from([body]) } }],
    });
    try {
      return (await client(ag).storeDelivery({ addresseeCipher: stadt.cipher.cert, subject, contentPackage: s.contentPackage, certificates: s.certificates, attachments: s.attachments })).messageId;
    } finally {
      await s.dispose();
    }
  }

  /** The process card at A, as the sender sees it (fetchProcessCard in an explicit dialog). */
  async function cardAtA(who: TestIdentity, messageId: string) {
    const d = await client(who).openDialog();
    try {
      return (await d.fetchProcessCards({ by: 'messageId', messageIds: [messageId] }))[0];
    } finally {
      await d.close();
    }
  }

  const INTAKE_TOKEN = 'intake-token-0123456789abcdef0123456789';
  // Two workers, as `npm start` runs it: the agent runs in the primary, its metrics join the workers' aggregate.
  const startB = async () => (b = await startServerProcess(bConfig, { args: ['--workers', '2'], env: { B_INTAKE_TOKEN: INTAKE_TOKEN } }));

  before(async function () {
    const pki = await testPki();
    pkiDir = pki.dir;
    tmp = mkdtempSync(join(tmpdir(), 'amtsbote-remote-'));
    [ag, stadt, im] = await Promise.all([testIdentity('ag-lemgo'), testIdentity('stadt-lemgo'), testIdentity('intermediary')]);
    // A: the central intermediary on the test PKI, its mailboxes registered.
    mkdirSync(join(tmp, 'a'));
    aConfig = writeServerConfig(join(tmp, 'a'), devServerConfig(pkiDir, join(tmp, 'a', 'data')));
    a = await startServerProcess(aConfig, { args: ['--workers', '1'] });
    await proxy.listen();
    proxy.target = a.url;
    // B: a gateway with an intermediary identity of its own (another dev PKI); stadt-lemgo's keys are held here.
    const bDir = join(tmp, 'b');
    mkdirSync(bDir);
    const pkiB = await initDevPki(join(bDir, 'pki'), { bits: 2048 });
    pkiBDir = pkiB.dir;
    bPort = await freePort();
    exportDir = join(bDir, 'dms-eingang');
    outDir = join(bDir, 'dms-ausgang');
    mkdirSync(outDir);
    mkdirSync(exportDir); // the DMS share; a missing one is retried (not mounted yet), never created by us
    writeFileSync(join(bDir, 'agent.json'), JSON.stringify({
      dataDir: 'agent',
      intermediaries: {
        zentral: { endpoint: `${proxy.url}/osci`, cipherCert: join(pkiDir, 'intermediary', 'cipher.cert.pem'), signatureCert: join(pkiDir, 'intermediary', 'signature.cert.pem') },
        gateway: { endpoint: `http://127.0.0.1:${bPort}/osci`, cipherCert: join(pkiBDir, 'intermediary', 'cipher.cert.pem'), signatureCert: join(pkiBDir, 'intermediary', 'signature.cert.pem') },
      },
      // kreis-lippe's mailbox is on B's own intermediary: replies to it go there, not to A.
      recipients: {
        'ag-lemgo': { cipherCert: join(pkiDir, 'ag-lemgo', 'cipher.cert.pem') },
        'kreis-lippe': { cipherCert: join(pkiBDir, 'kreis-lippe', 'cipher.cert.pem'), intermediary: 'gateway' },
      },
      trustAnchors: [join(pkiDir, 'ca', 'ca.cert.pem')],
      pollIntervalSeconds: 0.5,
      pollBackoffMaxSeconds: 2,
      receptionTracking: { intervalSeconds: 0.3 },
      intake: { port: 0, tokenEnv: 'B_INTAKE_TOKEN' },
      retry: { maxAttempts: 5, baseDelaySeconds: 0.2, maxDelaySeconds: 1, leaseSeconds: 2 },
      mailboxes: [{ id: 'stadt-lemgo', intermediary: 'zentral', identity: join(pkiDir, 'stadt-lemgo'), outgoing: outDir }],
      adapters: { eingang: { type: 'hotfolder', dir: exportDir } },
      routes: [],
      defaultRoute: ['eingang'],
    }));
    // B trusts A's CA, so stadt-lemgo (whose keys B holds) may send to B's own mailboxes too.
    bConfig = writeServerConfig(bDir, { ...devServerConfig(pkiB.dir, join(bDir, 'data')), port: bPort, trustAnchors: [join(pkiDir, 'ca', 'ca.cert.pem')], agent: join(bDir, 'agent.json'), logLevel: 'info' });
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await proxy.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('B fetches the court’s message, writes it to its hot folder, and only then acknowledges it at A; killed before the acknowledgement, it delivers the message once after a restart', async () => {
    const pdf = randomBytes(50_000);
    mids.push(await courtSends('Klage 12 C 1000/26', pdf));
    // B's first poll: initDialog (1), fetchDelivery (2) answered with the message, then the acknowledging request (3).
    const held = proxy.hold(3);
    await startB();
    await held;
    const folders = exported(exportDir);
    expect(folders.get(mids[0]!), `in the hot folder before the acknowledgement\n${b!.output()}`).to.have.length(1);
    const dir = join(exportDir, folders.get(mids[0]!)![0]!);
    expect(sha(readFileSync(join(dir, 'schriftsatz.pdf')))).to.equal(sha(pdf));
    expect(readFileSync(join(dir, 'process-card.xml'), 'utf8')).to.contain('Creation');
    expect((await cardAtA(ag, mids[0]!))?.processCard.reception, 'A has recorded no reception yet').to.equal(undefined);

    await b!.kill();
    await startB();
    const card = await until('reception at A', async () => (await cardAtA(ag, mids[0]!))?.processCard.reception);
    expect(card).to.not.equal(undefined);
    expect(exported(exportDir).get(mids[0]!), 'exactly one folder after the restart').to.have.length(1);
    await until('B logs the repeated fetch', () => /fetched again; already stored/.test(b!.output()));
  });

  it('a reply dropped into B’s outgoing folder reaches the court on A; its result file carries A’s process card with the reception once the court fetched it', async () => {
    const pdf = randomBytes(30_000);
    const folder = join(outDir, 'antwort-1');
    mkdirSync(folder);
    writeFileSync(join(folder, 'stellungnahme.pdf'), pdf);
    writeFileSync(join(folder, 'send.json'), JSON.stringify({ to: 'ag-lemgo', subject: 'Stellungnahme zu 12 C 1000/26', text: 'Anbei die Stellungnahme der Stadt.' }));
    const resultFile = join(outDir, 'antwort-1.result.json');
    const read = () => (existsSync(resultFile) ? (JSON.parse(readFileSync(resultFile, 'utf8')) as SendResult) : undefined);
    const sent = await until('result file', () => read());
    expect(sent.status, JSON.stringify(sent)).to.equal('sent');
    expect(sent.receivedAt).to.equal(null);
    expect(sent.processCard?.creation).to.match(/^\d{4}-/);
    await sleep(1000);
    expect(read()?.status, 'no reception while the court has not fetched it').to.equal('sent');

    // The court fetches it from A; the next request of its dialog acknowledges the reception.
    const d = await client(ag).openDialog();
    const got = await d.fetchDelivery({ by: 'messageId', messageId: sent.messageId as string });
    expect(got).to.not.equal(undefined);
    const inbox = join(tmp, 'court-inbox');
    mkdirSync(inbox);
    const w = await writeDeliveryFolder({ parent: inbox, response: got!.response, decoded: got!.decoded, readerKeys: [ag.cipher.key], anchors: [], tmpDir: tmp });
    await got!.decoded.dispose();
    await d.close();
    expect(w.meta.verification.containers[0]?.signatureValid).to.equal(true);
    expect(w.meta.from[0]).to.contain('stadt-lemgo');
    expect(sha(readFileSync(join(w.folder, 'stellungnahme.pdf')))).to.equal(sha(pdf));

    const received = await until('result with reception', () => (read()?.status === 'received' ? read() : undefined));
    const atA = await cardAtA(stadt, sent.messageId as string);
    const reception = atA?.processCard.reception;
    expect(reception && 'time' in reception ? reception.time : undefined).to.equal(received.receivedAt);
    expect(received.processCardXml).to.contain('Reception');
  });

  it('with A down B backs off and recovers by itself when A returns; nothing is lost or duplicated', async () => {
    const failing = 'amtsbote_agent_poll_failures_in_row{mailbox="stadt-lemgo",via="zentral"}';
    await a.stop();
    const logBefore = b!.output().length;
    await until('three failed polls in a row', async () => ((await metric(b!, failing)) ?? 0) >= 3, 30_000, 200);
    const waits = [...b!.output().slice(logBefore).matchAll(/"nextPollInMs":(\d+)[^\n]*poll failed; backing off/g)].map((m) => Number(m[1]));
    expect(waits.length).to.be.at.least(3);
    // interval·2^(n−1) with equal jitter: the third wait is at least twice the first's upper bound would allow.
    expect(waits[2]!, `waits ${waits.join(', ')}`).to.be.greaterThan(waits[0]!);
    expect(Math.max(...waits)).to.be.at.most(2000);

    a = await startServerProcess(aConfig, { args: ['--workers', '1'] }); // same data folder and keys, another port
    proxy.target = a.url;
    mids.push(await courtSends('Beschluss 12 C 1000/26', randomBytes(10_000)), await courtSends('Ladung 12 C 1000/26', randomBytes(10_000)));
    for (const m of mids) await until(`reception of ${m} at A`, async () => (await cardAtA(ag, m))?.processCard.reception);
    const folders = exported(exportDir);
    expect([...folders.keys()].sort()).to.deep.equal([...mids].sort());
    for (const m of mids) expect(folders.get(m), m).to.have.length(1);
    // The gauge is reset when B's poll ends, just after the request by which A recorded the reception.
    await until('failures in a row back to 0', async () => (await metric(b!, failing)) === 0, 10_000, 100);
    expect(await metric(b!, 'amtsbote_agent_polls_total{mailbox="stadt-lemgo",via="zentral",outcome="error"}')).to.be.at.least(3);
    expect(await metric(b!, 'amtsbote_agent_messages_stored_total{mailbox="stadt-lemgo",via="zentral"}')).to.equal(2);
  });

  it('a reply to a mailbox on another intermediary (kreis-lippe on B itself) goes there, with that intermediary’s process card', async () => {
    const folder = join(outDir, 'an-kreis');
    mkdirSync(folder);
    writeFileSync(join(folder, 'send.json'), JSON.stringify({ to: 'kreis-lippe', subject: 'Amtshilfe', text: 'Bitte um Amtshilfe.' }));
    const resultFile = join(outDir, 'an-kreis.result.json');
    const read = () => (existsSync(resultFile) ? (JSON.parse(readFileSync(resultFile, 'utf8')) as SendResult) : undefined);
    const sent = await until('result file', () => read());
    expect(sent.status, JSON.stringify(sent)).to.equal('sent');
    const kreisB = await identityOf(pkiBDir, 'kreis-lippe');
    const bIm = await identityOf(pkiBDir, 'intermediary');
    const d = await osciClient(b!.osciUrl, kreisB, bIm, tmp).openDialog();
    const got = await d.fetchDelivery({ by: 'messageId', messageId: sent.messageId as string });
    expect(got, 'kreis-lippe finds it at B').to.not.equal(undefined);
    await got!.decoded.dispose();
    await d.close();
    const received = await until('received', () => (read()?.status === 'received' ? read() : undefined));
    expect(received.receivedAt).to.match(/^\d{4}-/);
    expect(await cardAtA(stadt, sent.messageId as string), 'the sender has no such message at A').to.equal(undefined);
  });

  it('the HTTP intake: a DMS posts a reply, the same Idempotency-Key again sends nothing twice, and the status shows A’s reception', async () => {
    const intake = await until('intake URL in B’s log', () => /"url":"(http:\/\/127\.0\.0\.1:\d+)","msg":"outgoing intake listening"/.exec(b!.output())?.[1]);
    const pdf = randomBytes(20_000);
    const form = () => {
      const f = new FormData();
      f.append('order', JSON.stringify({ to: 'ag-lemgo', subject: 'Antwort per HTTP', text: 'Aus dem DMS.' }));
      f.append('file', new Blob([pdf]), 'bescheid.pdf');
      return f;
    };
    const post = (headers: Record<string, string>, body: FormData = form()) => fetch(`${intake}/outgoing/stadt-lemgo`, { method: 'POST', headers, body });
    const auth = { authorization: `Bearer ${INTAKE_TOKEN}` };
    expect((await post({ 'idempotency-key': 'dms-4711' })).status, 'no token').to.equal(401);
    expect((await post({ ...auth, 'idempotency-key': 'dms-4711', authorization: 'Bearer wrong-token-0123456789abcdef0123456789' })).status).to.equal(401);
    const badName = new FormData();
    badName.append('order', JSON.stringify({ to: 'ag-lemgo', subject: 'x' }));
    badName.append('file', new Blob([pdf]), 'Bescheid ä.pdf');
    expect((await post({ ...auth, 'idempotency-key': 'dms-bad' }, badName)).status, 'a name courts refuse').to.equal(400);
    const noKey = await post(auth);
    expect(noKey.status).to.equal(400);
    const first = await post({ ...auth, 'idempotency-key': 'dms-4711' });
    expect(first.status, await first.clone().text()).to.equal(202);
    const again = await post({ ...auth, 'idempotency-key': 'dms-4711' });
    expect(again.status, 'the same key is accepted once').to.equal(200);
    const status = async () => (await (await fetch(`${intake}/outgoing/stadt-lemgo/dms-4711`, { headers: auth })).json()) as SendResult;
    const sent = await until('sent', async () => ((await status()).status === 'sent' ? status() : undefined));
    const d = await client(ag).openDialog();
    const got = await d.fetchDelivery({ by: 'messageId', messageId: sent.messageId as string });
    await got!.decoded.dispose();
    await d.close();
    const received = await until('received', async () => ((await status()).status === 'received' ? status() : undefined));
    expect(received.receivedAt).to.match(/^\d{4}-/);
    expect(readdirSync(outDir).filter((n) => n.startsWith('dms-'))).to.deep.equal(['dms-4711', 'dms-4711.result.json']);
  });

  it('amtsbote send reaches a court on an intermediary without directory (pinned endpoint and certificates, --to-cert, PKCS#12 keys with --pin-file)', async () => {
    // stadt-lemgo's keys as PKCS#12 files; the PIN comes from a file (a container secret), never from the command line.
    const ids = join(tmp, 'p12-ids');
    mkdirSync(join(ids, 'stadt-lemgo'), { recursive: true });
    for (const usage of ['signature', 'cipher'] as const) writeFileSync(join(ids, 'stadt-lemgo', `${usage}.p12`), writePkcs12(stadt[usage].key, stadt[usage].cert, [], 'geheim-123', { iterations: 2000 }));
    writeFileSync(join(tmp, 'pin.txt'), 'geheim-123\n');
    const r = await runCli([
      'send', '--endpoint', `${proxy.url}/osci`,
      '--intermediary-cipher', join(pkiDir, 'intermediary', 'cipher.cert.pem'), '--intermediary-signature', join(pkiDir, 'intermediary', 'signature.cert.pem'),
      '--as', 'stadt-lemgo', '--identity-root', ids, '--pin-file', join(tmp, 'pin.txt'), '--trust-anchor', join(pkiDir, 'ca', 'ca.cert.pem'),
      '--to', 'ag-lemgo', '--to-cert', join(pkiDir, 'ag-lemgo', 'cipher.cert.pem'), '--subject', 'Rückfrage 12 C 1000/26', '--text', 'Bitte um Fristverlängerung.', '--json',
    ]);
    expect(r.code, r.err).to.equal(0);
    const messageId = (JSON.parse(r.out) as { messageId: string }).messageId;
    const d = await client(ag).openDialog();
    const got = await d.fetchDelivery({ by: 'messageId', messageId });
    expect(got, 'the court finds it at A').to.not.equal(undefined);
    await got!.decoded.dispose();
    await d.close();
    // Without the PIN file the keys stay closed; with an untrusted pinned certificate nothing is sent.
    const noPin = await runCli(['send', '--endpoint', `${proxy.url}/osci`, '--intermediary-cipher', join(pkiDir, 'intermediary', 'cipher.cert.pem'), '--intermediary-signature', join(pkiDir, 'intermediary', 'signature.cert.pem'), '--as', 'stadt-lemgo', '--identity-root', ids, '--to', 'ag-lemgo', '--to-cert', join(pkiDir, 'ag-lemgo', 'cipher.cert.pem'), '--subject', 'x', '--text', 'y']);
    expect(noPin.code).to.not.equal(0);
    expect(noPin.err).to.match(/--pin-env VAR or --pin-file FILE/);
    const halfPinned = await runCli(['send', '--endpoint', `${proxy.url}/osci`, '--as', 'stadt-lemgo', '--identity-root', pkiDir, '--to', 'ag-lemgo', '--subject', 'x', '--text', 'y']);
    expect(halfPinned.err).to.match(/--endpoint, --intermediary-cipher and --intermediary-signature go together/);
  });

  it('amtsbote config check reads the pinned certificates: B’s configuration passes, a signature certificate pinned as a cipher certificate does not', async () => {
    const file = join(tmp, 'b', 'agent.json');
    const ok = await runCli(['config', 'check', file]);
    expect(ok.code, ok.err).to.equal(0);
    const cfg = JSON.parse(readFileSync(file, 'utf8')) as { recipients: Record<string, { cipherCert: string }> };
    cfg.recipients['ag-lemgo'] = { cipherCert: join(pkiDir, 'ag-lemgo', 'signature.cert.pem') };
    writeFileSync(join(tmp, 'b', 'agent-bad.json'), JSON.stringify(cfg));
    const bad = await runCli(['config', 'check', join(tmp, 'b', 'agent-bad.json')]);
    expect(bad.code).to.equal(2);
    expect(bad.err).to.match(/recipients\.ag-lemgo/);
  });

  describe('the requests B sent to A have the reference library’s wire form', () => {
    const REFERENCE: Record<string, string> = {
      initDialog: '01_initDialog',
      getMessageId: '02_getMessageId',
      storeDelivery: '03_storeDelivery',
      fetchDelivery: '04_fetchDelivery',
      exitDialog: '04z_exitDialog_bob',
      fetchProcessCard: '05_fetchProcessCard',
    };
    const XSD: Record<string, string> = {
      initDialog: 'soapInitDialog.xsd',
      getMessageId: 'soapGetMessageId.xsd',
      storeDelivery: 'soapStoreDelivery.xsd',
      fetchDelivery: 'soapFetchDelivery.xsd',
      exitDialog: 'soapExitDialog.xsd',
      fetchProcessCard: 'soapFetchProcessCard.xsd',
    };
    /** Attachments differ per message (checked against the MIME parts); reference order is the library's hash order, not significant (XML-DSig §4.3.5). */
    const comparable = (s: WireShape): WireShape => ({ ...s, references: s.references.filter((r) => !r.startsWith('cid:')).sort() });
    const reference = (name: string, kind: 'plain' | 'wire') => wireShape(firstMimePart(readFileSync(shared('osci-reference', 'messages', `${name}.${kind}.mime`))));

    it('transport encryption: every request is soapMessageEncrypted (valid) with the reference’s structure and algorithms, and A’s key opens it', async function () {
      requireShared(this);
      requireTool(this, 'xmllint');
      const key = loadPrivateKey(join(pkiDir, 'intermediary', 'cipher.key.pem'));
      const seen = new Map<string, number>();
      const refWire = reference('04_fetchDelivery', 'wire');
      expect(proxy.requests.length).to.be.greaterThan(10);
      for (const [i, r] of proxy.requests.entries()) {
        const outer = await parseMultipartBuffer(r.body);
        const outerSoap = outer.parts[0]?.body as Buffer;
        const v = validateXsd(outerSoap, 'soapMessageEncrypted.xsd');
        expect(v.valid, `request ${i}: ${v.errors.join('\n')}`).to.equal(true);
        expect(wireShape(outerSoap), `request ${i}`).to.deep.equal(refWire);
        const chunks: Buffer[] = [];
        await decryptTransportPayload(parseSoap(outerSoap), () => Readable.from([outer.parts[1]?.body as Buffer]), [{ key }], new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
        const inner = await parseMultipartBuffer(Buffer.concat(chunks));
        const soap = inner.parts[0]?.body as Buffer;
        const type = parseSoap(soap).type;
        seen.set(type, (seen.get(type) ?? 0) + 1);
        const ref = REFERENCE[type];
        expect(ref, `request ${i} is a ${type}`).to.not.equal(undefined);
        const shape = wireShape(soap);
        expect(comparable(shape), `request ${i}: ${type} against ${ref}`).to.deep.equal(comparable(reference(ref!, 'plain')));
        expect(shape.references.filter((u) => u.startsWith('cid:')).length, `request ${i}: one cid: reference per attachment`).to.equal(inner.parts.length - 1);
        const x = validateXsd(soap, XSD[type]!);
        expect(x.valid, `request ${i}: ${type}: ${x.errors.join('\n')}`).to.equal(true);
      }
      expect([...seen.keys()].sort()).to.deep.equal(Object.keys(REFERENCE).sort());
    });
  });
});

/**
 * Attacking the running intermediary over HTTP (test/security/*, test/faults/*): an in-process server on a fresh
 * data folder, hand-built orders that are signed correctly and then mutated (DOM, text or MIME parts) before they
 * are optionally transport-encrypted, raw POSTs, and the checks every attack shares: the specific OSCI code, a
 * faultstring that is exactly the standard Feedback text (nothing internal leaks), nothing stored, no spill left.
 */
import { expect } from 'chai';
import { randomBytes, type X509Certificate } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { OsciClient } from '../../adapters/osci/client.ts';
import type { CryptoPolicy } from '../../crypto/algorithms.ts';
import { signXml, type SignReference } from '../../crypto/dsig.ts';
import type { Document, Element } from '../../crypto/xml.ts';
import { resolveConfig, type ServerConfig } from '../../gateway/config.ts';
import { createLogger, silentLogger, type Logger } from '../../gateway/log.ts';
import { startServer, type RunningServer } from '../../gateway/server.ts';
import { clientNext } from '../../protocol/dialog.ts';
import { decodeMessage, encryptTransport, sealContent, withSignerCertificate, type SealedContent } from '../../protocol/envelope/index.ts';
import { encodeCid } from '../../protocol/envelope/signatures.ts';
import { feedbackEntry, type FeedbackCode } from '../../protocol/feedback.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import { binaryPartHeaders, newBoundary, soapPartHeaders, writeMultipartBuffer, type MultipartPartInput } from '../../protocol/mime.ts';
import type { OsciMessage, OsciMessageOf } from '../../protocol/model.ts';
import { buildSoap, type BuiltSoap } from '../../protocol/soap-build.ts';
import { clientFor, testIdentity, testPki, type TestIdentity } from './devpki.ts';
import { dropPgSchema, pgSchemaUrl } from './pg.ts';

export interface AttackServer {
  server: RunningServer;
  /** Scratch folder of the test (client spill, crafted files); removed by stop(). */
  tmp: string;
  dataDir: string;
  /** The OSCI endpoint. */
  osci: string;
  stop(): Promise<void>;
}

/** The intermediary in this process on a fresh data folder (SQLite) or a fresh PostgreSQL schema. */
export async function startAttackServer(opts: { backend?: 'sqlite' | 'postgres'; config?: Partial<ServerConfig>; log?: Logger } = {}): Promise<AttackServer> {
  const pki = await testPki();
  const tmp = mkdtempSync(join(tmpdir(), 'amtsbote-attack-'));
  const dataDir = join(tmp, 'data');
  const pgUrl = opts.backend === 'postgres' ? pgSchemaUrl() : undefined;
  const cfg = resolveConfig(
    {
      port: 0,
      dataDir,
      db: pgUrl,
      identityDir: join(pki.dir, 'intermediary'),
      devPki: { enabled: true, dir: pki.dir, bits: 2048 },
      logLevel: 'silent',
    },
    opts.config,
  );
  const level = process.env.AMTSBOTE_TEST_LOG;
  const server = await startServer(cfg, { log: opts.log ?? (level ? createLogger({ level }) : silentLogger) });
  return {
    server,
    tmp,
    dataDir,
    osci: `${server.url}/osci`,
    async stop() {
      await server.stop();
      if (pgUrl) await dropPgSchema(pgUrl);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

export interface Cast {
  ag: TestIdentity;
  stadt: TestIdentity;
  kanzlei: TestIdentity;
  /** Uninvolved in the attacks: control deliveries go to kreis-lippe so that the attacked mailboxes stay empty. */
  kreis: TestIdentity;
  intermediary: TestIdentity;
}

/** The dev identities every attack uses: ag-lemgo sends, stadt-lemgo receives, kanzlei-mustermann is the other party. */
export async function cast(): Promise<Cast> {
  const [ag, stadt, kanzlei, kreis, intermediary] = await Promise.all(['ag-lemgo', 'stadt-lemgo', 'kanzlei-mustermann', 'kreis-lippe', 'intermediary'].map(testIdentity));
  return { ag: ag!, stadt: stadt!, kanzlei: kanzlei!, kreis: kreis!, intermediary: intermediary! };
}

/** An honest client of `who`; `endpoint` defaults to the server's (a proxy's URL puts someone in the middle). */
export function clientOf(srv: AttackServer, who: TestIdentity, endpoint = srv.osci): OsciClient {
  return clientFor(srv.server, who, srv.tmp, { endpoint });
}

export interface Wire {
  contentType: string;
  body: Buffer;
}

export interface HttpAnswer {
  status: number;
  contentType: string | undefined;
  headers: Headers;
  body: Buffer;
}

/** One raw POST; `contentType` undefined sends none. */
export async function post(url: string, wire: Wire | Buffer, contentType?: string, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  const body = Buffer.isBuffer(wire) ? wire : wire.body;
  const ct = Buffer.isBuffer(wire) ? contentType : (contentType ?? wire.contentType);
  const res = await fetch(url, { method: 'POST', headers: { ...(ct !== undefined ? { 'content-type': ct } : {}), ...headers }, body, redirect: 'manual' });
  return { status: res.status, contentType: res.headers.get('content-type') ?? undefined, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Decodes an answer as `who` would: transport-decrypted with its cipher key, SupplierSignature pinned to the server's. */
export function readAnswer(srv: AttackServer, ans: HttpAnswer, who?: TestIdentity): Promise<OsciMessage> {
  return decodeAnswer(ans, { pinned: srv.server.identity.signature.cert, tmpDir: srv.tmp, ...(who ? { who } : {}) });
}

/** readAnswer for a server that is not in this process: `pinned` is its signature certificate. */
export async function decodeAnswer(ans: HttpAnswer, o: { pinned: X509Certificate; tmpDir: string; who?: TestIdentity }): Promise<OsciMessage> {
  const { pinned, who } = o;
  const d = await decodeMessage(ans.body, {
    ...(ans.contentType !== undefined ? { contentType: ans.contentType } : {}),
    transportKeys: who ? [{ key: who.cipher.key, cert: who.cipher.cert }] : [],
    tmpDir: o.tmpDir,
    signature: 'optional',
    trustSigner: async (carried) => {
      if (!carried || carried.fingerprint256 !== pinned.fingerprint256) throw new Error('answer not signed by the intermediary');
      return pinned;
    },
  });
  await d.dispose();
  if (d.message.type !== 'fault' && !d.signature) throw new Error(`${d.message.type} answer without SupplierSignature`);
  return d.message;
}

/** Markers of internal detail that must never reach the wire: stack frames, paths, library and database words. */
const LEAKS = [/\bat\s+\S+\s*\(/, /\/(work|tmp|home|root|usr)\//, /node_modules/, /\.ts\b/, /Error:/, /ENOENT|ENOSPC|EACCES|ECONNREFUSED/, /postgres|sqlite|SQL/i, /xmldom|xml-crypto|undici/i, /stack/i];

export function expectNoLeak(text: string, what = 'answer'): void {
  // Random MIME boundaries (and Content-IDs built like them) are not server detail; a boundary such as
  // MIME_boundary_S1zzS6sqlcj… would otherwise match /SQL/i now and then.
  const scrubbed = text.replace(/MIME_boundary_[A-Za-z0-9+/]+/g, 'MIME_boundary_X');
  for (const re of LEAKS) expect(re.test(scrubbed), `${what} leaks ${re}: ${scrubbed.slice(0, 300)}`).to.equal(false);
}

/**
 * The answer is a soap:Fault with this OSCI code whose faultstring is the standard Feedback text (German unless the
 * order asked for English) and nothing else: neither the internal reason nor any detail leaks.
 */
export async function expectFault(srv: AttackServer, ans: HttpAnswer, code: FeedbackCode | readonly FeedbackCode[], lang: 'de' | 'en' = 'de'): Promise<FeedbackCode> {
  expect(ans.status, 'faults are answered with HTTP 200 (reference-library interop)').to.equal(200);
  const m = await readAnswer(srv, ans);
  expect(m.type, `expected a soap:Fault, got ${m.type}`).to.equal('fault');
  const f = m as OsciMessageOf<'fault'>;
  const codes = typeof code === 'string' ? [code] : code;
  expect(codes, `oscicode ${f.oscicode} (${f.faultString})`).to.include(f.oscicode);
  expect(f.faultString).to.equal(feedbackEntry(f.oscicode as FeedbackCode, lang).text);
  expectNoLeak(ans.body.toString('latin1'), 'fault');
  return f.oscicode as FeedbackCode;
}

/** The order was answered with its own (signed, encrypted) response carrying this Feedback code first. */
export async function expectOrderFeedback(srv: AttackServer, ans: HttpAnswer, who: TestIdentity, code: FeedbackCode): Promise<OsciMessage> {
  const m = await readAnswer(srv, ans, who);
  expect(m.type, `expected a response, got ${m.type} ${m.type === 'fault' ? (m as OsciMessageOf<'fault'>).oscicode : ''}`).to.match(/^responseTo/);
  const fb = (m as { feedback?: Array<{ code: string; text: string }> }).feedback?.[0];
  expect(fb?.code).to.equal(code);
  expect(fb?.text).to.equal(feedbackEntry(code, 'de').text);
  return m;
}

/** Nothing is waiting for `addressee` and `sender` has no process card: the attack stored nothing. */
export async function expectNothingStored(srv: AttackServer, parties: { addressee?: string; sender?: string } = {}): Promise<void> {
  const store = srv.server.store;
  for (const id of [parties.addressee ?? 'stadt-lemgo']) expect((await store.listWaiting(id)).map((m) => m.messageId), `waiting for ${id}`).to.deep.equal([]);
  for (const id of [parties.sender ?? 'ag-lemgo']) expect((await store.listProcessCards(id, {})).map((m) => m.messageId), `process cards of ${id}`).to.deep.equal([]);
  expect(spillLeft(srv), 'temporary files left by the refused request').to.deep.equal([]);
}

/** Files left in the request spill folder and the payload tmp folder (they must be empty between requests). */
export function spillLeft(srv: AttackServer): string[] {
  const out: string[] = [];
  for (const dir of [join(srv.dataDir, 'tmp'), join(srv.dataDir, 'payloads', 'tmp')]) {
    if (!existsSync(dir)) continue;
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else out.push(join(d, e.name));
      }
    };
    walk(dir);
  }
  return out;
}

export const newMessageId = () => randomBytes(24).toString('base64');

/** A storeDelivery of `from` for `to` with content sealed by `from`; the caller disposes `sealed`. */
export async function storeDeliveryOrder(
  from: TestIdentity,
  to: TestIdentity,
  o: { messageId?: string; subject?: string; text?: string; attachments?: Array<{ contentId: string; data: Buffer }>; tmpDir?: string; policy?: CryptoPolicy } = {},
): Promise<{ message: OsciMessageOf<'storeDelivery'>; sealed: SealedContent; attachments: CraftAttachment[] }> {
  const sealed = await sealContent({
    author: from.signature,
    readers: [to.cipher.cert],
    contents: [
      { base64Content: Buffer.from(o.text ?? '<nachricht/>') },
      ...(o.attachments ?? []).map((a) => ({ attachment: { contentId: a.contentId, size: a.data.length, open: () => Readable.from([a.data]) } })),
    ],
    ...(o.tmpDir ? { tmpDir: o.tmpDir } : {}),
    ...(o.policy ? { policy: o.policy } : {}),
  });
  const attachments: CraftAttachment[] = [];
  for (const a of sealed.attachments) {
    const chunks: Buffer[] = [];
    for await (const c of a.open()) chunks.push(c as Buffer);
    attachments.push({ contentId: a.contentId, data: Buffer.concat(chunks) });
  }
  const message: OsciMessageOf<'storeDelivery'> = {
    type: 'storeDelivery',
    controlBlock: clientNext(undefined, 'storeDelivery'),
    desiredLanguages: ['de'],
    qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
    messageId: o.messageId ?? newMessageId(),
    subject: o.subject ?? 'Klage 12 C 1000/26',
    contentPackage: sealed.contentPackage,
    certificates: dedupe([certificate('originator', 'cipher', from.cipher.cert.raw), certificate('addressee', 'cipher', to.cipher.cert.raw), ...sealed.certificates]),
  };
  return { message, sealed, attachments };
}

function dedupe<T extends { role: string; usage: string; id: string }>(certs: T[]): T[] {
  const seen = new Set<string>();
  return certs.filter((c) => (seen.has(`${c.role}:${c.usage}:${c.id}`) ? false : (seen.add(`${c.role}:${c.usage}:${c.id}`), true)));
}

export interface CraftAttachment {
  contentId: string;
  data: Buffer;
}

export interface CraftOptions {
  /** Signs with this key; `signerCert` (default the pair's certificate) is put in the signer's slot. */
  signer: { key: TestIdentity['signature']['key']; cert: X509Certificate };
  signerCert?: X509Certificate;
  attachments?: CraftAttachment[];
  /** What the signature references; default everything buildSoap lists (as encodeMessage signs). */
  references?: (signedIds: string[], attachments: CraftAttachment[], doc: Document) => SignReference[];
  signatureAlgorithm?: string;
  digestAlgorithm?: string;
  policy?: CryptoPolicy;
  /** Edits the DOM before it is signed (a malformed order the builder would refuse, signed correctly). */
  prepare?: (doc: Document) => void;
  /** Edits the signed DOM before serialisation. */
  mutate?: (doc: Document, built: BuiltSoap) => void;
  /** Edits the serialised SOAP text. */
  mutateXml?: (xml: string) => string;
  /** Edits the MIME parts of the (inner) entity. */
  mutateParts?: (parts: MultipartPartInput[]) => MultipartPartInput[];
  /** Transport-encrypt for this cipher certificate (the intermediary's); default plaintext. */
  encryptFor?: X509Certificate;
}

/** Builds and signs an order by hand, applies the mutations and frames it for the wire. */
export async function craft(msg: OsciMessage, o: CraftOptions): Promise<Wire> {
  const atts = o.attachments ?? [];
  // The signer's slot holds `signerCert` (an attacker may put any certificate there): a different one is replaced.
  const slotCert = o.signerCert ?? o.signer.cert;
  const own = 'certificates' in msg ? { ...msg, certificates: msg.certificates.filter((x) => !(x.role === 'originator' && x.usage === 'signature' && !x.der.equals(slotCert.raw))) } : msg;
  const { message, certId } = withSignerCertificate(own as OsciMessage, slotCert);
  const built = buildSoap(message, { attachments: atts.map((a) => a.contentId), signaturePlaceholder: true });
  const byCid = new Map(atts.map((a) => [a.contentId, a]));
  const refs =
    o.references?.(built.signedIds, atts, built.doc) ??
    built.signedIds.map((id): SignReference => (id.startsWith('cid:') ? { uri: encodeCid(id.slice(4)), data: (byCid.get(id.slice(4)) as CraftAttachment).data } : { id }));
  o.prepare?.(built.doc);
  await signXml(built.doc, built.signatureParent as Element, {
    key: o.signer.key,
    references: refs,
    keyInfo: { retrievalMethod: { uri: `#${certId}` } },
    ...(o.signatureAlgorithm ? { signatureAlgorithm: o.signatureAlgorithm } : {}),
    ...(o.digestAlgorithm ? { digestAlgorithm: o.digestAlgorithm } : {}),
    ...(o.policy ? { policy: o.policy } : {}),
  });
  o.mutate?.(built.doc, built);
  let xml = built.xml();
  if (o.mutateXml) xml = o.mutateXml(xml);
  let parts: MultipartPartInput[] = [{ headers: soapPartHeaders(), body: Buffer.from(xml, 'utf8') }, ...atts.map((a) => ({ headers: binaryPartHeaders(a.contentId, a.data.length), body: a.data }))];
  if (o.mutateParts) parts = o.mutateParts(parts);
  return frame(parts, o.encryptFor);
}

/** Frames MIME parts as a message, transport-encrypted for `encryptFor` when given. */
export async function frame(parts: MultipartPartInput[], encryptFor?: X509Certificate): Promise<Wire> {
  if (encryptFor) {
    const enc = encryptTransport(parts, { recipient: encryptFor, boundary: newBoundary() });
    const chunks: Buffer[] = [];
    for await (const c of enc.stream) chunks.push(c as Buffer);
    return { contentType: enc.contentType, body: Buffer.concat(chunks) };
  }
  const w = await writeMultipartBuffer(parts, { includeTopHeaders: true });
  return { contentType: w.headers['Content-Type'] as string, body: w.body };
}

/** A plain SOAP text framed as an OSCI message (for XML attacks that never get as far as a signature). */
export function soapWire(xml: string | Buffer, boundary = newBoundary()): Promise<Wire> {
  return writeMultipartBuffer([{ headers: soapPartHeaders(), body: Buffer.isBuffer(xml) ? xml : Buffer.from(xml, 'utf8') }], { boundary, includeTopHeaders: true }).then((w) => ({ contentType: w.headers['Content-Type'] as string, body: w.body }));
}

/** The intermediary still serves an honest order after the attack. */
export async function expectStillServing(srv: AttackServer, who: TestIdentity): Promise<void> {
  const id = await clientOf(srv, who).getMessageId();
  expect(id).to.be.a('string').and.not.equal('');
}

export interface Recorder {
  /** The proxy's OSCI endpoint. */
  url: string;
  requests: Wire[];
  responses: HttpAnswer[];
  /** When set and returning an answer, the proxy sends that instead of forwarding (a replayed response). */
  answerWith?: (index: number) => HttpAnswer | undefined;
  close(): Promise<void>;
}

/** A man in the middle that records every request and response byte for byte (it cannot read them: they are encrypted). */
export async function recordingProxy(target: string): Promise<Recorder> {
  const rec: Recorder = {
    url: '',
    requests: [],
    responses: [],
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const ch of req) chunks.push(ch as Buffer);
    const wire: Wire = { contentType: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) };
    const index = rec.requests.push(wire) - 1;
    const ans = rec.answerWith?.(index) ?? (await post(target, wire));
    rec.responses.push(ans);
    res.statusCode = ans.status;
    if (ans.contentType !== undefined) res.setHeader('content-type', ans.contentType);
    res.end(ans.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  rec.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/osci`;
  return rec;
}

/**
 * storeDelivery load, in a load-generator process. The client's own RSA work (ClientSignature, transport
 * encryption of the request, transport decryption of the response) would otherwise compete with the server for
 * the same two cores, so it happens outside the measured window: `prepare` encodes the requests exactly as
 * OsciClient.storeDelivery does (implicit dialog, own unique MessageId, which the server accepts), `go` only
 * POSTs them and keeps the raw answers, and `verify` decodes every answer afterwards with OsciClient's checks
 * (pinned SupplierSignature, ControlBlock echo, Feedback 0800, receipt for our MessageId).
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { dedupe } from '../../adapters/osci/client.ts';
import { certificateSha256Hex } from '../../crypto/keys.ts';
import { checkResponse, clientNext, type ControlBlock } from '../../protocol/dialog.ts';
import { decodeMessage, encodeMessage } from '../../protocol/envelope/index.ts';
import { OsciError } from '../../protocol/errors.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import type { OsciMessage } from '../../protocol/model.ts';
import { epochMs, waitUntil, type LoadContext } from './common.ts';
import { ownCpuSecondsSince } from '../sys.ts';

interface Prepared {
  messageId: string;
  controlBlock: ControlBlock;
  contentType: string;
  body: Buffer;
}

interface Answer {
  req: Prepared;
  status?: number;
  contentType?: string;
  body?: Buffer;
  error?: string;
}

export interface GoResult {
  /** Epoch ms of each completed request's end, and its latency in ms (same order). */
  ends: number[];
  latencies: number[];
  /** Epoch ms when this process ran out of prepared requests before the deadline, if it did. */
  exhaustedAt?: number;
  transportErrors: number;
  /** CPU seconds (user + system) this process used during the window, and the window's wall seconds. */
  cpu_s: number;
  wall_s: number;
}

export interface VerifyResult {
  ok: number;
  errors: number;
  errorSamples: string[];
  /** MessageIds whose receipt verified (the fetch scenario fetches them). */
  stored: string[];
}

async function buffer(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export class StoreLoad {
  private readonly pools = new Map<string, Prepared[]>();
  private readonly answers = new Map<string, Answer[]>();
  constructor(private readonly ctx: LoadContext) {}

  /**
   * Encodes `count` storeDelivery requests under `tag`; returns the mean wire size. With `distinct`, only that many
   * are encoded and the pool repeats them (for the floor, which keeps no MessageIds; the intermediary refuses a
   * repeated one).
   */
  async prepare(tag: string, count: number, distinct = count): Promise<{ wire_bytes: number; prepare_s: number }> {
    const t0 = performance.now();
    const { sender, addressee, intermediary } = this.ctx;
    const sealed = await this.ctx.small();
    const pool: Prepared[] = [];
    let bytes = 0;
    for (let i = 0; i < Math.min(count, distinct); i++) {
      const controlBlock = clientNext(undefined, 'storeDelivery');
      const messageId = Buffer.from(`bench-${tag}-${process.pid}-${i}-${randomBytes(9).toString('base64url')}`).toString('base64');
      const msg: OsciMessage = {
        type: 'storeDelivery',
        controlBlock,
        desiredLanguages: ['de'],
        certificates: dedupe([
          certificate('originator', 'cipher', sender.cipher.cert.raw),
          certificate('originator', 'signature', sender.signature.cert.raw),
          certificate('addressee', 'cipher', addressee.cipher.cert.raw),
          ...sealed.certificates,
        ]),
        qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
        messageId,
        subject: `bench ${tag} ${i}`,
        contentPackage: sealed.contentPackage,
      };
      const enc = await encodeMessage(msg, { signer: sender.signature, encryptFor: intermediary.cipher.cert });
      const body = await buffer(enc.stream);
      bytes += body.length;
      pool.push({ messageId, controlBlock, contentType: enc.contentType, body });
    }
    const wire = Math.round(bytes / Math.max(1, pool.length));
    for (let i = pool.length; i < count; i++) pool.push(pool[i % distinct] as Prepared);
    this.pools.set(tag, pool);
    return { wire_bytes: wire, prepare_s: (performance.now() - t0) / 1000 };
  }

  /**
   * From `startAt` (epoch ms) until `startAt + secs`: `concurrency` connections POST the prepared requests back to
   * back, to the intermediary or to `target` (the platform floor, bench/floor/server.ts).
   */
  async go(tag: string, concurrency: number, startAt: number, secs: number, target?: string): Promise<GoResult> {
    const pool = this.pools.get(tag) ?? [];
    this.pools.delete(tag);
    const url = new URL(target ?? this.ctx.osciUrl);
    const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    const answers: Answer[] = [];
    const ends: number[] = [];
    const latencies: number[] = [];
    let transportErrors = 0;
    let next = 0;
    let exhaustedAt: number | undefined;
    const deadline = startAt + secs * 1000;
    await waitUntil(startAt);
    const cpu0 = process.cpuUsage();
    const t0 = epochMs();
    const post = (req: Prepared): Promise<Answer> =>
      new Promise((resolve) => {
        const r = request(
          { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { 'content-type': req.contentType, 'content-length': String(req.body.length) } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ req, status: res.statusCode, contentType: res.headers['content-type'], body: Buffer.concat(chunks) }));
            res.on('error', (e) => resolve({ req, error: e.message }));
          },
        );
        r.on('error', (e) => resolve({ req, error: e.message }));
        r.end(req.body);
      });
    const lane = async () => {
      for (;;) {
        if (epochMs() >= deadline) return;
        const req = pool[next++];
        if (!req) {
          exhaustedAt ??= epochMs();
          return;
        }
        const s = epochMs();
        const a = await post(req);
        const e = epochMs();
        if (a.error !== undefined) transportErrors++;
        answers.push(a);
        ends.push(e);
        latencies.push(e - s);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
    const wall = (epochMs() - t0) / 1000;
    const cpu = ownCpuSecondsSince(cpu0);
    agent.destroy();
    this.answers.set(tag, answers);
    return { ends, latencies, ...(exhaustedAt !== undefined ? { exhaustedAt } : {}), transportErrors, cpu_s: cpu, wall_s: wall };
  }

  /**
   * Decodes and checks every answer of `tag` (after the window). `statusOnly`: the floor's answers, which carry no
   * OSCI message, count when they are HTTP 200 with a body.
   */
  async verify(tag: string, statusOnly = false): Promise<VerifyResult> {
    const answers = this.answers.get(tag) ?? [];
    this.answers.delete(tag);
    const pinned = this.ctx.intermediary.signature.cert;
    const out: VerifyResult = { ok: 0, errors: 0, errorSamples: [], stored: [] };
    const fail = (why: string) => {
      out.errors++;
      if (out.errorSamples.length < 5) out.errorSamples.push(why);
    };
    for (const a of answers) {
      if (a.error !== undefined || a.body === undefined) {
        fail(`transport: ${a.error ?? 'no body'}`);
        continue;
      }
      if (a.status !== 200) {
        fail(`HTTP ${String(a.status)}`);
        continue;
      }
      if (statusOnly) {
        if (a.body.length > 0) out.ok++;
        else fail('empty answer');
        continue;
      }
      try {
        const decoded = await decodeMessage(a.body, {
          contentType: a.contentType,
          transportKeys: [this.ctx.sender.cipher],
          tmpDir: this.ctx.tmpDir,
          signature: 'optional',
          trustSigner: async (carried) => {
            if (!carried || certificateSha256Hex(carried) !== certificateSha256Hex(pinned)) throw new OsciError('ERR_CERT_UNTRUSTED', 'response not signed with the pinned intermediary certificate');
            return pinned;
          },
        });
        try {
          const m = decoded.message;
          if (m.type === 'fault') throw new OsciError('ERR_REMOTE', `soap:Fault ${m.oscicode ?? ''} ${m.faultString}`);
          if (m.type !== 'responseToStoreDelivery') throw new OsciError('ERR_REMOTE', `unexpected ${m.type}`);
          if (!decoded.signature) throw new OsciError('ERR_SIGNATURE_MISSING', 'no SupplierSignature');
          const cb = checkResponse(a.req.controlBlock, m.controlBlock, 'storeDelivery');
          if (!cb.ok) throw cb.error;
          const fb = m.feedback?.[0]?.code;
          if (fb !== '0800') throw new OsciError('ERR_REMOTE', `Feedback ${fb ?? '(none)'}`);
          if (m.processCardBundle?.messageId !== a.req.messageId) throw new OsciError('ERR_REMOTE', 'receipt for another MessageId');
          out.ok++;
          out.stored.push(a.req.messageId);
        } finally {
          await decoded.dispose();
        }
      } catch (e) {
        fail((e as Error).message);
      }
    }
    return out;
  }
}

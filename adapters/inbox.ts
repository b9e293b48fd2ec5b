/**
 * One fetched delivery → one message folder, written durably under a temporary name and renamed into place
 * (readers see all of it or nothing). Used by `amtsbote fetch` and by the mailbox agent's spool.
 *
 * Folder layout:
 *   message.json            MessageMeta (no message text: that stays in text.txt)
 *   xjustiz_nachricht.xml   the XJustiz record, when the message carries one (§12)
 *   <attachments>           court-safe unique names (§13); message.json maps them to their Content-IDs
 *   text.txt                Base64Content/XML contents that are not the XJustiz record
 *   process-card.xml        the ProcessCardBundle as the intermediary sent it (§7)
 *   process-card.json       its summary; inspection-report.json: the InspectionReport
 *   encrypted/              only when the content could not be opened: the transport-decrypted SOAP message
 *                           and the raw MIME parts, so that nothing is lost (reopen with the right key)
 */
import { createHash, type KeyObject, type X509Certificate } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { isCryptoError } from '../crypto/errors.ts';
import { parseXml, serializeXml } from '../crypto/xml.ts';
import { checkCertificate } from '../crypto/x509.ts';
import { openContent, type DecodedMessage } from '../protocol/envelope/index.ts';
import { OsciError, toOsciError } from '../protocol/errors.ts';
import type { OsciMessageOf } from '../protocol/model.ts';
import { buildProcessCardBundle, PROCESS_CARD_PROFILES, type ProcessCardBundle } from '../protocol/processcard.ts';
import { fsyncPath, messageFolderName, safeUniqueName, writeDurable } from './files.ts';
import { isXJustiz, readXJustiz, XJUSTIZ_FILE, type XJustizFields } from './xjustiz.ts';

export interface CardSummary {
  messageId: string;
  subject?: string;
  creation?: string;
  forwarding?: string;
  reception?: string;
  recentModification: string;
  inspections: Array<{ subject: string; math: string; offline: string; online?: string }>;
}

/** Times and inspections of a process card, for people and JSON output. */
export function summariseCard(b: ProcessCardBundle | undefined): CardSummary | undefined {
  if (!b) return undefined;
  const t = (x: { kind: string; time?: string } | undefined) => (x && 'time' in x ? x.time : undefined);
  const pc = b.processCard;
  return {
    messageId: b.messageId,
    subject: pc.subject,
    creation: t(pc.creation as { kind: string; time?: string } | undefined),
    forwarding: t(pc.forwarding as { kind: string; time?: string } | undefined),
    reception: t(pc.reception as { kind: string; time?: string } | undefined),
    recentModification: pc.recentModification,
    inspections: b.inspectionReport.map((i) => ({ subject: i.x509SubjectName, math: i.mathResult, offline: i.offlineResult, online: i.onlineResult?.result })),
  };
}

/** The ProcessCardBundle as XML (order.xsd ProcessCardBundleTemplate), in the profile of its message type. */
export function processCardXml(b: ProcessCardBundle, profile: keyof typeof PROCESS_CARD_PROFILES = 'any'): string {
  const doc = parseXml('<placeholder/>');
  const e = buildProcessCardBundle(doc, b, PROCESS_CARD_PROFILES[profile]);
  doc.replaceChild(e, doc.documentElement as unknown as Parameters<typeof doc.replaceChild>[1]);
  return `<?xml version="1.0" encoding="UTF-8"?>\n${serializeXml(doc)}\n`;
}

const XJUSTIZ_CID = /(^|[/\\])xjustiz_nachricht\.xml$/i;

export interface FileEntry {
  name: string;
  contentId: string;
  size: number;
  sha256: string;
}

export interface AuthorInfo {
  subject: string;
  trusted: boolean;
  errors: string[];
}

/** message.json */
export interface MessageMeta {
  messageId: string;
  mailbox?: string;
  subject?: string;
  /** Subjects of the content authors' signature certificates. */
  from: string[];
  timestamps?: CardSummary;
  /** When this gateway fetched it (ISO 8601). */
  fetchedAt: string;
  verification: {
    allValid: boolean;
    containers: Array<{ signatureValid: boolean; signer?: string }>;
    authors: AuthorInfo[];
  };
  attachments: FileEntry[];
  /** 'text.txt' when the message has text contents. */
  textFile?: string;
  xjustiz?: { file: string; error?: string } & Partial<XJustizFields>;
  /** Set when the content could not be opened; the encrypted message is kept under encrypted/. */
  error?: { code: string; message: string };
  /** The agent's routing decision (rule name and adapters). */
  route?: { rule: string; adapters: string[] };
}

export interface WriteDeliveryOptions {
  /** Folder the message folder is created in. */
  parent: string;
  response: OsciMessageOf<'responseToFetchDelivery'>;
  decoded: DecodedMessage;
  /** Our cipher keys (several during rotation). */
  readerKeys: KeyObject[];
  /** Anchors for the authors' signature certificates (the result is recorded, never a reason to drop). */
  anchors: X509Certificate[];
  tmpDir: string;
  mailbox?: string;
  now?: Date;
  /**
   * Content that cannot be opened (no key fits, tampered): false (default) throws; true writes the folder with
   * `error` set and the encrypted message under encrypted/ (the agent must never drop a message).
   */
  keepUnopenable?: boolean;
  /** Called with the complete metadata before message.json is written (e.g. to record the routing decision). */
  annotate?: (meta: MessageMeta) => void;
}

export interface WrittenDelivery {
  folder: string;
  name: string;
  meta: MessageMeta;
}

async function streamToFile(src: NodeJS.ReadableStream, path: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  src.on('data', (ch: Buffer) => {
    hash.update(ch);
    size += ch.length;
  });
  await pipeline(src, createWriteStream(path, { flags: 'wx' }));
  fsyncPath(path);
  return { size, sha256: hash.digest('hex') };
}

/**
 * Decrypts and verifies one fetched delivery and writes its folder `<parent>/<messageFolderName(id)>`
 * atomically. An existing folder of that name is replaced only by the caller (check first: it usually means
 * the message was already written by an interrupted run).
 */
export async function writeDeliveryFolder(o: WriteDeliveryOptions): Promise<WrittenDelivery> {
  const card = o.response.processCardBundle;
  if (!card?.messageId) throw new OsciError('ERR_SOAP_MALFORMED', 'responseToFetchDelivery without a process card / MessageId');
  const messageId = card.messageId;
  const name = messageFolderName(messageId);
  const folder = join(o.parent, name);
  const work = join(o.parent, `.${name}.part-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const meta: MessageMeta = {
      messageId,
      ...(o.mailbox !== undefined ? { mailbox: o.mailbox } : {}),
      subject: card.processCard.subject,
      from: [],
      timestamps: summariseCard(card),
      fetchedAt: (o.now ?? new Date()).toISOString(),
      verification: { allValid: false, containers: [], authors: [] },
      attachments: [],
    };
    const taken = new Set<string>();
    const authors: AuthorInfo[] = [];
    let opened: Awaited<ReturnType<typeof openContent>> | undefined;
    try {
      opened = await openContent(o.response.contentPackage ?? { encryptedData: [], contentContainers: [] }, {
        readerKey: o.readerKeys,
        attachments: new Map(o.decoded.attachments.map((a) => [a.contentId, () => a.open()])),
        certificates: o.response.certificates,
        tmpDir: o.tmpDir,
        // Keys come from our trust, never from the message: the carried certificate is only checked and recorded.
        trustAuthor: async (carried: X509Certificate | undefined) => {
          if (!carried) throw new OsciError('ERR_SIGNATURE_MISSING', 'content container without author certificate');
          const c = checkCertificate(carried, { usage: 'signature', anchors: o.anchors });
          authors.push({ subject: carried.subject.replace(/\n/g, ', '), trusted: c.errors.length === 0, errors: c.errors.map((e) => e.code) });
          return carried;
        },
      });
    } catch (e) {
      if (!o.keepUnopenable) throw e;
      const err = toOsciError(e);
      meta.error = { code: err.code, message: err.message };
      await keepEncrypted(work, o.decoded);
    }
    if (opened) {
      try {
        const texts: string[] = [];
        let verified = opened.containers.length > 0;
        for (const c of opened.containers) {
          verified &&= c.signatureValid;
          for (const item of c.contents) {
            if (item.kind === 'attachment') {
              // EGVP carries the record as attachments/xjustiz_nachricht.xml (§12): it keeps its well-known name.
              const isRecord = !taken.has(XJUSTIZ_FILE) && XJUSTIZ_CID.test(item.contentId);
              if (isRecord) taken.add(XJUSTIZ_FILE);
              const fname = isRecord ? XJUSTIZ_FILE : safeUniqueName(item.contentId, taken);
              const r = await streamToFile(item.open(), join(work, fname));
              meta.attachments.push({ name: fname, contentId: item.contentId, ...r });
              continue;
            }
            const bytes = item.kind === 'base64' ? item.data : Buffer.from(item.xml, 'utf8');
            // The XJustiz record may come as Base64Content instead of an attachment: keep it as a file.
            if (!meta.xjustiz && !taken.has(XJUSTIZ_FILE) && isXJustiz(bytes)) {
              taken.add(XJUSTIZ_FILE);
              writeDurable(join(work, XJUSTIZ_FILE), bytes);
              meta.xjustiz = { file: XJUSTIZ_FILE };
              continue;
            }
            texts.push(bytes.toString('utf8'));
          }
        }
        verified &&= authors.every((a) => a.trusted);
        meta.verification = {
          allValid: verified,
          containers: opened.containers.map((c) => ({ signatureValid: c.signatureValid, signer: c.signer?.subject.replace(/\n/g, ', ') })),
          authors,
        };
        meta.from = [...new Set(authors.map((a) => a.subject))];
        if (texts.length) {
          const tname = safeUniqueName('text.txt', taken, new Set());
          writeDurable(join(work, tname), texts.join('\n\n'));
          meta.textFile = tname;
        }
      } catch (e) {
        // A content part failing its checks while it is read (e.g. an attachment's GCM tag): keep the message
        // encrypted like an unopenable one. File-system errors are not content errors and propagate.
        if (!o.keepUnopenable || !(e instanceof OsciError || isCryptoError(e))) throw e;
        const err = toOsciError(e);
        meta.error = { code: err.code, message: err.message };
        meta.verification = { allValid: false, containers: [], authors };
        for (const a of meta.attachments) rmSync(join(work, a.name), { force: true });
        meta.attachments = [];
        for (const n of [meta.xjustiz?.file, meta.textFile]) if (n) rmSync(join(work, n), { force: true });
        delete meta.xjustiz;
        delete meta.textFile;
        await keepEncrypted(work, o.decoded);
      } finally {
        await opened.dispose();
      }
    }
    if (!meta.xjustiz) {
      const att = meta.attachments.find((a) => a.name === XJUSTIZ_FILE);
      if (att) meta.xjustiz = { file: att.name };
    }
    if (meta.xjustiz) {
      try {
        Object.assign(meta.xjustiz, readXJustiz(readFileSync(join(work, meta.xjustiz.file))));
      } catch (e) {
        meta.xjustiz.error = toOsciError(e).message;
      }
    }
    writeDurable(join(work, 'process-card.xml'), processCardXml(card, 'delivered'));
    writeDurable(join(work, 'process-card.json'), JSON.stringify(summariseCard(card), null, 2));
    writeDurable(join(work, 'inspection-report.json'), JSON.stringify(card.inspectionReport, null, 2));
    o.annotate?.(meta);
    writeDurable(join(work, 'message.json'), JSON.stringify(meta, null, 2));
    fsyncPath(work);
    if (existsSync(folder)) rmSync(folder, { recursive: true, force: true });
    renameSync(work, folder);
    fsyncPath(o.parent);
    return { folder, name, meta };
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

/** The transport-decrypted SOAP message and its raw MIME parts, for a content we could not open. */
async function keepEncrypted(work: string, decoded: DecodedMessage): Promise<void> {
  const dir = join(work, 'encrypted');
  mkdirSync(dir);
  writeDurable(join(dir, 'message.xml'), serializeXml(decoded.soap.doc));
  const taken = new Set<string>(['message.xml']);
  const parts: Array<{ name: string; contentId: string }> = [];
  for (const a of decoded.attachments) {
    const n = safeUniqueName(a.contentId, taken, new Set());
    await streamToFile(a.open(), join(dir, n));
    parts.push({ name: n, contentId: a.contentId });
  }
  writeDurable(join(dir, 'parts.json'), JSON.stringify(parts, null, 2));
  fsyncPath(dir);
}

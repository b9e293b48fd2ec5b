/**
 * `amtsbote osci inspect`: what an OSCI message holds and whether its signatures verify. Decrypts what the given
 * keys open (transport level and content level, osci-protocol.md §5), verifies the Client/SupplierSignature and
 * every content container signature (§6) against the given certificates — or, when none of them is the signer,
 * against the certificate carried in the message, which is then reported as NOT trusted.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { CryptoError } from '../../crypto/errors.ts';
import { keyMatchesCertificate, loadCertificates, loadPkcs12, loadPrivateKey } from '../../crypto/keys.ts';
import { openContent, openMessage, verifyEnvelope, type OpenedContent, type OpenedMessage } from '../../protocol/envelope/index.ts';
import { signerSlot } from '../../protocol/envelope/signatures.ts';
import { OsciError, toOsciError } from '../../protocol/errors.ts';
import type { OsciMessage, ProcessCardBundle } from '../../protocol/model.ts';
import type { ParsedSoap } from '../../protocol/soap-parse.ts';
import { action, fail, pinFromEnv, printJson } from './run.ts';

const collect = (v: string, acc: string[]) => [...acc, v];

interface LoadedKey {
  file: string;
  key: KeyObject;
  cert?: X509Certificate;
}

/** --pin-env: one applies to every --key; otherwise one per --key, in the same order. */
function loadKeys(files: readonly string[], pinEnvs: readonly string[], certs: readonly X509Certificate[]): LoadedKey[] {
  if (pinEnvs.length > 1 && pinEnvs.length !== files.length) {
    fail(`give one --pin-env for all keys, or one per --key (${files.length} keys, ${pinEnvs.length} --pin-env)`);
  }
  return files.map((file, i) => {
    const pin = pinFromEnv(pinEnvs.length === 1 ? pinEnvs[0] : pinEnvs[i]);
    let p12: { key: KeyObject; certificate: X509Certificate } | undefined;
    try {
      if (pin !== undefined) p12 = loadPkcs12(file, pin);
    } catch (e) {
      // Not a PKCS#12 container: read it as a PEM/DER key below. A wrong PIN is an error.
      if (!(e instanceof CryptoError && /not a PKCS#12 container/.test(e.message))) throw e;
    }
    if (p12) return { file, key: p12.key, cert: p12.certificate };
    const key = loadPrivateKey(file, pin === undefined ? {} : { pin });
    const cert = certs.find((c) => keyMatchesCertificate(key, c));
    return cert ? { file, key, cert } : { file, key };
  });
}

function subject(c: X509Certificate | undefined): string {
  return c ? c.subject.replace(/\n/g, ', ') : '(none)';
}

function sha256Hex(c: X509Certificate): string {
  return c.fingerprint256.replace(/:/g, '').toLowerCase();
}

/** Trust decision for inspection: a given --cert equal to the carried one (trusted), else the carried one (marked). */
class Trust {
  constructor(private readonly certs: readonly X509Certificate[]) {}
  readonly verdicts: Array<{ cert: X509Certificate; trusted: boolean }> = [];

  decide(carried: X509Certificate | undefined): X509Certificate {
    const sameKey = (a: X509Certificate, b: X509Certificate) => {
      try {
        return a.publicKey.equals(b.publicKey);
      } catch {
        return false; // an unreadable carried key matches nothing
      }
    };
    const given = carried ? this.certs.find((c) => c.raw.equals(carried.raw) || sameKey(c, carried)) : undefined;
    if (given) return this.note(given, true);
    if (carried) return this.note(carried, false);
    // No certificate in the message: only an unambiguous --cert can stand in.
    if (this.certs.length === 1) return this.note(this.certs[0] as X509Certificate, true);
    throw new CryptoError('ERR_CERT_UNTRUSTED', 'the message names no signer certificate; give exactly one --cert to verify with');
  }

  trusted(cert: X509Certificate | undefined): boolean {
    return !!cert && this.certs.some((c) => c.raw.equals(cert.raw));
  }

  private note(cert: X509Certificate, trusted: boolean): X509Certificate {
    this.verdicts.push({ cert, trusted });
    return cert;
  }
}

function decodedId(b64: string): string | undefined {
  const s = Buffer.from(b64, 'base64').toString('utf8');
  return /^[\x20-\x7e]+$/.test(s) ? s : undefined;
}

function messageIds(m: OsciMessage): string[] {
  const out: string[] = [];
  const r = m as { messageId?: string; messageIdResponse?: string; selection?: { by: string; messageId?: string; messageIds?: string[] } };
  if (r.messageId) out.push(r.messageId);
  if (r.messageIdResponse) out.push(r.messageIdResponse);
  if (r.selection?.messageId) out.push(r.selection.messageId);
  for (const id of r.selection?.messageIds ?? []) out.push(id);
  return [...new Set(out)];
}

function processCards(m: OsciMessage): ProcessCardBundle[] {
  const r = m as {
    processCardBundle?: ProcessCardBundle;
    processCardBundles?: ProcessCardBundle[];
    requestProcessCardBundle?: ProcessCardBundle;
    replyProcessCardBundle?: ProcessCardBundle;
  };
  return [r.processCardBundle, ...(r.processCardBundles ?? []), r.requestProcessCardBundle, r.replyProcessCardBundle].filter(
    (b): b is ProcessCardBundle => b !== undefined,
  );
}

function ts(t: { kind: string; time?: string } | undefined): string | undefined {
  return t === undefined ? undefined : t.kind === 'plain' ? t.time : `(${t.kind})`;
}

interface Report {
  file: string;
  ok: boolean;
  transport: { encrypted: boolean; opened: boolean; recipient?: string; error?: { code: string; message: string } };
  type: string;
  messageIds: Array<{ base64: string; text?: string }>;
  subject?: string;
  controlBlock?: Record<string, string | number>;
  signature: {
    present: boolean;
    block?: string;
    valid?: boolean;
    trusted?: boolean;
    note?: string;
    signer?: string;
    signerSha256?: string;
    algorithm?: string;
    signedIds?: string[];
    signedAttachments?: string[];
    error?: { code: string; message: string };
  };
  attachments: Array<{ name: string; size: number; sha256: string }>;
  contentContainers: Array<{
    id?: string;
    encrypted: boolean;
    signatureValid: boolean;
    signatures: Array<{ valid: boolean; trusted: boolean; note?: string; signer?: string; algorithm?: string; error?: { code: string; message: string } }>;
    contents: Array<{ kind: string; name?: string; size: number; sha256?: string; text?: string }>;
    error?: { code: string; message: string };
  }>;
  undecryptedContent: Array<{ id?: string; code: string; message: string }>;
  processCards: Array<{ messageId: string; recentModification: string; creation?: string; forwarding?: string; reception?: string; subject?: string; inspections: number }>;
}

const UNTRUSTED_NOTE = 'verified with the certificate carried in the message, not trusted';

async function inspect(file: string, o: { key: string[]; pinEnv: string[]; cert: string[] }): Promise<Report> {
  try {
    if (!statSync(file).isFile()) fail(`${file} is not a file`);
  } catch (e) {
    if (e instanceof OsciError) throw e;
    throw new OsciError('ERR_USAGE', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const certs = o.cert.flatMap((c) => loadCertificates(c));
  const keys = loadKeys(o.key, o.pinEnv, certs);
  const trust = new Trust(certs);
  const work = mkdtempSync(join(tmpdir(), 'amtsbote-inspect-'));
  let opened: OpenedMessage | undefined;
  let content: OpenedContent | undefined;
  try {
    opened = await openMessage(createReadStream(file), {
      transportKeys: keys.map((k) => (k.cert ? { key: k.key, cert: k.cert } : { key: k.key })),
      tmpDir: work,
      keepLocked: true,
    });
    const report: Report = {
      file,
      ok: true,
      transport: { encrypted: opened.transport.encrypted, opened: !opened.transport.locked },
      type: opened.soap.type,
      messageIds: [],
      signature: { present: false },
      attachments: opened.attachments.map((a) => ({ name: a.contentId, size: a.size, sha256: a.sha256.toString('hex') })),
      contentContainers: [],
      undecryptedContent: [],
      processCards: [],
    };
    if (opened.transport.recipient) report.transport.recipient = subject(opened.transport.recipient);
    if (opened.transport.locked) {
      report.ok = false;
      report.transport.error = opened.transport.locked;
      return report;
    }

    let soap: ParsedSoap = opened.soap;
    const slot = signerSlot(soap.type);
    if (slot) {
      const block = slot.side === 'client' ? 'ClientSignature' : 'SupplierSignature';
      const byCid = new Map(opened.attachments.map((a) => [a.contentId, a]));
      try {
        const v = await verifyEnvelope(soap, {
          signature: 'optional',
          trustSigner: async (carried) => trust.decide(carried),
          openAttachment: (cid) => byCid.get(cid)?.open(),
          attachmentIds: opened.attachments.map((a) => a.contentId),
        });
        soap = v.soap; // from here on, read only what the signature covers
        const s = v.signature;
        if (s) {
          const trusted = trust.trusted(s.signer);
          report.signature = {
            present: true,
            block,
            valid: true,
            trusted,
            signer: subject(s.signer),
            signerSha256: sha256Hex(s.signer),
            algorithm: s.algorithm,
            signedIds: s.signedIds,
            signedAttachments: s.cids,
            ...(trusted ? {} : { note: UNTRUSTED_NOTE }),
          };
          if (!trusted && certs.length > 0) report.ok = false;
        }
      } catch (e) {
        const err = toOsciError(e);
        report.signature = { present: true, block, valid: false, error: { code: err.code, message: err.message } };
        report.ok = false;
      }
    }

    const m = soap.message;
    report.type = m.type;
    report.messageIds = messageIds(m).map((b) => {
      const t = decodedId(b);
      return t === undefined ? { base64: b } : { base64: b, text: t };
    });
    const subj = (m as { subject?: string }).subject;
    if (subj !== undefined) report.subject = subj;
    if ('controlBlock' in m) {
      const cb: Record<string, string | number> = {};
      for (const [k, v] of Object.entries(m.controlBlock)) if (v !== undefined) cb[k] = v as string | number;
      report.controlBlock = cb;
    }
    if (m.type === 'fault') report.controlBlock = { faultCode: m.faultCode, faultString: m.faultString, ...(m.oscicode ? { oscicode: m.oscicode } : {}) };
    report.processCards = processCards(m).map((b) => ({
      messageId: decodedId(b.messageId) ?? b.messageId,
      recentModification: b.processCard.recentModification,
      ...(ts(b.processCard.creation) ? { creation: ts(b.processCard.creation) as string } : {}),
      ...(ts(b.processCard.forwarding) ? { forwarding: ts(b.processCard.forwarding) as string } : {}),
      ...(ts(b.processCard.reception) ? { reception: ts(b.processCard.reception) as string } : {}),
      ...(b.processCard.subject !== undefined ? { subject: b.processCard.subject } : {}),
      inspections: b.inspectionReport.length,
    }));

    if (soap.contentPackage) {
      content = await openContent(soap.contentPackage, {
        readerKey: keys.map((k) => k.key),
        attachments: new Map(opened.attachments.map((a) => [a.contentId, () => a.open()])),
        trustAuthor: async (carried) => trust.decide(carried),
        tmpDir: work,
        skipUndecryptable: true,
      });
      report.undecryptedContent = content.undecryptable;
      for (const c of content.containers) {
        const contents: Report['contentContainers'][number]['contents'] = [];
        for (const item of c.contents) {
          if (item.kind === 'base64') {
            const text = item.data.toString('utf8');
            const printable = !/[\x00-\x08\x0b\x0c\x0e-\x1f]/.test(text) && Buffer.from(text, 'utf8').equals(item.data);
            contents.push({ kind: 'base64', size: item.data.length, ...(printable && text.length <= 2000 ? { text } : {}) });
          } else if (item.kind === 'attachment') {
            contents.push({ kind: 'attachment', name: item.contentId, size: item.size, sha256: item.sha256.toString('hex') });
          } else {
            contents.push({ kind: 'xml', size: Buffer.byteLength(item.xml), text: item.xml.slice(0, 2000) });
          }
        }
        const sigs = c.signatures.map((s) => {
          const trusted = trust.trusted(s.signer);
          if (!s.valid || (!trusted && certs.length > 0)) report.ok = false;
          return {
            valid: s.valid,
            trusted,
            ...(s.valid && !trusted ? { note: UNTRUSTED_NOTE } : {}),
            ...(s.signer ? { signer: subject(s.signer) } : s.carried ? { signer: subject(s.carried) } : {}),
            ...(s.algorithm ? { algorithm: s.algorithm } : {}),
            ...(s.error ? { error: s.error } : {}),
          };
        });
        if (c.error) report.ok = false;
        report.contentContainers.push({
          ...(c.id ? { id: c.id } : {}),
          encrypted: c.encrypted,
          signatureValid: c.signatureValid,
          signatures: sigs,
          contents,
          ...(c.error ? { error: c.error } : {}),
        });
      }
    }
    return report;
  } finally {
    await content?.dispose();
    await opened?.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}

function printText(r: Report): void {
  const w = (s: string) => process.stdout.write(`${s}\n`);
  w(`File:        ${r.file}`);
  if (!r.transport.encrypted) w('Transport:   not encrypted');
  else if (r.transport.opened) w(`Transport:   encrypted, decrypted${r.transport.recipient ? ` (for ${r.transport.recipient})` : ''}`);
  else {
    w(`Transport:   encrypted, NOT decrypted: ${r.transport.error?.code} ${r.transport.error?.message}`);
    w(`Result:      FAILED`);
    return;
  }
  w(`Message:     ${r.type}`);
  for (const id of r.messageIds) w(`MessageId:   ${id.base64}${id.text ? ` (${id.text})` : ''}`);
  if (r.subject !== undefined) w(`Subject:     ${r.subject}`);
  if (r.controlBlock) w(`ControlBlock: ${Object.entries(r.controlBlock).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  const s = r.signature;
  if (!s.present) w('Signature:   none');
  else if (s.valid) {
    w(`${s.block}: VALID (${s.algorithm}) signer ${s.signer}${s.trusted ? ' [trusted: given --cert]' : ` [${s.note}]`}`);
    w(`  signed:    ${(s.signedIds ?? []).map((i) => `#${i}`).concat((s.signedAttachments ?? []).map((c) => `cid:${c}`)).join(' ')}`);
  } else w(`${s.block ?? 'Signature'}: INVALID ${s.error?.code}: ${s.error?.message}`);
  if (r.attachments.length) {
    w('Attachments:');
    for (const a of r.attachments) w(`  ${a.name}  ${a.size} bytes  sha256 ${a.sha256}`);
  }
  for (const [i, c] of r.contentContainers.entries()) {
    w(`ContentContainer ${i + 1}${c.id ? ` #${c.id}` : ''} (${c.encrypted ? 'encrypted, decrypted' : 'not encrypted'})`);
    if (c.signatures.length === 0) w('  signature: none');
    for (const sig of c.signatures) {
      if (sig.valid) w(`  signature: VALID (${sig.algorithm}) signer ${sig.signer}${sig.trusted ? ' [trusted: given --cert]' : ` [${sig.note}]`}`);
      else w(`  signature: INVALID ${sig.error?.code}: ${sig.error?.message}${sig.signer ? ` (claimed signer ${sig.signer})` : ''}`);
    }
    for (const item of c.contents) {
      if (item.kind === 'attachment') w(`  attachment ${item.name}  ${item.size} bytes  sha256 ${item.sha256}`);
      else w(`  ${item.kind === 'base64' ? 'Base64Content' : 'XML content'} ${item.size} bytes${item.text !== undefined ? `: ${JSON.stringify(item.text)}` : ''}`);
    }
    if (c.error) w(`  error: ${c.error.code}: ${c.error.message}`);
  }
  for (const u of r.undecryptedContent) w(`Encrypted content${u.id ? ` #${u.id}` : ''}: not opened with the given keys (${u.code})`);
  for (const p of r.processCards) {
    w(`ProcessCard: MessageId ${p.messageId}, modified ${p.recentModification}` +
      `${p.creation ? `, created ${p.creation}` : ''}${p.forwarding ? `, forwarded ${p.forwarding}` : ''}${p.reception ? `, received ${p.reception}` : ''}` +
      `${p.subject !== undefined ? `, subject ${JSON.stringify(p.subject)}` : ''}, ${p.inspections} inspection(s)`);
  }
  w(`Result:      ${r.ok ? 'OK' : 'FAILED'}`);
}

export function registerOsci(program: Command): void {
  const osci = program.command('osci').description('OSCI-Transport 1.2 messages');
  osci
    .command('inspect')
    .description('decrypt what the given keys open, verify every signature, and show what an OSCI message (MIME, as sent over HTTP) holds')
    .argument('<file>', 'OSCI message: the HTTP body, e.g. a captured .wire.mime')
    .option('--key <file>', 'cipher key for transport and content decryption: PKCS#12 (with --pin-env) or PEM/DER (repeatable)', collect, [])
    .option('--pin-env <var>', 'environment variable holding a PIN; given once it applies to every --key, given per --key it pairs up in order', collect, [])
    .option('--cert <file>', 'certificate(s) to verify signatures with (PEM or DER, repeatable)', collect, [])
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      '\nSignatures are verified with a --cert equal to the signer certificate the message names; when none is, with the' +
        '\ncertificate carried in the message, reported as "not trusted" (an error when --cert was given).' +
        '\nExit status: 0 everything present decrypted and verified, 1 something did not, 2 unreadable input.' +
        '\nExample:\n  AMTSBOTE_PIN=123456 amtsbote osci inspect --key osci_manager_cipher_4096.p12 --key bob_cipher_4096.p12 \\' +
        '\n    --pin-env AMTSBOTE_PIN --cert alice_signature_4096.cer 03_storeDelivery.wire.mime',
    )
    .action(
      action(async (file: string, o: { key: string[]; pinEnv: string[]; cert: string[]; json?: boolean }) => {
        const report = await inspect(file, o);
        if (o.json) printJson(report);
        else printText(report);
        return report.ok ? 0 : 1;
      }),
    );
}

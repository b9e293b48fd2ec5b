/** IntermediaryCertificates / NonIntermediaryCertificates header blocks (order.xsd *CertificatesTemplate, §4, §10). */
import { createHash } from 'node:crypto';
import type { Document, Element } from '../../crypto/xml.ts';
import type { Certificate, CertificateRole, CertificateUsage } from '../model.ts';
import { ACTOR_NONE, DS_NS, OSCI_NS } from '../namespaces.ts';
import { Children, el, leafText, nsDecls, reqAttr } from './dom.ts';
import { OsciError } from '../errors.ts';
import type { CertBlockSpec, CertSlot, SlotKey } from './spec.ts';
import { INTERMEDIARY_SLOTS, NON_INTERMEDIARY_SLOTS } from './spec.ts';
import { base64 } from './values.ts';

/** Role part of the reference library's certificate Ids ([J] roles/Role.java: class name lower-cased, authors/readers numbered). */
function idPrefix(role: CertificateRole, index: number): string {
  switch (role) {
    case 'otherAuthor':
      return `author${index}`;
    case 'otherReader':
      return `reader${index}`;
    case 'intermediary':
      return 'intermed';
    default:
      return role;
  }
}

/**
 * Id the reference library gives a certificate element: `<role>_<cipher|signature>_<hex SHA-256 of DER>`,
 * e.g. originator_signature_67505e4c…; `index` numbers other authors/readers (1-based).
 */
export function certificateId(role: CertificateRole, usage: CertificateUsage, der: Buffer, index = 1): string {
  return `${idPrefix(role, index)}_${usage}_${createHash('sha256').update(der).digest('hex')}`;
}

/** Convenience: a Certificate with the reference library's Id. */
export function certificate(role: CertificateRole, usage: CertificateUsage, der: Buffer, index = 1): Certificate {
  return { role, usage, der, id: certificateId(role, usage, der, index) };
}

/** base64 in 76-character lines joined by LF, as [J] writes X509Certificate (keeps the block's C14N digest identical). */
export function base64Lines(der: Uint8Array): string {
  return (Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64').match(/.{1,76}/g) ?? []).join('\n');
}

const key = (c: { usage: CertificateUsage; role: CertificateRole }): SlotKey => `${c.usage}:${c.role}`;

export function isIntermediary(c: Certificate): boolean {
  return c.role === 'intermediary';
}

/** Build one *Certificates block; certificates are written in the template's sequence order. */
export function buildCertificatesBlock(
  doc: Document,
  which: 'IntermediaryCertificates' | 'NonIntermediaryCertificates',
  id: string,
  certs: readonly Certificate[],
  spec: CertBlockSpec | undefined,
  typeName: string,
): Element | undefined {
  if (!spec) {
    if (certs.length > 0) throw new OsciError('ERR_USAGE', `${typeName} carries no ${which}`);
    return undefined;
  }
  checkSlots(certs, spec, which, typeName, 'ERR_USAGE');
  if (certs.length === 0 && spec.block === 'optional') return undefined;
  const slots = which === 'IntermediaryCertificates' ? INTERMEDIARY_SLOTS : NON_INTERMEDIARY_SLOTS;
  const children: Element[] = [];
  for (const s of slots) {
    for (const c of certs) {
      if (key(c) !== key(s)) continue;
      children.push(
        el(doc, OSCI_NS, `osci:${s.name}`, { Id: c.id }, [
          el(doc, DS_NS, 'ds:X509Data', {}, [el(doc, DS_NS, 'ds:X509Certificate', {}, [base64Lines(c.der)])]),
        ]),
      );
    }
  }
  return el(
    doc,
    OSCI_NS,
    `osci:${which}`,
    { ...nsDecls(['ds', 'osci', 'soap', 'xenc', 'xsi']), Id: id, 'soap:actor': ACTOR_NONE, 'soap:mustUnderstand': '1' },
    children,
  );
}

function checkSlots(
  certs: readonly Certificate[],
  spec: CertBlockSpec,
  which: string,
  typeName: string,
  code: 'ERR_USAGE' | 'ERR_SOAP_MALFORMED',
): void {
  const slots = which === 'IntermediaryCertificates' ? INTERMEDIARY_SLOTS : NON_INTERMEDIARY_SLOTS;
  for (const s of slots) {
    const n = certs.filter((c) => key(c) === key(s)).length;
    if (n > 0 && !spec.allowed.includes(key(s))) throw new OsciError(code, `${typeName}: ${s.name} is not allowed`);
    if (n > s.max) throw new OsciError(code, `${typeName}: ${s.name} occurs ${n} times`);
  }
  for (const r of spec.required ?? []) {
    if (!certs.some((c) => key(c) === r)) throw new OsciError(code, `${typeName}: ${which} lacks ${r.replace(':', ' ')} certificate`);
  }
  for (const c of certs) {
    if (!slots.some((s) => key(s) === key(c))) throw new OsciError(code, `${typeName}: no ${which} slot for ${key(c)}`);
  }
}

/** Parse one *Certificates block against the template order and the type's allowed slots. */
export function parseCertificatesBlock(
  block: Element,
  which: 'IntermediaryCertificates' | 'NonIntermediaryCertificates',
  spec: CertBlockSpec,
  typeName: string,
): Certificate[] {
  const slots: readonly CertSlot[] = which === 'IntermediaryCertificates' ? INTERMEDIARY_SLOTS : NON_INTERMEDIARY_SLOTS;
  const c = new Children(block);
  const out: Certificate[] = [];
  for (const s of slots) {
    for (const e of c.many(OSCI_NS, s.name, 0, s.max)) {
      const x = new Children(e);
      const data = x.required(DS_NS, 'X509Data');
      x.end();
      const d = new Children(data);
      const cert = d.required(DS_NS, 'X509Certificate');
      d.end();
      const der = Buffer.from(base64(leafText(cert), `${s.name}/X509Certificate`, true), 'base64');
      out.push({ role: s.role, usage: s.usage, der, id: reqAttr(e, 'Id') });
    }
  }
  c.end();
  checkSlots(out, spec, which, typeName, 'ERR_SOAP_MALFORMED');
  return out;
}

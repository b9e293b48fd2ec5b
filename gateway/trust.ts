/**
 * Trust decisions of the intermediary (security non-negotiable: keys come from trust configuration, never
 * from the message). A certificate carried in a message is accepted as a signer only if it is registered for
 * a participant in the store, or chains to a configured anchor. Every certificate of a message gets an
 * Inspection entry for the process card (osci-protocol.md §7, §10).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { certificateSha256Hex, loadCertificates } from '../crypto/keys.ts';
import { checkCertificate, type CertUsage } from '../crypto/x509.ts';
import { withPolicy, type CryptoPolicy } from '../crypto/algorithms.ts';
import { OsciError } from '../protocol/errors.ts';
import type { Inspection } from '../protocol/processcard.ts';
import type { CertificateRecord, Store } from './store/index.ts';

export interface TrustConfig {
  anchors: X509Certificate[];
  crlFiles: string[];
  trustRegistered: boolean;
  minRsaBits: number;
}

export class Trust {
  readonly policy: CryptoPolicy;
  constructor(
    private readonly store: Store,
    private readonly cfg: TrustConfig,
  ) {
    this.policy = withPolicy({ minRsaBits: cfg.minRsaBits });
  }

  static anchorsFrom(files: string[]): X509Certificate[] {
    return files.flatMap((f) => loadCertificates(f));
  }

  /** CRLs are re-read per check so that a revocation by the admin CLI is picked up without a restart. */
  private crls(): Buffer[] {
    const out: Buffer[] = [];
    for (const f of this.cfg.crlFiles) {
      try {
        out.push(readFileSync(f));
      } catch {
        // A missing CRL leaves OnlineResult absent (indeterminate), it does not block.
      }
    }
    return out;
  }

  check(cert: X509Certificate, usage: CertUsage, at = new Date()) {
    return checkCertificate(cert, { usage, anchors: this.cfg.anchors, at, crls: this.crls(), policy: this.policy });
  }

  /** The registered record of a certificate, if any (by SHA-256 of its DER). */
  registered(cert: X509Certificate): Promise<CertificateRecord | undefined> {
    return this.store.findCertificate(certificateSha256Hex(cert));
  }

  /**
   * Accepts a signer certificate carried in a message: registered (not revoked, within validity) or
   * anchored (chain, validity, key usage, not revoked). Otherwise 9700-class errors.
   */
  async acceptSigner(cert: X509Certificate | undefined, at = new Date()): Promise<{ cert: X509Certificate; record?: CertificateRecord }> {
    if (!cert) throw new OsciError('ERR_SIGNATURE_MISSING', 'the message carries no signature certificate of its signer');
    const record = await this.registered(cert);
    if (record && this.cfg.trustRegistered && record.usage === 'signature') {
      if (record.revoked && record.revoked <= at) throw new OsciError('ERR_CERT_REVOKED', 'signer certificate is revoked');
      if (at < record.notBefore) throw new OsciError('ERR_CERT_NOT_YET_VALID', 'signer certificate is not yet valid');
      if (at > record.notAfter) throw new OsciError('ERR_CERT_EXPIRED', 'signer certificate has expired');
      return { cert, record };
    }
    const c = this.check(cert, 'signature', at);
    const first = c.errors[0];
    if (first) throw new OsciError(first.code, `signer certificate rejected: ${first.message}`);
    return record ? { cert, record } : { cert };
  }

  /** InspectionReport entry of one certificate (mathematical, offline, online via CRL where configured). */
  inspect(cert: X509Certificate, usage: CertUsage, at = new Date()): Inspection {
    const c = this.check(cert, usage, at);
    const insp: Inspection = {
      timestamp: { kind: 'plain', time: at.toISOString() },
      x509SubjectName: c.subject,
      x509IssuerName: c.issuer,
      x509SerialNumber: c.serialNumber,
      certType: c.certType,
      mathResult: c.inspection.mathResult,
      offlineResult: c.inspection.offlineResult,
    };
    if (c.inspection.onlineResult) insp.onlineResult = { result: c.inspection.onlineResult, crl: at.toISOString() };
    return insp;
  }
}

export function derToCert(der: Buffer): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (e) {
    throw new OsciError('ERR_KEY_INVALID', 'unreadable certificate in message', { cause: e });
  }
}

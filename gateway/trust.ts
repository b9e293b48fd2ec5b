/**
 * Trust decisions of the intermediary (security non-negotiable: keys come from trust configuration, never
 * from the message). A certificate carried in a message is accepted as a signer only if it is registered for
 * a participant in the store, or chains to a configured anchor. Every certificate of a message gets an
 * Inspection entry for the process card (osci-protocol.md §7, §10).
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { parseCertificate } from '../crypto/certcache.ts';
import { certificateSha256Hex, loadCertificates } from '../crypto/keys.ts';
import { checkCertificate, type CertificateCheck, type CertUsage } from '../crypto/x509.ts';
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

/** How long a check result is reused (the CRL files are still compared by stat on every check). */
export const CHECK_CACHE_TTL_MS = 60_000;
const CHECK_CACHE_MAX = 1000;

interface CachedCheck {
  result: CertificateCheck;
  /** CRL file state the result was computed with. */
  crlState: string;
  at: number;
  expires: number;
}

/** True when some certificate of the path starts or ends its validity between `a` and `b` (either order). */
function validityBoundaryBetween(path: readonly X509Certificate[], a: number, b: number): boolean {
  const lo = Math.min(a, b);
  const hi = Math.max(a, b);
  return path.some((c) => {
    const from = Date.parse(c.validFrom);
    const to = Date.parse(c.validTo);
    return (from > lo && from <= hi) || (to >= lo && to < hi);
  });
}

export class Trust {
  readonly policy: CryptoPolicy;
  private readonly checks = new Map<string, CachedCheck>();
  private crlCache: { state: string; data: Buffer[] } | undefined;
  constructor(
    private readonly store: Store,
    private readonly cfg: TrustConfig,
  ) {
    this.policy = withPolicy({ minRsaBits: cfg.minRsaBits });
  }

  static anchorsFrom(files: string[]): X509Certificate[] {
    return files.flatMap((f) => loadCertificates(f));
  }

  /** Inode, size and mtime of every CRL file: a revocation by the admin CLI changes it, no restart needed. */
  private crlState(): string {
    return this.cfg.crlFiles
      .map((f) => {
        try {
          const s = statSync(f, { bigint: true });
          return `${s.ino}:${s.size}:${s.mtimeNs}`;
        } catch {
          return '-';
        }
      })
      .join('|');
  }

  /** The CRL files' contents, re-read only when {@link crlState} changed. */
  private crls(state: string): Buffer[] {
    if (this.crlCache?.state === state) return this.crlCache.data;
    const out: Buffer[] = [];
    for (const f of this.cfg.crlFiles) {
      try {
        out.push(readFileSync(f));
      } catch {
        // A missing CRL leaves OnlineResult absent (indeterminate), it does not block.
      }
    }
    this.crlCache = { state, data: out };
    return out;
  }

  /**
   * Chain, validity, usage and CRL check. The result is reused for the same certificate and usage for up to
   * {@link CHECK_CACHE_TTL_MS}, unless a CRL file changed or a certificate of the path starts or ends its
   * validity between the cached and the requested time.
   */
  check(cert: X509Certificate, usage: CertUsage, at = new Date()): CertificateCheck {
    const crlState = this.crlState();
    const key = `${usage}:${createHash('sha256').update(cert.raw).digest('hex')}`;
    const now = Date.now();
    const t = at.getTime();
    const hit = this.checks.get(key);
    if (hit && hit.crlState === crlState && hit.expires > now && !validityBoundaryBetween(hit.result.path, hit.at, t)) return hit.result;
    const result = checkCertificate(cert, { usage, anchors: this.cfg.anchors, at, crls: this.crls(crlState), policy: this.policy });
    if (this.checks.size >= CHECK_CACHE_MAX) {
      for (const [k, v] of this.checks) if (v.expires <= now) this.checks.delete(k);
      if (this.checks.size >= CHECK_CACHE_MAX) this.checks.clear();
    }
    this.checks.set(key, { result, crlState, at: t, expires: now + CHECK_CACHE_TTL_MS });
    return result;
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

/** Parses a certificate of a message; the same DER seen again (every request of a client) is parsed once. */
export function derToCert(der: Buffer): X509Certificate {
  try {
    return parseCertificate(der);
  } catch (e) {
    throw new OsciError('ERR_KEY_INVALID', 'unreadable certificate in message', { cause: e });
  }
}

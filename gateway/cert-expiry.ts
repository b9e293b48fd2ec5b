/**
 * Certificate expiry made visible before it hurts (osci-protocol.md §13 rotation windows): at start-up and every
 * 6 hours, the days until notAfter of the intermediary's own certificates and of every unrevoked certificate
 * registered for a mailbox go into the gauge `amtsbote_certificate_days_to_expiry{participant,usage,fingerprint,current}`,
 * and a warning is logged for each participant/usage whose current certificate (the unrevoked one with the latest
 * notAfter; older ones are on their way out after a rotation) expires within `warnDays`. `amtsbote certs check`
 * (cron) does the same from the command line.
 */
import type { X509Certificate } from 'node:crypto';
import { certificateSha256Hex } from '../crypto/keys.ts';
import type { Identity } from './identity.ts';
import type { Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import type { CertificateUsage, Store } from './store/index.ts';

const DAY_MS = 86_400_000;
export const EXPIRY_CHECK_INTERVAL_MS = 6 * 3_600_000;
/** Label value of the intermediary's own certificates; parentheses never occur in a mailbox id. */
export const OWN_PARTICIPANT = '(intermediary)';

export interface ExpiryReading {
  participant: string;
  usage: CertificateUsage;
  fingerprint: string;
  notAfter: Date;
  /** Days until notAfter, two decimals; negative once expired. */
  days: number;
  /** The unrevoked certificate with the latest notAfter of its participant and usage. */
  current: boolean;
}

function daysLeft(notAfter: Date, now: Date): number {
  return Math.round(((notAfter.getTime() - now.getTime()) / DAY_MS) * 100) / 100;
}

/** Readings of the own certificates and every unrevoked registered certificate (revoked ones no longer matter). */
export async function readCertificateExpiry(store: Store, identity: Identity, now = new Date()): Promise<ExpiryReading[]> {
  const rows: Array<Omit<ExpiryReading, 'current'>> = [];
  const own = (cert: X509Certificate, usage: CertificateUsage) => {
    const notAfter = new Date(cert.validTo);
    rows.push({ participant: OWN_PARTICIPANT, usage, fingerprint: certificateSha256Hex(cert), notAfter, days: daysLeft(notAfter, now) });
  };
  own(identity.signature.cert, 'signature');
  for (const c of identity.ciphers) own(c.cert, 'cipher');
  for (const p of await store.listParticipants()) {
    for (const usage of ['signature', 'cipher'] as const) {
      for (const c of await store.certificatesOf(p.id, usage)) {
        if (c.revoked && c.revoked <= now) continue;
        rows.push({ participant: p.id, usage, fingerprint: c.fingerprint, notAfter: c.notAfter, days: daysLeft(c.notAfter, now) });
      }
    }
  }
  const latest = new Map<string, number>();
  for (const r of rows) {
    const k = `${r.participant}\u0000${r.usage}`;
    latest.set(k, Math.max(latest.get(k) ?? -Infinity, r.notAfter.getTime()));
  }
  const seen = new Set<string>();
  return rows
    .filter((r) => (seen.has(r.fingerprint) ? false : (seen.add(r.fingerprint), true)))
    .map((r) => ({ ...r, current: latest.get(`${r.participant}\u0000${r.usage}`) === r.notAfter.getTime() }));
}

/** The current certificates that expire within `warnDays` (or have expired). */
export function expiringSoon(readings: ExpiryReading[], warnDays: number): ExpiryReading[] {
  return readings.filter((r) => r.current && r.days < warnDays);
}

export interface ExpiryWatchOptions {
  store: Store;
  identity: Identity;
  metrics: Metrics;
  log: Logger;
  warnDays: number;
  intervalMs?: number;
}

export interface ExpiryWatch {
  /** Re-reads every certificate, replaces the gauge's series and logs the warnings. */
  refresh(): Promise<ExpiryReading[]>;
  stop(): void;
}

/** Runs `refresh` now (awaited) and then every `intervalMs` (default 6 h) until `stop`; the timer keeps no process alive. */
export async function startCertificateExpiryWatch(o: ExpiryWatchOptions): Promise<ExpiryWatch> {
  const refresh = async (): Promise<ExpiryReading[]> => {
    const readings = await readCertificateExpiry(o.store, o.identity);
    const g = o.metrics.certificateDaysToExpiry;
    g.reset();
    for (const r of readings) g.set({ participant: r.participant, usage: r.usage, fingerprint: r.fingerprint, current: String(r.current) }, r.days);
    for (const r of expiringSoon(readings, o.warnDays)) {
      o.log.warn(
        { participant: r.participant, usage: r.usage, fingerprint: r.fingerprint, notAfter: r.notAfter.toISOString(), days: Math.floor((r.notAfter.getTime() - Date.now()) / DAY_MS), warnDays: o.warnDays },
        r.days < 0 ? 'certificate has expired' : 'certificate expires soon; rotate it (amtsbote certs rotate)',
      );
    }
    return readings;
  };
  await refresh();
  const timer = setInterval(() => {
    refresh().catch((err: unknown) => o.log.error({ err }, 'certificate expiry check failed'));
  }, o.intervalMs ?? EXPIRY_CHECK_INTERVAL_MS);
  timer.unref();
  return { refresh, stop: () => clearInterval(timer) };
}

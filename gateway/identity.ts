/**
 * The intermediary's own keys: one signature key (SupplierSignature) and one or more cipher keys (transport
 * decryption; several while a rotation overlaps). Loaded from an identity folder
 * (`signature.{key,cert}.pem`, `cipher.{key,cert}.pem`, older cipher keys as `cipher-*.{key,cert}.pem`)
 * or from explicit key references (PEM or PKCS#12 with the PIN in an environment variable).
 *
 * Rotation (`amtsbote certs rotate`, gateway/certs-admin.ts) keeps the previous pair as `<usage>-<serial>.*`
 * and records when its overlap ends in `overlap.json`; a retired cipher key is no longer loaded.
 * {@link liveIdentityDir} re-reads the folder when its files change, so a running server announces and
 * decrypts with a rotated key at once, without a restart.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject, X509Certificate } from 'node:crypto';
import { keyMatchesCertificate, loadCertificate, loadPkcs12, loadPrivateKey } from '../crypto/keys.ts';
import { OsciError } from '../protocol/errors.ts';
import type { KeyRef } from './config.ts';

export interface KeyPair {
  key: KeyObject;
  cert: X509Certificate;
}

export interface Identity {
  signature: KeyPair;
  /** Newest first: the first is announced in the directory, all of them decrypt. */
  ciphers: KeyPair[];
}

function pinOf(env: string | undefined): string | undefined {
  if (!env) return undefined;
  const pin = process.env[env];
  if (pin === undefined) throw new OsciError('ERR_USAGE', `environment variable ${env} (PIN) is not set`);
  return pin;
}

export function loadKeyRef(ref: KeyRef): KeyPair {
  if ('p12' in ref) {
    const p = loadPkcs12(ref.p12, pinOf(ref.pinEnv) ?? '');
    return { key: p.key, cert: p.certificate };
  }
  const pair = { key: loadPrivateKey(ref.key, { pin: pinOf(ref.pinEnv) }), cert: loadCertificate(ref.cert) };
  if (!keyMatchesCertificate(pair.key, pair.cert)) throw new OsciError('ERR_KEY_INVALID', `${ref.key} does not match ${ref.cert}`);
  return pair;
}

// ---------------------------------------------------------------------------------------------------------
// overlap.json: when a rotated-out pair stops being used

/** File in an identity folder listing rotated-out certificates and the end of their overlap. */
export const OVERLAP_FILE = 'overlap.json';

export interface Retirement {
  usage: 'signature' | 'cipher';
  /** Lower-case hex SHA-256 of the certificate's DER. */
  fingerprint: string;
  serial: string;
  /** Base name of the archived pair in the folder, e.g. `cipher-4F3A...` (absent for a store-only entry). */
  file?: string;
  /** End of the overlap (ISO 8601): from then on the certificate is retired. */
  until: string;
}

/** The retirements recorded in an identity folder; an absent or unreadable file is an empty list. */
export function readRetirements(dir: string): Retirement[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(dir, OVERLAP_FILE), 'utf8'));
  } catch {
    return [];
  }
  const list = (raw as { retire?: unknown }).retire;
  if (!Array.isArray(list)) return [];
  return list.filter(
    (r): r is Retirement =>
      typeof r === 'object' && r !== null && (r.usage === 'signature' || r.usage === 'cipher') && typeof r.fingerprint === 'string' && typeof r.until === 'string' && !Number.isNaN(Date.parse(r.until)),
  );
}

// ---------------------------------------------------------------------------------------------------------

/**
 * Loads `signature` and `cipher` plus the archived `cipher-*` pairs whose overlap has not ended at `now`.
 * The current `cipher` pair comes first (it is what the directory announces), the others newest first.
 */
export function loadIdentityDir(dir: string, now = new Date()): Identity {
  const pair = (name: string): KeyPair => loadKeyRef({ key: join(dir, `${name}.key.pem`), cert: join(dir, `${name}.cert.pem`) });
  if (!existsSync(join(dir, 'signature.key.pem'))) throw new OsciError('ERR_USAGE', `identity folder ${dir} has no signature.key.pem`);
  const retired = new Set(
    readRetirements(dir)
      .filter((r) => r.file && Date.parse(r.until) <= now.getTime())
      .map((r) => r.file as string),
  );
  const older = readdirSync(dir)
    .filter((f) => /^cipher-.+\.key\.pem$/.test(f))
    .map((f) => f.slice(0, -'.key.pem'.length))
    .filter((name) => !retired.has(name))
    .map(pair)
    .sort((a, b) => Date.parse(b.cert.validFrom) - Date.parse(a.cert.validFrom));
  return { signature: pair('signature'), ciphers: [pair('cipher'), ...older] };
}

/** What identifies the folder's contents: names, inodes, sizes and modification times of its key material. */
function folderState(dir: string): string {
  const names = readdirSync(dir)
    .filter((f) => /^(signature|cipher)(-.+)?\.(key|cert)\.pem$/.test(f) || f === OVERLAP_FILE)
    .sort();
  return names
    .map((f) => {
      try {
        const s = statSync(join(dir, f), { bigint: true });
        return `${f}:${s.ino}:${s.size}:${s.mtimeNs}`;
      } catch {
        return `${f}:gone`;
      }
    })
    .join('|');
}

export interface LiveIdentityOptions {
  /** Called after a changed folder was loaded. */
  onReload?: (identity: Identity) => void;
  /** Called when a changed folder could not be loaded; the previous keys stay in use. */
  onError?: (err: unknown) => void;
  /** The folder is compared at most this often (default {@link IDENTITY_CHECK_INTERVAL_MS}; 0: every access). */
  checkIntervalMs?: number;
}

/** How often a live identity looks at its folder: a rotation is taken within this time. */
export const IDENTITY_CHECK_INTERVAL_MS = 2000;

/**
 * An identity that follows its folder: an access to `signature`/`ciphers` compares the folder's files (a
 * directory listing and a few stat calls, at most every `checkIntervalMs`) and re-loads them when they changed
 * or an overlap ended. A
 * half-written rotation (key and certificate not matching yet) is not taken: the previous keys stay in use
 * and the next change is tried again. Each process (also every cluster worker) follows the folder itself,
 * so no signal or restart is needed after `amtsbote certs rotate`.
 */
export function liveIdentityDir(dir: string, opts: LiveIdentityOptions = {}): Identity {
  let current = loadIdentityDir(dir);
  let state = folderState(dir);
  let nextRetirement = nextRetirementAfter(dir, Date.now());
  const interval = opts.checkIntervalMs ?? IDENTITY_CHECK_INTERVAL_MS;
  let checked = Date.now();
  let stamp = dirStamp(dir);
  const refresh = (): Identity => {
    const t = Date.now();
    // Between full comparisons one stat of the folder itself: a rotation adds and renames files, which
    // changes its mtime, so it is still taken at once; an in-place rewrite waits for the next full check.
    const st = dirStamp(dir);
    if (interval > 0 && t - checked < interval && t < nextRetirement && st === stamp) return current;
    checked = t;
    stamp = st;
    let s: string;
    try {
      s = folderState(dir);
    } catch (e) {
      opts.onError?.(e);
      return current;
    }
    const now = Date.now();
    if (s === state && now < nextRetirement) return current;
    state = s;
    try {
      current = loadIdentityDir(dir, new Date(now));
      nextRetirement = nextRetirementAfter(dir, now);
      opts.onReload?.(current);
    } catch (e) {
      opts.onError?.(e);
    }
    return current;
  };
  return {
    get signature() {
      return refresh().signature;
    },
    get ciphers() {
      return refresh().ciphers;
    },
  };
}

function dirStamp(dir: string): string {
  try {
    const s = statSync(dir, { bigint: true });
    return `${s.ino}:${s.mtimeNs}`;
  } catch {
    return 'gone';
  }
}

function nextRetirementAfter(dir: string, now: number): number {
  const times = readRetirements(dir)
    .map((r) => Date.parse(r.until))
    .filter((t) => t > now);
  return times.length > 0 ? Math.min(...times) : Number.POSITIVE_INFINITY;
}

/**
 * Large message: a storeDelivery with one attachment of `sizeMb` MiB (EGVP allows 200 MB, osci-protocol.md §13)
 * is signed (ClientSignature with a cid: digest over the attachment), transport-encrypted (§5), written to disk,
 * then parsed, decrypted and verified by decodeMessage, everything streamed. Reports wall time, throughput and the
 * peak RSS of this process (VmHWM), which must stay far below the message size.
 *
 * Run alone (used by test/unit/large-message-memory.test.ts in a child process):
 *   node --import tsx bench/scenarios/large-message.ts --size-mb 200
 * prints one JSON line with the result.
 */
import { createHash, generateKeyPairSync, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { createCertificate } from '../../crypto/devpki.ts';
import { decodeMessage, encodeMessage } from '../../protocol/envelope/index.ts';
import { certificate } from '../../protocol/messages/certificates.ts';
import type { OsciMessage } from '../../protocol/model.ts';
import { OSCI_NS } from '../../protocol/namespaces.ts';
import { peakRssMb } from '../sys.ts';

const MiB = 1024 * 1024;

export interface LargeMessageResult {
  size_mb: number;
  wire_bytes: number;
  /** Encode + write + read + decode, seconds. */
  wall_s: number;
  /** Attachment MiB per second of wall time. */
  mb_per_s: number;
  /** Peak resident set size of this process, MiB. */
  peak_rss_mb: number;
  /** The decoded attachment has the SHA-256 of the one sent, and the ClientSignature verified. */
  verified: boolean;
}

function identity(cn: string): { key: KeyObject; cert: X509Certificate } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const now = Date.now();
  const cert = createCertificate({
    subject: { CN: cn, O: 'Amtsbote bench' },
    publicKey,
    signingKey: privateKey,
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + 86_400_000),
    keyUsage: ['digitalSignature', 'keyEncipherment', 'dataEncipherment'],
  });
  return { key: privateKey, cert };
}

/** `size` bytes of incompressible data, generated in 1 MiB blocks (never the whole file in memory); returns its SHA-256 hex. */
export async function writeAttachment(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  async function* blocks() {
    for (let left = size; left > 0; left -= MiB) {
      const b = randomBytes(Math.min(MiB, left));
      hash.update(b);
      yield b;
    }
  }
  await pipeline(Readable.from(blocks()), createWriteStream(path));
  return hash.digest('hex');
}

export async function runLargeMessage(opts: { sizeMb: number; tmpDir?: string }): Promise<LargeMessageResult> {
  const size = Math.round(opts.sizeMb * MiB);
  const dir = mkdtempSync(join(opts.tmpDir ?? tmpdir(), 'amtsbote-large-'));
  try {
    const client = identity('Bench Client Signature');
    const intermediary = identity('Bench Intermediary Cipher');
    const addressee = identity('Bench Addressee Cipher');
    const attachmentPath = join(dir, 'attachment.bin');
    const attachmentSha = await writeAttachment(attachmentPath, size);
    const msg: OsciMessage = {
      type: 'storeDelivery',
      controlBlock: { sequenceNumber: 0, challenge: randomBytes(10).toString('base64') },
      desiredLanguages: ['de'],
      qualityOfTimestamp: { creation: 'plain', reception: 'plain' },
      messageId: Buffer.from('bench-large-message').toString('base64'),
      subject: `${opts.sizeMb} MiB`,
      contentPackage: {
        encryptedData: [],
        contentContainers: [`<osci:ContentContainer xmlns:osci="${OSCI_NS}" Id="cc0"><osci:Content Id="c0" href="cid:large.bin"></osci:Content></osci:ContentContainer>`],
      },
      certificates: [certificate('addressee', 'cipher', addressee.cert.raw)],
    };
    const wirePath = join(dir, 'wire.mime');

    const t0 = performance.now();
    const enc = await encodeMessage(msg, {
      signer: client,
      encryptFor: intermediary.cert,
      attachments: [{ contentId: 'large.bin', size, open: () => createReadStream(attachmentPath) }],
    });
    await pipeline(enc.stream, createWriteStream(wirePath));
    const decoded = await decodeMessage(createReadStream(wirePath), {
      contentType: 'text/xml',
      transportKeys: [{ key: intermediary.key, cert: intermediary.cert }],
      tmpDir: dir,
      limits: { maxTotalBytes: size + 16 * MiB },
      signature: 'required',
      trustSigner: async (carried) => {
        if (!carried?.raw.equals(client.cert.raw)) throw new Error('unexpected signer');
        return client.cert;
      },
    });
    const got = decoded.attachments[0];
    const verified = decoded.signature?.cids.includes('large.bin') === true && got?.sha256.toString('hex') === attachmentSha && got.size === size;
    await decoded.dispose();
    const wall = (performance.now() - t0) / 1000;
    return {
      size_mb: opts.sizeMb,
      wire_bytes: enc.length ?? 0,
      wall_s: Math.round(wall * 100) / 100,
      mb_per_s: Math.round((opts.sizeMb / wall) * 10) / 10,
      // VmHWM, not process.resourceUsage().maxRSS: Linux keeps the highest RSS across fork and exec, so maxRSS of a
      // spawned process starts at its parent's RSS (a test runner's, 270 MiB in one CI run). maxRSS (KiB) elsewhere.
      peak_rss_mb: peakRssMb(process.pid) ?? Math.round(process.resourceUsage().maxRSS / 1024),
      verified,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--size-mb');
  const sizeMb = i >= 0 ? Number(process.argv[i + 1]) : 200;
  if (!Number.isFinite(sizeMb) || sizeMb <= 0) {
    process.stderr.write('usage: large-message.ts [--size-mb N]\n');
    process.exit(2);
  }
  const r = await runLargeMessage({ sizeMb });
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
